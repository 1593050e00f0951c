"""The miniature's paired intervals: the estimator on synthetic data with a known answer, and the verdicts."""

import math
import random
import statistics

import pytest

from openrlhf_nsr import paired
from openrlhf_nsr.metrics import pass_at_k

# Student's t 0.975 quantiles from a statistics table (independent of paired's own table).
KNOWN_T = {1: 12.706, 2: 4.303, 4: 2.776, 9: 2.262, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980,
           1000: 1.962}  # fmt: skip


@pytest.mark.parametrize("df,expected", KNOWN_T.items())
def test_t_quantiles_match_the_table(df, expected):
    assert paired.t975(df) == pytest.approx(expected, abs=1.5e-3)


def test_t_quantiles_fall_toward_the_normal_and_reject_zero_df():
    values = [paired.t975(df) for df in range(1, 500)]
    assert values == sorted(values, reverse=True) and values[-1] > 1.959964
    with pytest.raises(ValueError, match="at least 1 degree of freedom"):
        paired.t975(0)


def test_mean_interval_by_hand():
    interval = paired.mean_interval([1, 2, 3, 4, 5], over="seeds")
    half = 2.776445 * statistics.stdev([1, 2, 3, 4, 5]) / math.sqrt(5)
    assert (interval.mean, interval.n, interval.over) == (3, 5, "seeds")
    assert interval.low == pytest.approx(3 - half, abs=1e-4) and interval.high == pytest.approx(3 + half, abs=1e-4)
    one = paired.mean_interval([0.25], over="seeds")
    assert (one.low, one.high, one.n) == (0.25, 0.25, 1)


def _synthetic(rng, seeds, problems, effect):
    """Per-seed, per-problem values of two runs, A = B + effect + the seed's shift + per-problem noise; the shifts."""
    a, b, shifts = [], [], []
    for _ in range(seeds):
        shift = rng.gauss(0, 0.05)  # the training's randomness: shared by all problems of a seed
        base = [rng.random() for _ in range(problems)]
        b.append(base)
        a.append([x + effect + shift + rng.gauss(0, 0.1) for x in base])
        shifts.append(shift)
    return a, b, shifts


@pytest.mark.parametrize("seeds", [1, 5])
def test_paired_intervals_cover_the_true_difference_95_percent_of_the_time(seeds):
    """Over seeds: the true effect. One seed: the interval is over its problems, so it covers that seed's
    own true difference (the effect plus the seed's shift), not the effect: it leaves training noise out."""
    rng = random.Random(0)
    trials, covered = 2000, 0
    for _ in range(trials):
        a, b, shifts = _synthetic(rng, seeds, 40, effect=0.03)
        interval = paired.paired_difference(a, b)
        truth = 0.03 + shifts[0] if seeds == 1 else 0.03
        assert interval.over == ("problems" if seeds == 1 else "seeds") and interval.n == (40 if seeds == 1 else 5)
        covered += interval.low <= truth <= interval.high
    assert covered / trials == pytest.approx(0.95, abs=0.02)


def test_one_seeds_interval_misses_the_effect_when_seeds_differ():
    """Why a claim is never judged on one seed: its interval ignores the shift between seeds."""
    rng = random.Random(1)
    trials = 1000
    covered = sum(_covers(paired.paired_difference(*_synthetic(rng, 1, 400, effect=0.03)[:2]), 0.03)
                  for _ in range(trials))  # fmt: skip
    assert covered / trials < 0.6


def _covers(interval, value):
    return interval.low <= value <= interval.high


def test_a_difference_over_seeds_pools_the_seed_means():
    a = [[0.5, 0.7], [0.2, 0.4], [0.9, 0.9]]
    b = [[0.4, 0.4], [0.2, 0.2], [0.5, 0.9]]
    interval = paired.paired_difference(a, b)
    assert interval.mean == pytest.approx(statistics.fmean([0.2, 0.1, 0.2]))
    expected = paired.mean_interval([0.2, 0.1, 0.2], over="seeds")
    assert (interval.low, interval.high) == pytest.approx((expected.low, expected.high))
    assert (interval.n, interval.over) == (3, "seeds")
    with pytest.raises(ValueError, match="same problems"):
        paired.paired_difference([[0.1, 0.2]], [[0.1]])
    with pytest.raises(ValueError, match="same seeds"):
        paired.paired_difference([[0.1]], [[0.1], [0.2]])


def _iv(low, high, n=5):
    return paired.Interval((low + high) / 2, low, high, n, "seeds")


@pytest.mark.parametrize(
    "test,interval,line,verdict",
    [
        (paired.above, _iv(0.01, 0.05), 0, paired.HOLDS),
        (paired.above, _iv(-0.05, -0.01), 0, paired.FAILS),
        (paired.above, _iv(-0.01, 0.05), 0, paired.NOT_SEPARABLE),
        (paired.above, _iv(-0.009, 0.02), -0.01, paired.HOLDS),  # non-inferiority: above -1 point
        (paired.below, _iv(-0.05, -0.01), 0, paired.HOLDS),
        (paired.below, _iv(0.01, 0.05), 0, paired.FAILS),
        (paired.below, _iv(-0.05, 0.01), 0, paired.NOT_SEPARABLE),
        (paired.within, _iv(-0.02, 0.029), 0.03, paired.HOLDS),
        (paired.within, _iv(-0.08, -0.04), 0.03, paired.FAILS),
        (paired.within, _iv(-0.048, -0.028), 0.03, paired.NOT_SEPARABLE),  # straddles -3 points
        (paired.above, _iv(0.01, 0.05, n=1), 0, paired.NOT_SEPARABLE),  # one value: no interval
        (paired.within, _iv(0.0, 0.0, n=1), 0.03, paired.NOT_SEPARABLE),
    ],
)
def test_verdicts(test, interval, line, verdict):
    assert test(interval, line) == verdict


def test_crossover_from_the_intervals():
    # A - B by k: B above A at small k, surely below from k = 16, the mean crosses at 8.
    d = {1: _iv(-0.05, -0.03), 2: _iv(-0.04, -0.01), 4: _iv(-0.03, 0.01), 8: _iv(-0.01, 0.03), 16: _iv(0.01, 0.05),
         32: _iv(0.02, 0.06)}  # fmt: skip
    assert paired.crossover_k(d) == {"estimate": 8, "low": 4, "high": 16}
    assert paired.crossover_k({1: _iv(-0.05, -0.01), 2: _iv(-0.04, -0.02)}) == dict.fromkeys(
        ("estimate", "low", "high"))  # fmt: skip
    # A dip back below 0 at the end: the crossover is where A stays above, not the first time it is.
    d[32] = _iv(-0.02, 0.01)
    assert paired.crossover_k(d) == {"estimate": None, "low": 4, "high": None}


def test_per_problem_pass_at_k_is_the_unbiased_estimator():
    counts = [(64, 0), (64, 1), (64, 64), (64, 10)]
    assert paired.per_problem_pass_at_k(counts, 8) == [pass_at_k(n, c, 8) for n, c in counts]
    assert paired.per_problem_pass_at_k(counts, 1) == pytest.approx([0, 1 / 64, 1, 10 / 64])
