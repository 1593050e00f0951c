"""pass@k: the unbiased estimator of Chen et al. (2021) in its product form."""

from math import comb

import pytest

from openrlhf_nsr.metrics import default_ks, mean_pass_at_k, pass_at_k


@pytest.mark.parametrize("n", [1, 2, 5, 16, 64, 256])
def test_pass_at_k_equals_the_exact_combinatorial_formula(n):
    for c in range(n + 1):
        for k in default_ks(n):
            exact = 1 - comb(n - c, k) / comb(n, k)
            assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-12, abs=1e-12), (n, c, k)


def test_pass_at_k_is_stable_where_binomials_are_huge():
    value = pass_at_k(1024, 3, 512)
    assert 0 <= value <= 1
    assert value == pytest.approx(1 - comb(1021, 512) / comb(1024, 512), rel=1e-9)


@pytest.mark.parametrize("n,c,k", [(10, 0, 1), (10, 10, 10), (10, 1, 1), (1, 1, 1)])
def test_edge_values(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(c / n if k == 1 else 1.0 if c else 0.0, abs=1e-15)


@pytest.mark.parametrize(
    "n,c,k,message",
    [(4, 1, 8, "larger than the number of samples"), (4, 5, 1, "impossible"), (0, 0, 1, "n >= 1"), (4, 1, 0, "k >= 1")],
)
def test_impossible_arguments_are_clear_errors(n, c, k, message):
    with pytest.raises(ValueError, match=message):
        pass_at_k(n, c, k)


def test_non_integers_are_refused():
    with pytest.raises(TypeError):
        pass_at_k(4.5, 1, 1)


def test_default_ks_are_powers_of_two_up_to_n():
    assert default_ks(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert default_ks(10) == [1, 2, 4, 8, 10]
    assert default_ks(1) == [1]


def test_mean_pass_at_k_averages_over_problems():
    assert mean_pass_at_k([(4, 0), (4, 4), (4, 2)], [1, 4]) == pytest.approx({1: 0.5, 4: 2 / 3})
