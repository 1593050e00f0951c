"""The paper's objectives as framework-independent functions (no OpenRLHF import).

Zhu et al., "The Surprising Effectiveness of Negative Reinforcement in LLM Reasoning"
(arXiv 2506.01347). A binary verifier scores each sample 1 (correct) or 0; a sample counts
as correct when its reward is above 0.5. Every objective maps per-sample correctness to

- ``advantages``: one float per sample, constant over that sample's response tokens;
- ``carries_grad``: which samples the update learns from.

| objective     | correct sample        | incorrect sample      |
|---------------|-----------------------|-----------------------|
| ``psr``       | +1                    | no gradient           |
| ``nsr``       | no gradient           | -1                    |
| ``w_reinforce``| +lambda (default 0.1)| -1                    |

No baseline, no whitening, no group normalisation (any of them would turn the constant
advantages into something else). lambda = 1 is plain REINFORCE with +1/-1 rewards.

A sample that carries no gradient is handled by the ``ignored_samples`` mode:

- ``drop`` (default, the paper's reference code): the sample is removed from the update, so the
  token-mean loss of an optimiser step is normalised by the KEPT tokens only;
- ``zero``: the sample stays in the batch with advantage 0 and still counts in the token-mean
  denominator, which shrinks the update by kept tokens / all tokens.

A new objective is one function registered by name::

    @register_objective("my_obj")
    def my_obj(correct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import torch

CORRECT_THRESHOLD = 0.5
DEFAULT_LAMBDA = 0.1  # paper §4: W-REINFORCE uses lambda = 0.1
IGNORED_SAMPLES_MODES = ("drop", "zero")
DEFAULT_IGNORED_SAMPLES = "drop"


@dataclass(frozen=True)
class Objective:
    name: str
    fn: Callable[..., Tuple[torch.Tensor, torch.Tensor]]
    uses_lambda: bool  # takes the W-REINFORCE weight lambda
    ignores_samples: bool  # some samples may carry no gradient (ignored_samples applies)


_OBJECTIVES: Dict[str, Objective] = {}


def register_objective(name: str, *, uses_lambda: bool = False, ignores_samples: bool = True):
    """Register ``fn(correct[, lam]) -> (advantages, carries_grad)`` under ``name``.

    Registering a different function under a taken name is refused (no silent replacement);
    registering the same function again is a no-op, so module reloads stay harmless.
    """

    def decorator(fn):
        existing = _OBJECTIVES.get(name)
        if existing is not None and _where(existing.fn) != _where(fn):
            raise ValueError(f"objective {name!r} is already registered by {_where(existing.fn)}; pick another name")
        _OBJECTIVES[name] = Objective(name, fn, uses_lambda, ignores_samples)
        return fn

    return decorator


def _where(fn) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def objective_names() -> Tuple[str, ...]:
    return tuple(_OBJECTIVES)


def get_objective(name: str) -> Objective:
    try:
        return _OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown objective {name!r}; valid objectives: {', '.join(_OBJECTIVES)}") from None


def check_lambda(lam: float) -> float:
    lam = float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(
            f"w_reinforce lambda must be a finite number >= 0, got {lam}: W-REINFORCE = lambda * PSR + NSR "
            "(the paper uses 0.1; 1 is plain REINFORCE)"
        )
    return lam


def is_correct(rewards: torch.Tensor) -> torch.Tensor:
    """(B,) verifier rewards -> (B,) bool, True where the reward is above 0.5."""
    rewards = torch.as_tensor(rewards)
    if rewards.dim() != 1:
        raise ValueError(f"expected one reward per sample, shape (B,), got shape {tuple(rewards.shape)}")
    if rewards.is_floating_point() and not torch.isfinite(rewards).all():
        raise ValueError(f"rewards must be finite, got {rewards.tolist()}: check the reward function's output")
    return rewards.float() > CORRECT_THRESHOLD


def compute_advantages(
    name: str, correct: torch.Tensor, lam: Optional[float] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-sample advantages (B,) float32 and carries_grad (B,) bool for objective ``name``.

    Samples that carry no gradient get advantage 0. ``lam`` is only accepted by objectives
    that use it (w_reinforce, default 0.1).
    """
    objective = get_objective(name)
    correct = torch.as_tensor(correct)
    if correct.dtype != torch.bool or correct.dim() != 1:
        raise ValueError(f"correct must be a 1-D bool tensor, got dtype {correct.dtype} shape {tuple(correct.shape)}")
    if objective.uses_lambda:
        advantages, carries_grad = objective.fn(correct, check_lambda(DEFAULT_LAMBDA if lam is None else lam))
    elif lam is not None:
        raise ValueError(f"objective {name!r} takes no lambda (only: {', '.join(lambda_objectives())})")
    else:
        advantages, carries_grad = objective.fn(correct)
    advantages = advantages.to(torch.float32)
    return torch.where(carries_grad, advantages, torch.zeros_like(advantages)), carries_grad.bool()


def lambda_objectives() -> Tuple[str, ...]:
    return tuple(o.name for o in _OBJECTIVES.values() if o.uses_lambda)


def sample_ignoring_objectives() -> Tuple[str, ...]:
    return tuple(o.name for o in _OBJECTIVES.values() if o.ignores_samples)


def loss_sample_mask(carries_grad: torch.Tensor, ignored_samples: str = DEFAULT_IGNORED_SAMPLES) -> torch.Tensor:
    """(B,) bool: which samples count in the token-mean denominator of the policy loss."""
    if ignored_samples == "drop":
        return carries_grad.bool()
    if ignored_samples == "zero":
        return torch.ones_like(carries_grad, dtype=torch.bool)
    raise ValueError(f"ignored_samples must be one of {IGNORED_SAMPLES_MODES}, got {ignored_samples!r}")


@register_objective("psr")
def psr(correct: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Positive sample reinforcement: +1 on correct samples; incorrect ones carry no gradient."""
    return torch.ones(correct.shape), correct.clone()


@register_objective("nsr")
def nsr(correct: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Negative sample reinforcement: -1 on incorrect samples; correct ones carry no gradient."""
    return -torch.ones(correct.shape), ~correct


@register_objective("w_reinforce", uses_lambda=True, ignores_samples=False)
def w_reinforce(correct: torch.Tensor, lam: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """W-REINFORCE = lam * PSR + NSR: +lam on correct, -1 on incorrect; every sample carries gradient.

    lam = 0 is NOT the paper's NSR run: correct samples stay in the denominator (use ``nsr``).
    """
    return torch.where(correct, torch.tensor(lam), torch.tensor(-1.0)), torch.ones_like(correct)


def rollout_stats(correct: torch.Tensor, carries_grad: torch.Tensor, n_samples_per_prompt: int) -> Dict[str, float]:
    """The paper's Figure 4 training diagnostics for one rollout batch.

    ``correct`` and ``carries_grad`` are (P * n,) with the n samples of a prompt contiguous.
    """
    n = int(n_samples_per_prompt)
    if n < 1 or correct.numel() == 0 or correct.numel() % n:
        raise ValueError(f"{correct.numel()} samples cannot be grouped into prompts of {n} samples")
    per_prompt = correct.reshape(-1, n)
    return {
        "correct_frac": correct.float().mean().item(),
        "prompts_all_correct_frac": per_prompt.all(dim=1).float().mean().item(),
        "prompts_none_correct_frac": (~per_prompt.any(dim=1)).float().mean().item(),
        "grad_samples_frac": carries_grad.float().mean().item(),
    }
