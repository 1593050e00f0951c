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

Beyond the paper, two objectives of the same family whose advantage depends on the prompt's group
of n samples (c of them correct, p = c / n): ``maxrl`` (MaxRL, arXiv 2602.02710) gives
(1 - p) / (p + 1e-6) to a correct sample and -p / (p + 1e-6) to an incorrect one; ``passk`` (Pass@k
training, arXiv 2508.10751) its analytic pass@k advantages (see ``passk``). Both give 0 to groups
that are all correct or all wrong, and count every sample in the token-mean, as their reference
code does.

No baseline, no whitening, no group normalisation (any of them would turn the constant
advantages into something else). lambda = 1 is plain REINFORCE with +1/-1 rewards.

A sample that carries no gradient is handled by the ``ignored_samples`` mode:

- ``drop`` (default, the paper's reference code): the sample is removed from the update, so the
  token-mean loss of an optimiser step is normalised by the KEPT tokens only;
- ``zero``: the sample stays in the batch with advantage 0 and still counts in the token-mean
  denominator, which shrinks the update by kept tokens / all tokens.

A new objective is one function registered by name, with the hyperparameters it takes; the
wrapper CLI (train_ppo_ray.py) makes ``--algo.advantage.<name>`` flags of them, with their
validation and help, and the adapter passes each step's value (schedules evaluated)::

    @register_objective("my_obj", hyperparameters=(
        Hyperparameter("my_obj_weight", float, 0.5, argument="weight", schedulable=True,
                       help="weight of the negatives"),))
    def my_obj(correct: torch.Tensor, weight: float) -> tuple[torch.Tensor, torch.Tensor]:
        ...

A run's parameters are one object, ``objective_run(name, given)``: a frozen dataclass of the
declared hyperparameters, validated once, that gives the function's arguments at each step (and
the metrics, checkpoint state and ``--dry_run`` lines that go with them). Nothing outside an
objective's definition names its parameters.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from openrlhf_nsr.schedules import EntropyLambdaController, Schedule

CORRECT_THRESHOLD = 0.5
DEFAULT_LAMBDA = 0.1  # docs/paper.md §1: W-REINFORCE uses lambda = 0.1
IGNORED_SAMPLES_MODES = ("drop", "zero")
DEFAULT_IGNORED_SAMPLES = "drop"
LAMBDA_CONTROLLERS = ("none", "entropy")


@dataclass(frozen=True)
class Hyperparameter:
    """A hyperparameter an objective declares; the wrapper CLI makes ``--algo.advantage.<name>`` of it.

    ``type`` turns the command-line text into the value kept in OpenRLHF's args (plain JSON-able
    values, so they survive Ray, checkpoints and wandb); it raises ValueError naming what is wrong.
    ``argument`` names the keyword under which the objective function receives the value of the
    current step; ``schedulable`` ones take a number or a ``STEP:VALUE,...`` schedule
    (schedules.py, kept as a float or the canonical string), and ``check`` validates each value. Hyperparameters without ``argument``
    are read by the adapter (e.g. ``ignored_samples``).
    """

    name: str
    type: Callable[[str], Any]
    default: Any
    help: str
    choices: Optional[Tuple[str, ...]] = None
    argument: Optional[str] = None
    schedulable: bool = False
    check: Optional[Callable[[float], float]] = None


@dataclass(frozen=True)
class Objective:
    name: str
    fn: Callable[..., Tuple[torch.Tensor, torch.Tensor]]
    ignores_samples: bool  # some samples may carry no gradient (ignored_samples applies)
    hyperparameters: Tuple[Hyperparameter, ...] = ()
    # Checks across hyperparameters: (values by name, defaults filled in; the samples per prompt,
    # None where unknown) -> raises ValueError
    validate: Optional[Callable[[Dict[str, Any], Optional[int]], None]] = None
    # The function takes each prompt's samples as one group: (P, n) correctness in, (P, n) out.
    groups: bool = False
    # How the run's parameters become the function's arguments at each step (ObjectiveRun or a subclass).
    run_type: Optional[type] = None


_OBJECTIVES: Dict[str, Objective] = {}


def register_objective(
    name: str,
    *,
    ignores_samples: bool = True,
    hyperparameters: Tuple[Hyperparameter, ...] = (),
    validate: Optional[Callable[[Dict[str, Any], Optional[int]], None]] = None,
    groups: bool = False,
    run_type: Optional[type] = None,
):
    """Register ``fn(correct, **arguments) -> (advantages, carries_grad)`` under ``name``.

    ``run_type``: an ``ObjectiveRun`` subclass when the step's arguments need more than the
    hyperparameters' schedules (state, metrics, checkpoints: W-REINFORCE's entropy controller).
    ``groups``: the function sees the rollout as groups, ``correct`` of shape (P, n) with a prompt's
    n samples in a row (OpenRLHF keeps them contiguous in rollout order), and returns (P, n).

    ``hyperparameters`` become command-line flags of the wrapper (with their validation and
    help); objectives that ignore samples also get ``ignored_samples``. A flag shared by several
    objectives must be declared identically by all of them. Registering a different function
    under a taken name is refused (no silent replacement); registering the same function again is
    a no-op, so module reloads stay harmless.
    """

    def decorator(fn):
        existing = _OBJECTIVES.get(name)
        if existing is not None and _where(existing.fn) != _where(fn):
            raise ValueError(f"objective {name!r} is already registered by {_where(existing.fn)}; pick another name")
        params = tuple(hyperparameters) + ((IGNORED_SAMPLES,) if ignores_samples else ())
        for param in params:
            for other in _OBJECTIVES.values():
                same = next((p for p in other.hyperparameters if p.name == param.name), None)
                if same is not None and same != param and other.name != name:
                    raise ValueError(
                        f"objective {name!r} declares hyperparameter {param.name!r} differently from objective "
                        f"{other.name!r}: one flag has one meaning; rename it or declare it identically"
                    )
        _OBJECTIVES[name] = Objective(name, fn, ignores_samples, params, validate, groups, run_type)
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


def hyperparameters() -> Dict[str, Tuple[Hyperparameter, Tuple[str, ...]]]:
    """Every declared hyperparameter by name, with the objectives that use it (registration order)."""
    found: Dict[str, Tuple[Hyperparameter, Tuple[str, ...]]] = {}
    for objective in _OBJECTIVES.values():
        for param in objective.hyperparameters:
            users = found.get(param.name, (param, ()))[1]
            found[param.name] = (param, users + (objective.name,))
    return found


def resolve_hyperparameters(
    name: str, given: Dict[str, Any], n_samples_per_prompt: Optional[int] = None
) -> Dict[str, Any]:
    """Validated values of objective ``name``'s hyperparameters: ``given`` (by name) over the defaults.

    Raises ValueError naming the hyperparameter when one does not apply to ``name`` or is invalid;
    ``n_samples_per_prompt`` (where known) lets an objective check its values against the group size.
    """
    objective = get_objective(name)
    declared = {p.name: p for p in objective.hyperparameters}
    foreign = [key for key, value in given.items() if value is not None and key not in declared]
    if foreign:
        users = hyperparameters()
        key = foreign[0]
        who = " / ".join(users[key][1]) if key in users else "no objective"
        raise ValueError(f"{key} only applies to {who}, not {name}")
    values = {param.name: parse_hyperparameter(param, given.get(param.name)) for param in objective.hyperparameters}
    if objective.groups and n_samples_per_prompt is not None and n_samples_per_prompt < 2:
        raise ValueError(
            f"{name} needs --rollout.n_samples_per_prompt of at least 2 (it compares each sample with its prompt's "
            f"other samples), got {n_samples_per_prompt}"
        )
    if objective.validate is not None:
        objective.validate(values, n_samples_per_prompt)
    return values


def parse_hyperparameter(param: Hyperparameter, value: Any) -> Any:
    """One hyperparameter's value (None = its default), parsed and checked; ValueError if invalid."""
    value = param.default if value is None else value
    if value is None:
        return None
    if param.schedulable:  # a number or STEP:VALUE,... (kept as a float or its canonical string)
        value = Schedule.parse(value).canonical()
    elif isinstance(value, str) and param.type is not str:
        value = param.type(value)
    if param.choices is not None and value not in param.choices:
        raise ValueError(f"must be one of {', '.join(param.choices)}, got {value!r}")
    if param.schedulable and param.check is not None:
        for _, point in Schedule.parse(value).points:
            param.check(point)
    return value


class ObjectiveRun:
    """An objective's parameters for one run, resolved once: a frozen ``params`` object (one field per
    hyperparameter), the function's arguments at each step, the metrics and checkpoint state that go
    with them, and the lines ``--dry_run`` prints. Built with ``objective_run``; the adapter (and the
    miniature) ask it for each step's values and never name a parameter themselves."""

    def __init__(self, name: str, values: Dict[str, Any]):
        self.name = name
        self.objective = get_objective(name)
        self.params = params_type(name)(**values)
        # each argument once: a Schedule for the schedulable ones (evaluated per step), else the value
        self._arguments = {
            p.argument: Schedule.parse(values[p.name]) if p.schedulable else values[p.name]
            for p in self.objective.hyperparameters
            if p.argument is not None
        }

    def arguments(self, step: int, entropy: Optional[float] = None) -> Dict[str, Any]:
        """The function's keyword arguments at global ``step`` (``entropy``: that step's rollout entropy)."""
        return {k: v(step) if isinstance(v, Schedule) else v for k, v in self._arguments.items()}

    def metrics(self, arguments: Dict[str, Any]) -> Dict[str, float]:
        """Per-step values to log next to OpenRLHF's rollout/ metrics."""
        return {}

    def state(self) -> Dict[str, Any]:
        """What must survive a restart (JSON-able; schedules need nothing: OpenRLHF restores the step)."""
        return {}

    def restore(self, state: Optional[Dict[str, Any]]) -> Optional[str]:
        """Put ``state()``'s output back; a line for the log, or None when there was nothing to restore."""
        return None

    def describe(self) -> List[str]:
        """The step-dependent parameters, one line each, for ``--dry_run`` (named as their flags)."""
        lines = []
        for param in self.objective.hyperparameters:
            if param.schedulable:
                lines.append(f"{param.name}: {Schedule.parse(getattr(self.params, param.name)).describe()}")
        return lines


_PARAMS_TYPES: Dict[str, type] = {}


def params_type(name: str) -> type:
    """Objective ``name``'s parameters as a frozen dataclass, one field per declared hyperparameter."""
    objective = get_objective(name)
    fields_ = tuple(p.name for p in objective.hyperparameters)
    cached = _PARAMS_TYPES.get(name)
    if cached is None or tuple(f.name for f in dataclasses.fields(cached)) != fields_:
        cached = _PARAMS_TYPES[name] = dataclasses.make_dataclass(
            f"{name}_params", [(p.name, Any, dataclasses.field(default=p.default)) for p in objective.hyperparameters],
            frozen=True,
        )  # fmt: skip
    return cached


def objective_run(name: str, given: Dict[str, Any], n_samples_per_prompt: Optional[int] = None) -> ObjectiveRun:
    """The run's parameters object for objective ``name``: ``given`` (by hyperparameter name, None =
    default) validated once (resolve_hyperparameters), wrapped by the objective's ``run_type``."""
    values = resolve_hyperparameters(name, given, n_samples_per_prompt)
    return (get_objective(name).run_type or ObjectiveRun)(name, values)


def check_lambda(lam: float) -> float:
    lam = float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(
            f"w_reinforce lambda must be a finite number >= 0, got {lam}: W-REINFORCE = lambda * PSR + NSR "
            "(the paper uses 0.1; 1 is plain REINFORCE)"
        )
    return lam


def _number_in(ok: Callable[[float], bool], requirement: str) -> Callable[[str], float]:
    """A command-line parser for a number with ``ok(value)``; the error says ``requirement``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if not ok(value):
            raise ValueError(f"must be {requirement}, got {text}")
        return value

    return parse


_unit_fraction = _number_in(lambda v: 0 < v <= 1, "in (0, 1]")
_positive = _number_in(lambda v: math.isfinite(v) and v > 0, "finite and > 0")


def _non_negative(text: str) -> float:
    try:
        return check_lambda(float(text))
    except ValueError:
        raise ValueError(f"must be a finite number >= 0, got {text!r}") from None


IGNORED_SAMPLES = Hyperparameter(
    "ignored_samples", str, DEFAULT_IGNORED_SAMPLES, choices=IGNORED_SAMPLES_MODES,
    help="samples that carry no gradient are removed from the update, which trains on optimiser steps of "
    "--train.batch_size kept samples, each a token-mean over kept tokens (drop, default, the paper's reference "
    "code), or kept with advantage 0, diluting the token-mean (zero)",
)  # fmt: skip
W_REINFORCE_LAMBDA = Hyperparameter(
    "w_reinforce_lambda", float, DEFAULT_LAMBDA, argument="lam", schedulable=True, check=check_lambda,
    help=f"advantage of correct samples, >= 0 (default {DEFAULT_LAMBDA}, the paper's; 1 = plain REINFORCE), or a "
    "schedule STEP:VALUE,STEP:VALUE,... over global steps (piecewise linear; 0:0,40:0.1 = NSR first, then PSR in); "
    "with --algo.advantage.lambda_controller entropy: the controller's upper bound",
)  # fmt: skip
LAMBDA_CONTROLLER = Hyperparameter(
    "lambda_controller", str, "none", choices=LAMBDA_CONTROLLERS,
    help="entropy: lambda adapts each step so the rollout entropy stays near "
    "--algo.advantage.lambda_controller_target x its first-step value (rises above it, falls toward 0 = NSR below)",
)  # fmt: skip
LAMBDA_CONTROLLER_TARGET = Hyperparameter(
    "lambda_controller_target", _unit_fraction, None,
    help="the entropy controller's target, a fraction F in (0, 1] of the first step's rollout entropy",
)  # fmt: skip
LAMBDA_CONTROLLER_INIT = Hyperparameter(
    "lambda_controller_init", _non_negative, None,
    help="the entropy controller's lambda before the first step (default 0: NSR first), <= w_reinforce_lambda",
)  # fmt: skip
LAMBDA_CONTROLLER_RATE = Hyperparameter(
    "lambda_controller_rate", _positive, None,
    help="the entropy controller's gain: lambda moves by rate x w_reinforce_lambda x the relative entropy error "
    "(clipped to +-0.2) per step (default 1: 0 to the upper bound in 5 steps at the largest error)",
)  # fmt: skip


CONTROLLER_SETTINGS = {"lambda_controller_target": None, "lambda_controller_init": 0.0, "lambda_controller_rate": 1.0}


def _validate_w_reinforce(values: Dict[str, Any], n_samples_per_prompt: Optional[int] = None) -> None:
    """Cross-checks; fills in the entropy controller's defaults only when the controller is on."""
    controller = values["lambda_controller"]
    if controller == "none":
        for key in CONTROLLER_SETTINGS:
            if values[key] is not None:
                raise ValueError(f"{key} only applies with lambda_controller entropy: add it or remove {key}")
        return
    for key, default in CONTROLLER_SETTINGS.items():
        if values[key] is None:
            values[key] = default
    if values["lambda_controller_target"] is None:
        raise ValueError("lambda_controller entropy needs lambda_controller_target F in (0, 1]: add it")
    if not Schedule.parse(values["w_reinforce_lambda"]).constant:
        raise ValueError(
            "lambda_controller entropy sets lambda itself: w_reinforce_lambda must be a number (its upper bound), "
            f"not the schedule {values['w_reinforce_lambda']}"
        )
    if values["lambda_controller_init"] > values["w_reinforce_lambda"]:
        raise ValueError(
            f"lambda_controller_init {values['lambda_controller_init']:g} is above the controller's upper bound "
            f"w_reinforce_lambda {values['w_reinforce_lambda']:g}"
        )


def is_correct(rewards: torch.Tensor) -> torch.Tensor:
    """(B,) verifier rewards -> (B,) bool, True where the reward is above 0.5."""
    rewards = torch.as_tensor(rewards)
    if rewards.dim() != 1:
        raise ValueError(f"expected one reward per sample, shape (B,), got shape {tuple(rewards.shape)}")
    if rewards.is_floating_point() and not torch.isfinite(rewards).all():
        raise ValueError(f"rewards must be finite, got {rewards.tolist()}: check the reward function's output")
    return rewards.float() > CORRECT_THRESHOLD


def compute_advantages(
    name: str, correct: torch.Tensor, n_samples_per_prompt: Optional[int] = None, **arguments: float
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-sample advantages (B,) float32 and carries_grad (B,) bool for objective ``name``.

    Samples that carry no gradient get advantage 0. ``arguments`` are the objective function's
    keywords for this step (``lam=0.1`` for w_reinforce; a missing one takes its default).
    ``correct`` is in rollout order; a group objective (maxrl, passk) needs ``n_samples_per_prompt``
    and whole prompts (B a multiple of it), others ignore it.
    """
    objective = get_objective(name)
    correct = torch.as_tensor(correct)
    if correct.dtype != torch.bool or correct.dim() != 1:
        raise ValueError(f"correct must be a 1-D bool tensor, got dtype {correct.dtype} shape {tuple(correct.shape)}")
    if objective.groups:
        n = int(n_samples_per_prompt or 0)
        if n < 2 or correct.numel() % n:
            raise ValueError(
                f"{name} computes each sample's advantage from its prompt's group: {correct.numel()} samples cannot "
                f"be cut into whole prompts of n_samples_per_prompt={n_samples_per_prompt} (need n >= 2)"
            )
    declared = {p.argument: p for p in objective.hyperparameters if p.argument is not None}
    unknown = [key for key, value in arguments.items() if key not in declared and value is not None]
    if unknown:
        takers = [o.name for o in _OBJECTIVES.values() if any(p.argument == unknown[0] for p in o.hyperparameters)]
        raise ValueError(f"objective {name!r} takes no {unknown[0]} (only: {', '.join(takers) or 'none'})")
    kwargs = {}
    for argument, param in declared.items():
        value = arguments.get(argument)
        if value is None:
            if param.default is None:
                raise ValueError(f"objective {name!r} needs {argument}= (its {param.name}), which has no default")
            value = Schedule.parse(param.default)(0) if param.schedulable else param.default
        kwargs[argument] = param.check(value) if param.check is not None else value
    if objective.groups:
        advantages, carries_grad = objective.fn(correct.reshape(-1, n), **kwargs)
        advantages, carries_grad = advantages.reshape(-1), carries_grad.reshape(-1)
    else:
        advantages, carries_grad = objective.fn(correct, **kwargs)
    advantages = advantages.to(torch.float32)
    return torch.where(carries_grad, advantages, torch.zeros_like(advantages)), carries_grad.bool()


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


class WReinforceRun(ObjectiveRun):
    """W-REINFORCE's parameters for a run: lambda as a schedule over the steps, or from the entropy controller
    (schedules.EntropyLambdaController, fed each step's rollout entropy before that step's update)."""

    def __init__(self, name: str, values: Dict[str, Any]):
        super().__init__(name, values)
        p = self.params
        self.controller = None
        if p.lambda_controller == "entropy":
            self.controller = EntropyLambdaController(
                target=p.lambda_controller_target, lam_max=float(p.w_reinforce_lambda),
                init=p.lambda_controller_init, rate=p.lambda_controller_rate,
            )  # fmt: skip

    def arguments(self, step: int, entropy: Optional[float] = None) -> Dict[str, Any]:
        arguments = super().arguments(step)
        if self.controller is not None:
            if entropy is None:
                raise ValueError("w_reinforce's entropy controller needs each step's rollout entropy")
            arguments["lam"] = self.controller.update(entropy)
        return arguments

    def metrics(self, arguments: Dict[str, Any]) -> Dict[str, float]:
        return {"lambda": arguments["lam"]}

    def state(self) -> Dict[str, Any]:
        if self.controller is None or self.controller.reference is None:
            return {}
        return {"lambda_controller": {"value": self.controller.value, "reference": self.controller.reference}}

    def restore(self, state: Optional[Dict[str, Any]]) -> Optional[str]:
        saved = (state or {}).get("lambda_controller")
        if saved is None or self.controller is None:
            return None
        self.controller.value, self.controller.reference = float(saved["value"]), float(saved["reference"])
        return f"lambda controller resumed: lambda {self.controller.value:g}, reference entropy {saved['reference']:g}"

    def describe(self) -> List[str]:
        p = self.params
        if self.controller is None:
            return super().describe()
        return [
            f"lambda_controller entropy: lambda starts at {p.lambda_controller_init:g}, stays in [0, "
            f"{float(p.w_reinforce_lambda):g}] and keeps the rollout entropy near {p.lambda_controller_target:g} x "
            "its first-step value"
        ]


@register_objective(
    "w_reinforce",
    ignores_samples=False,
    hyperparameters=(
        W_REINFORCE_LAMBDA,
        LAMBDA_CONTROLLER,
        LAMBDA_CONTROLLER_TARGET,
        LAMBDA_CONTROLLER_INIT,
        LAMBDA_CONTROLLER_RATE,
    ),
    validate=_validate_w_reinforce,
    run_type=WReinforceRun,
)
def w_reinforce(correct: torch.Tensor, lam: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """W-REINFORCE = lam * PSR + NSR: +lam on correct, -1 on incorrect; every sample carries gradient.

    lam = 0 is NOT the paper's NSR run: correct samples stay in the denominator (use ``nsr``).
    """
    return torch.where(correct, torch.tensor(lam), torch.tensor(-1.0)), torch.ones_like(correct)


MAXRL_EPS = 1e-6  # tajwarfahim/maxrl verl/trainer/ppo/core_algos.py: (r - mean) / (mean + 1e-6)
PASSK_EPS = 1e-6  # RUCAIBox/Passk_Training code/passk_adv.py (calc_adv): / (sigma + 1e-6)


@register_objective("maxrl", ignores_samples=False, groups=True)
def maxrl(correct: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """MaxRL (Tajwar et al. 2026, arXiv 2602.02710): per group, (r - mean) / (mean + 1e-6).

    With 0/1 rewards and p the group's success rate: (1 - p) / (p + 1e-6) on a correct sample (large
    on hard prompts), -p / (p + 1e-6) (about -1, NSR's value) on an incorrect one; a group with no
    correct sample, or none incorrect, gives exactly 0. Every sample counts in the token-mean, as in
    the reference code; a sample carries gradient where its advantage is not 0.
    """
    rewards = correct.double()
    mean = rewards.mean(dim=1, keepdim=True)
    advantages = (rewards - mean) / (mean + MAXRL_EPS)
    return advantages, advantages != 0


def passk_group_advantages(n: int, c: int, k: int) -> Tuple[float, float]:
    """Pass@k training's analytic advantages (Chen et al. 2025, arXiv 2508.10751) of a group of n samples, c correct:
    (advantage of a correct sample, of an incorrect one); 0 where the group has none of that kind."""
    rho = 1 - math.comb(n - c, k) / math.comb(n, k)
    sigma = math.sqrt(rho * (1 - rho))
    positive = (1 - rho) / (sigma + PASSK_EPS) if c > 0 else 0.0
    negative = (1 - rho - math.comb(n - c - 1, k - 1) / math.comb(n - 1, k - 1)) / (sigma + PASSK_EPS) if c < n else 0.0
    return positive, negative


def _validate_passk(values: Dict[str, Any], n_samples_per_prompt: Optional[int] = None) -> None:
    k = values["passk_k"]
    if k is None:
        raise ValueError(
            "passk needs passk_k K, the k of the pass@k it trains for (1 <= K < n_samples_per_prompt): add it"
        )
    if n_samples_per_prompt is not None and not k < n_samples_per_prompt:
        raise ValueError(
            f"passk_k {k} must be below n_samples_per_prompt {n_samples_per_prompt} (pass@k of a group of "
            f"{n_samples_per_prompt} samples): lower it or raise --rollout.n_samples_per_prompt"
        )


def _positive_integer(text: str) -> int:
    try:
        value = int(str(text))
    except ValueError:
        raise ValueError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise ValueError(f"must be an integer >= 1, got {text!r}")
    return value


PASSK_K = Hyperparameter(
    "passk_k", _positive_integer, None, argument="k",
    help="passk: the k of the pass@k it trains for, an integer 1 <= K < --rollout.n_samples_per_prompt (required; "
    "K = 1 is close to GRPO's group normalisation)",
)  # fmt: skip


@register_objective("passk", ignores_samples=False, groups=True, hyperparameters=(PASSK_K,), validate=_validate_passk)
def passk(correct: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pass@k training (Chen et al. 2025, arXiv 2508.10751), its analytic advantages per group of N, c correct:

    rho = 1 - C(N-c, k) / C(N, k), sigma = sqrt(rho (1 - rho)), a correct sample (1 - rho) / (sigma + 1e-6),
    an incorrect one (1 - rho - C(N-c-1, k-1) / C(N-1, k-1)) / (sigma + 1e-6). All-correct and all-wrong
    groups give exactly 0, and so does a group with c > N - k (every k of its samples hold a correct one:
    rho = 1). Every sample counts in the token-mean, as in the reference code.
    """
    k = int(k)
    n = correct.shape[1]
    if not 1 <= k < n:
        raise ValueError(f"passk's k must be in [1, n_samples_per_prompt) = [1, {n}), got {k}")
    advantages = torch.zeros(correct.shape, dtype=torch.float64)
    for row, count in enumerate(correct.sum(dim=1).tolist()):
        positive, negative = passk_group_advantages(n, int(count), k)
        advantages[row] = torch.where(correct[row], positive, negative)
    return advantages, advantages != 0


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
