"""Step-dependent hyperparameters: piecewise-linear schedules and the entropy-driven lambda.

The paper's practical advice (Zhu et al. 2025; docs/paper.md §5): punish first, reward later, and watch the
diversity of the rollouts to decide when positive reinforcement can come in. Two tools for
W-REINFORCE's lambda (the weight of the positive samples):

``Schedule``: ``--algo.advantage.w_reinforce_lambda 0:0,40:0.1`` -- a number, or ``STEP:VALUE``
points with strictly increasing global steps and finite values >= 0, linear in between and
constant before the first and after the last point. ``0:0,40:0.1`` is "NSR first, then bring
PSR in over 40 steps".

``EntropyLambdaController``: ``--algo.advantage.lambda_controller entropy`` keeps the rollout
entropy near ``target`` times its value at the run's first step. Modelled on OpenRLHF's
``AdaptiveKLController`` (proportional error, clipped to +-0.2), with an additive update because
lambda = 0 (pure NSR) is a state the controller must be able to leave::

    H_ref  = entropy of the first rollout batch,  H* = target * H_ref
    e_t    = clip(H_t / H* - 1, -0.2, 0.2)
    lam_t  = clip(lam_{t-1} + rate * lam_max * e_t, 0, lam_max),   lam_0 = init

Entropy above the target: lambda rises (more positive reinforcement, sharper, higher pass@1);
below it: lambda falls toward 0 (pure NSR, which keeps diversity). ``H_t`` is measured on step
t's rollouts before step t's update, so lambda_t reacts to it at once; the sequence of lambdas
is a pure function of the sequence of entropies (no clock, no randomness).

A "step" is OpenRLHF's global step: the first rollout batch of a run is step 1, the number it is
logged under in OpenRLHF's logs (and the ``global_step{N}`` of its checkpoint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple, Union

# AdaptiveKLController (OpenRLHF, after Ziegler et al. 2019) clips its proportional error to +-0.2.
ERROR_CLIP = 0.2


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} {text!r} must be finite and >= 0")
    return value


def _text(value: float) -> str:
    text = repr(float(value))  # shortest round-trip form: no precision lost in the canonical string
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Schedule:
    """A value per global step: constant, or piecewise linear through ``points`` (step, value)."""

    points: Tuple[Tuple[int, float], ...]

    @classmethod
    def parse(cls, spec: Union[str, float, int, "Schedule"]) -> "Schedule":
        """``0.1`` -> constant; ``"0:0,40:0.1"`` -> piecewise linear. Raises ValueError naming the bad part."""
        if isinstance(spec, Schedule):
            return spec
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            try:
                return cls(((0, _number(repr(float(spec)), "value")),))
            except OverflowError:
                raise ValueError(f"value {spec} must be finite and >= 0") from None
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f"expected a number or STEP:VALUE,STEP:VALUE,..., got {spec!r}")
        if ":" not in spec:
            return cls(((0, _number(spec.strip(), "value")),))
        points = []
        for part in spec.split(","):
            step_text, sep, value_text = part.strip().partition(":")
            if not sep or ":" in value_text:
                raise ValueError(f"schedule point {part.strip()!r} is not STEP:VALUE")
            try:
                step = int(step_text)
            except ValueError:
                raise ValueError(f"schedule point {part.strip()!r}: step {step_text!r} is not an integer") from None
            if step < 0:
                raise ValueError(f"schedule point {part.strip()!r}: step must be >= 0")
            if points and step <= points[-1][0]:
                raise ValueError(
                    f"schedule point {part.strip()!r}: steps must be strictly increasing (previous step "
                    f"{points[-1][0]})"
                )
            points.append((step, _number(value_text.strip(), f"schedule point {part.strip()!r}: value")))
        return cls(tuple(points))

    @property
    def constant(self) -> bool:
        return len(self.points) == 1

    @property
    def max(self) -> float:
        return max(value for _, value in self.points)

    def __call__(self, step: int) -> float:
        (first_step, first), (last_step, last) = self.points[0], self.points[-1]
        if step <= first_step:
            return first
        if step >= last_step:
            return last
        for (s0, v0), (s1, v1) in zip(self.points, self.points[1:]):
            if s0 <= step <= s1:
                return v0 + (v1 - v0) * (step - s0) / (s1 - s0)
        raise AssertionError("unreachable: the points cover [first_step, last_step]")

    def canonical(self) -> Union[float, str]:
        """What the parsed command line holds: a float for a constant, else ``STEP:VALUE,...``."""
        if self.constant:
            return self.points[0][1]
        return ",".join(f"{step}:{_text(value)}" for step, value in self.points)

    def describe(self) -> str:
        if self.constant:
            return f"constant {self.points[0][1]:g}"
        (s0, v0), (s1, v1) = self.points[0], self.points[-1]
        path = " -> ".join(f"{value:g} at step {step}" for step, value in self.points)
        return f"piecewise linear: {path} ({v0:g} before step {s0}, {v1:g} after step {s1})"


class EntropyLambdaController:
    """lambda that keeps the rollout entropy near ``target`` x its first-step value (module docstring)."""

    def __init__(self, target: float, lam_max: float, init: float = 0.0, rate: float = 1.0):
        if not 0 < target <= 1:
            raise ValueError(f"lambda controller target must be in (0, 1], got {target}")
        if not (math.isfinite(lam_max) and lam_max >= 0):
            raise ValueError(f"lambda controller upper bound must be finite and >= 0, got {lam_max}")
        if not 0 <= init <= lam_max:
            raise ValueError(f"lambda controller start value must be in [0, {lam_max:g}] (the upper bound), got {init}")
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"lambda controller rate must be finite and > 0, got {rate}")
        self.target, self.lam_max, self.rate = float(target), float(lam_max), float(rate)
        self.value = float(init)
        self.reference: Optional[float] = None  # entropy of the first rollout batch

    def update(self, entropy: float) -> float:
        """Take step t's rollout entropy; return lambda_t (also kept in ``self.value``)."""
        entropy = float(entropy)
        if not math.isfinite(entropy) or entropy < 0:
            raise ValueError(f"rollout entropy must be finite and >= 0, got {entropy}")
        if self.reference is None:
            self.reference = entropy
        goal = self.target * self.reference
        if goal <= 0:  # a deterministic first batch: nothing to keep, so no positive reinforcement
            error = -ERROR_CLIP
        else:
            error = min(max(entropy / goal - 1.0, -ERROR_CLIP), ERROR_CLIP)
        self.value = min(max(self.value + self.rate * self.lam_max * error, 0.0), self.lam_max)
        return self.value
