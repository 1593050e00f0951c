"""pass@k with the unbiased estimator of Chen et al. (2021), "Evaluating Large Language Models
Trained on Code" (arXiv 2107.03374): for n samples of which c are correct,

    pass@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n - c + 1}^{n} (1 - k / i),

the product form being the numerically stable one (no huge binomials).
"""

from __future__ import annotations

import operator
from typing import Iterable, List, Sequence, Tuple


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) is correct."""
    for name, value in (("n", n), ("c", c), ("k", k)):
        if not isinstance(value, int) and not hasattr(value, "__index__"):
            raise TypeError(f"pass_at_k: {name} must be an integer, got {value!r}")
    n, c, k = operator.index(n), operator.index(c), operator.index(k)
    if n < 1 or k < 1 or c < 0:
        raise ValueError(f"pass_at_k needs n >= 1, k >= 1, c >= 0; got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass_at_k: k={k} is larger than the number of samples n={n}; draw at least k samples")
    if c > n:
        raise ValueError(f"pass_at_k: c={c} correct out of n={n} samples is impossible")
    if n - c < k:
        return 1.0
    result = 1.0
    for i in range(n - c + 1, n + 1):
        result *= 1.0 - k / i
    return 1.0 - result


def default_ks(n: int) -> List[int]:
    """k = 1, 2, 4, ... up to n (n itself included)."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def mean_pass_at_k(counts: Iterable[Tuple[int, int]], ks: Sequence[int]) -> dict:
    """{k: mean over problems of pass@k} for per-problem (n, c) counts."""
    counts = list(counts)
    if not counts:
        raise ValueError("mean_pass_at_k: no problems")
    return {k: sum(pass_at_k(n, c, k) for n, c in counts) / len(counts) for k in ks}
