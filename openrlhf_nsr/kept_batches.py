"""Where the kept samples of a psr / nsr rollout go, when the others are removed (``drop`` mode).

The paper's reference code removes the samples that carry no gradient and trains on what is left
in mini-batches of a fixed number of samples, one optimiser step each: fewer kept samples, fewer
steps. Under data parallelism every rank must run the same number of micro-batches per optimiser
step (DeepSpeed reduces gradients across ranks at the step's last micro-batch). Two pure
functions lay that out; the adapter (openrlhf_patch.py) applies them:

- ``rank_shares``: which kept samples each actor rank gets (round robin: counts differ by at most 1),
  and into how many micro-batches of at most ``micro_batch_size`` each rank's share is cut for the
  experience maker's forward passes (the same number on every rank, as OpenRLHF's dispatch needs);
- ``plan_optimizer_steps``: per rank, its optimiser steps, each a list of micro-batch sizes. Steps
  hold ``batch_size`` kept samples in all (``batch_size / world`` from each rank), the last one what
  is left; within a step every rank runs the same number of micro-batches (sizes <= the micro-batch
  size, as equal as possible). A size of 0 marks a micro-batch with no kept token (a rank whose share
  of the step is smaller than the number of micro-batches): it keeps the ranks in step and adds
  nothing to the loss or its normaliser.
"""

from __future__ import annotations

import math
from typing import List


def _cut(count: int, parts: int) -> List[int]:
    """``count`` split into ``parts`` sizes as equal as possible (larger first)."""
    return [count // parts + (i < count % parts) for i in range(parts)]


def rank_shares(count: int, world: int, micro_batch_size: int) -> List[List[int]]:
    """Per rank, the sizes of its micro-batches for ``count`` kept samples dealt round robin.

    Every rank gets the same number of micro-batches (at least one); a size of 0 is a micro-batch
    of one placeholder sample with no kept token (fewer kept samples than micro-batches).
    """
    if world < 1 or micro_batch_size < 1 or count < 0:
        raise ValueError(
            f"need world >= 1, micro_batch_size >= 1, count >= 0; got {world}, {micro_batch_size}, {count}"
        )
    shares = _cut(count, world)
    parts = max(1, math.ceil(max(shares) / micro_batch_size))
    return [_cut(share, parts) for share in shares]


def plan_optimizer_steps(counts: List[int], batch_size: int, micro_batch_size: int) -> List[List[List[int]]]:
    """Per rank, its optimiser steps as lists of micro-batch sizes (0 = no kept token, see module doc).

    ``counts[r]`` is rank r's number of kept samples; ``batch_size`` the global samples per
    optimiser step (``--train.batch_size``, a multiple of the number of ranks). No kept sample
    anywhere: no step at all.
    """
    world = len(counts)
    if world < 1 or batch_size < world or batch_size % world or micro_batch_size < 1 or min(counts) < 0:
        raise ValueError(
            f"cannot plan optimiser steps of {batch_size} samples over {world} ranks with micro-batches of "
            f"{micro_batch_size} and per-rank counts {counts}"
        )
    per_rank = batch_size // world
    steps = max(math.ceil(count / per_rank) for count in counts)
    plan: List[List[List[int]]] = [[] for _ in counts]
    for step in range(steps):  # every count is <= steps * per_rank, so the last step takes the rest
        shares = [max(0, min(per_rank, count - step * per_rank)) for count in counts]
        parts = max(1, math.ceil(max(shares) / micro_batch_size))
        for rank, share in enumerate(shares):
            plan[rank].append(_cut(share, parts))
    return plan
