"""Diversity of the rollouts, per training step (framework-independent; the adapter logs them).

The paper's advice: watch diversity while training (entropy, distinct answers, pass@k) to see
when positive reinforcement starts collapsing it. All of these come from what a step already has:

- ``entropy``: the mean negative log-probability of the sampled response tokens under the
  policy that sampled them, over all response tokens of the batch (token-mean). For tokens drawn
  from p, E[-log p(token)] is the entropy of p: an unbiased estimate, from the log-probs the
  update computes anyway (OpenRLHF's old log-probs, which its actor takes from logits / T, i.e.
  of the temperature-T sampling distribution: the estimate is of that distribution's entropy at
  any temperature; with top-p / top-k < 1 it is the cross-entropy of the truncated sampler
  against p_T instead).
- ``distinct_answers_frac``: per prompt, distinct final answers (the reward's extraction: the
  last ``\\boxed{}``, stripped; no answer counts as one more answer) / n, averaged over prompts.
- ``pass_at_1``, ``pass_at_n``: unbiased pass@k (metrics.pass_at_k) of the n samples of each
  training prompt, averaged over prompts; a sample is correct when its reward is above 0.5.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence

import torch

from openrlhf_nsr.metrics import default_ks, pass_at_k
from openrlhf_nsr.objectives import CORRECT_THRESHOLD


def token_entropy(log_probs: Iterable[torch.Tensor], masks: Iterable[torch.Tensor]) -> float:
    """Token-mean of -log p over the masked (response) positions of every batch; nan if none."""
    total, count = 0.0, 0.0
    for lp, mask in zip(log_probs, masks):
        mask = mask.to(lp.device).bool()
        total += float(-(lp.float() * mask).sum())
        count += float(mask.sum())
    return total / count if count else float("nan")


def _group(values: Sequence, n: int, what: str) -> List[Sequence]:
    if n < 1 or not values or len(values) % n:
        raise ValueError(f"{len(values)} {what} cannot be grouped into prompts of {n} samples")
    return [values[i : i + n] for i in range(0, len(values), n)]


def distinct_answers_frac(answers: Sequence[Optional[str]], n: int) -> float:
    """Mean over prompts of (distinct answers among its n samples) / n; samples of a prompt contiguous."""
    groups = _group(list(answers), n, "answers")
    return sum(len({None if a is None else a.strip() for a in group}) / n for group in groups) / len(groups)


def pass_at_1_and_n(rewards: torch.Tensor, n: int) -> Dict[str, float]:
    """Unbiased pass@1 and pass@n over prompts of n contiguous samples, from their rewards."""
    correct = (torch.as_tensor(rewards).float() > CORRECT_THRESHOLD).tolist()
    counts = [sum(group) for group in _group(correct, n, "rewards")]
    return {
        "pass_at_1": sum(pass_at_k(n, c, 1) for c in counts) / len(counts),
        "pass_at_n": sum(pass_at_k(n, c, n) for c in counts) / len(counts),
    }


def pass_at_ks(rewards: torch.Tensor, n: int) -> Optional[Dict[int, float]]:
    """pass@k for k = 1, 2, 4, ..., n over prompts of n contiguous samples; None unless rewards are 0/1.

    Evaluation with a reward model's scores has no "correct": pass@k is then not defined.
    """
    rewards = torch.as_tensor(rewards).float().flatten()
    if not bool(((rewards == 0) | (rewards == 1)).all()):
        return None
    counts = [int(sum(group)) for group in _group(rewards.tolist(), n, "rewards")]
    return {k: sum(pass_at_k(n, c, k) for c in counts) / len(counts) for k in default_ks(n)}
