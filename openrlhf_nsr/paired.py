"""Paired differences with 95% confidence intervals: how the miniature tells an effect from noise.

Every objective of a seed is trained from that seed's base and evaluated on that seed's held-out
problems, so two runs are compared *within* a seed (a paired difference) and the differences are
then pooled over seeds:

- several seeds: the difference per seed is the mean over that seed's held-out problems of
  (run A - run B); the interval is Student's t over those per-seed differences
  (mean ± t_{0.975, S-1} · sd / sqrt(S)). Each seed draws its own base, its own held-out problems
  and its own RL randomness, so the per-seed differences are independent draws of everything that
  varies, and the interval covers all of it;
- one seed: the interval is t over the per-problem differences of that seed (P - 1 degrees of
  freedom). It covers which problems were held out, not the training's randomness, and says so.

A claim is judged on its interval: it **holds** when the whole interval lies on the claimed side,
**fails** when the whole interval lies on the other side, and is **not separable** (from noise, at
this size) when the interval straddles the line.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

LEVEL = 0.95
# Student's t 0.975 quantiles (two-sided 95%) for 1..30 degrees of freedom; above, the
# Cornish-Fisher expansion around the normal quantile (error below 1e-4 from 30 df on).
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010, 2.1788,
         2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639,
         2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)  # fmt: skip
_Z975 = 1.959964

HOLDS, FAILS, NOT_SEPARABLE = "holds", "fails", "not separable"


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (a 95% two-sided interval)."""
    if df < 1:
        raise ValueError(f"need at least 1 degree of freedom, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))  # fmt: skip


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% interval; ``over`` names what the interval is taken over (seeds or problems)."""

    mean: float
    low: float
    high: float
    n: int
    over: str

    def scaled(self, factor: float) -> "Interval":
        return Interval(self.mean * factor, self.low * factor, self.high * factor, self.n, self.over)

    def text(self, digits: int = 1) -> str:
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def mean_interval(values: Sequence[float], over: str) -> Interval:
    """The mean of ``values`` with its Student-t 95% interval (one value: a zero-width interval, flagged by n=1)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values")
    mean = statistics.fmean(values)
    if len(values) == 1:
        return Interval(mean, mean, mean, 1, over)
    half = t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return Interval(mean, mean - half, mean + half, len(values), over)


def paired_difference(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> Interval:
    """A - B from per-seed lists of per-problem values (the same problems, in the same order, for A and B).

    Several seeds: t over the per-seed mean differences. One seed: t over its per-problem differences.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"need the same seeds for both runs, got {len(a)} and {len(b)}")
    diffs = []
    for seed_a, seed_b in zip(a, b):
        if len(seed_a) != len(seed_b) or not seed_a:
            raise ValueError(f"need the same problems for both runs, got {len(seed_a)} and {len(seed_b)}")
        diffs.append([x - y for x, y in zip(seed_a, seed_b)])
    if len(diffs) == 1:
        return mean_interval(diffs[0], over="problems")
    return mean_interval([statistics.fmean(d) for d in diffs], over="seeds")


def scalar_difference(a: Sequence[float], b: Sequence[float]) -> Interval:
    """A - B from one value per seed (the entropy): t over the seeds (one seed: no interval, n=1)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"need the same seeds for both runs, got {len(a)} and {len(b)}")
    return mean_interval([x - y for x, y in zip(a, b)], over="seeds")


def above(interval: Interval, line: float = 0.0) -> str:
    """The claim "the difference is above ``line``"."""
    if interval.n < 2:
        return NOT_SEPARABLE
    return HOLDS if interval.low > line else FAILS if interval.high < line else NOT_SEPARABLE


def below(interval: Interval, line: float = 0.0) -> str:
    """The claim "the difference is below ``line``"."""
    if interval.n < 2:
        return NOT_SEPARABLE
    return HOLDS if interval.high < line else FAILS if interval.low > line else NOT_SEPARABLE


def within(interval: Interval, tolerance: float) -> str:
    """The claim "the difference is within ±``tolerance``" (an equivalence test: the whole interval inside)."""
    if interval.n < 2:
        return NOT_SEPARABLE
    if -tolerance <= interval.low and interval.high <= tolerance:
        return HOLDS
    return FAILS if interval.high < -tolerance or interval.low > tolerance else NOT_SEPARABLE


def crossover_k(differences: Dict[int, Interval]) -> Dict[str, Optional[int]]:
    """Where B's pass@k curve falls below A's, from the intervals of A - B at each k (Figure 2's crossover).

    ``estimate``: the smallest k from which the mean difference stays above 0; the range: ``low``,
    the smallest k from which the interval's upper end stays above 0 (before it, A is surely
    below B), and ``high``, the smallest k from which the interval's lower end stays above 0 (from
    it on, A is surely above B). None: not reached up to the largest k.
    """
    ks = sorted(differences)

    def first(test) -> Optional[int]:
        found = None
        for k in reversed(ks):
            if not test(differences[k]):
                break
            found = k
        return found

    return {"estimate": first(lambda d: d.mean > 0), "low": first(lambda d: d.high > 0),
            "high": first(lambda d: d.low > 0)}  # fmt: skip


def per_problem_pass_at_k(counts: Sequence[Sequence[int]], k: int) -> List[float]:
    """pass@k of each problem from its (samples, correct) counts (metrics.pass_at_k, the unbiased estimator)."""
    from openrlhf_nsr.metrics import pass_at_k

    return [pass_at_k(n, c, k) for n, c in counts]
