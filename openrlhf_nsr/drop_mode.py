"""Drop mode: psr / nsr train only on the samples that carry gradient, as the reference code does.

The paper's reference code removes the other samples from the batch and trains on what is left in
mini-batches of a fixed number of samples (``--train.batch_size``), one optimiser step each: fewer
kept samples, fewer optimiser steps, and the token-mean of each step counts only kept tokens. Here:

1. ``train_step`` (PPOTrainer / async TrainingActor process): the rollout's rewards are known when
   generation ends, so the whole batch's metrics are taken, then only the kept samples go on to
   OpenRLHF's experience maker (no forward pass for the others). Nothing kept: no step at all.
2. ``split_kept_samples``: the kept samples as micro-rollout batches for the actor ranks (placeholders,
   samples with no kept token, where there are fewer kept samples than ranks or micro-batches).
3. ``ppo_train`` (PolicyModelActor process): OpenRLHF's own loop and ``training_step`` over optimiser
   steps of ``--train.batch_size`` kept samples, ``batch_size / ranks`` from each rank, the last step
   what is left (its own token-mean; the reference scales it by k / batch instead). Inside a step,
   micro-batches of ``--train.micro_batch_size`` samples (``kept_micro_batches``) or, with dynamic
   batching, of at most ``--train.max_tokens_per_gpu`` tokens (``setup_kept_dynamic_batch``, OpenRLHF's
   own balancing); every rank runs the same number per step (DeepSpeed reduces at each boundary).

Where OpenRLHF lays out the batches itself across a ring-attention or tensor-parallel group, the
samples are masked instead (action mask 0, same update per step, no compute saved): ``masking_reason``
says why, and the wrapper logs it at start-up.

State: one ``DropState`` per OpenRLHF object that needs one (the experience maker on the trainer side,
the strategy on the actor side), from ``state_of``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, List, Optional

import torch

from openrlhf_nsr import objectives


@dataclass
class DropState:
    """What drop mode carries between OpenRLHF's calls within one rollout batch.

    Trainer side (on the experience maker): ``removing`` is True while the kept samples go through
    OpenRLHF's ``train_step``; ``batch_stats`` are the whole batch's rollout metrics, taken before
    removal and logged with the step. Actor side (on the strategy): ``kept`` is (replay buffer,
    micro-batch size) while ``ppo_train`` runs the fixed-size layout, ``boundary`` whether the
    micro-batch being trained ends its optimiser step, ``optimizer_steps`` the steps planned so far.
    """

    removing: bool = False
    batch_stats: Optional[dict] = None
    kept: Optional[tuple] = None
    boundary: Optional[bool] = None
    optimizer_steps: int = 0


_STATE = "_openrlhf_nsr_drop_state"


def state_of(owner) -> DropState:
    state = getattr(owner, _STATE, None)
    if state is None:
        state = DropState()
        setattr(owner, _STATE, state)
    return state


def ignored_samples_mode(estimator: str, ignored_samples: Optional[str]) -> Optional[str]:
    """``drop`` / ``zero`` for an objective that ignores samples (its default when not given); None otherwise."""
    if estimator not in objectives.objective_names() or not objectives.get_objective(estimator).ignores_samples:
        return None
    return ignored_samples or objectives.DEFAULT_IGNORED_SAMPLES


def masking_reason(ring_attn_size: int = 1, tensor_parallel_size: int = 1) -> Optional[str]:
    """Why drop mode masks the samples with no gradient instead of removing them under this layout; None
    if it removes them."""
    sizes = {"ring_attn_size": ring_attn_size, "tensor_parallel_size": tensor_parallel_size}
    reasons = [f"--ds.{name} {size}" for name, size in sizes.items() if size != 1]
    if not reasons:
        return None
    return (
        f"with {' and '.join(reasons)} OpenRLHF lays out the batches across the group itself, so drop mode "
        "masks the samples with no gradient (same update per optimiser step, OpenRLHF's fixed number of "
        "steps, no compute saved) instead of removing them"
    )


def _drops(args) -> bool:
    adv = args.algo.advantage
    return ignored_samples_mode(adv.estimator, getattr(adv, "ignored_samples", None)) == "drop"


def removes_samples(args) -> bool:
    """psr / nsr in drop mode, removing (not masking) the samples that carry no gradient."""
    ds = args.ds
    return (
        _drops(args)
        and masking_reason(getattr(ds, "ring_attn_size", 1), getattr(ds, "tensor_parallel_size", 1)) is None
    )


def mask_samples(experience, dropped: torch.Tensor) -> None:
    """Turn the ``dropped`` samples of ``experience`` into padding (drop mode where it masks).

    OpenRLHF treats action-mask-0 positions as padding everywhere (actor log-probs, policy,
    entropy and KL losses, the optimiser-step token count, dynamic batching), so the update is
    the one computed on the batch without them. Their per-token tensors are zeroed like padding.
    """
    if not dropped.any():
        return
    pad = dropped.unsqueeze(-1).to(experience.action_mask.device)
    experience.action_mask = experience.action_mask.masked_fill(pad, 0)
    for field in ("action_log_probs", "base_action_log_probs", "rollout_log_probs", "advantages", "returns"):
        value = getattr(experience, field)
        if isinstance(value, torch.Tensor):
            setattr(experience, field, value.masked_fill(pad.to(value.device), 0))


# ── the layout (pure) ──


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


def step_shares(counts: List[int], batch_size: int) -> List[List[int]]:
    """Per optimiser step, how many of its kept samples each rank holds.

    ``counts[r]`` is rank r's number of kept samples; ``batch_size`` the global samples per step
    (``--train.batch_size``, a multiple of the number of ranks): ``batch_size / ranks`` from each rank,
    the last step what is left. With counts within one of each other (as the adapter deals them)
    that is ceil(sum / batch_size) steps. No kept sample anywhere: no step.
    """
    world = len(counts)
    if world < 1 or batch_size < world or batch_size % world or min(counts) < 0:
        raise ValueError(f"cannot plan optimiser steps of {batch_size} samples over {world} ranks, counts {counts}")
    per_rank = batch_size // world
    steps = max(math.ceil(count / per_rank) for count in counts)
    return [[max(0, min(per_rank, count - step * per_rank)) for count in counts] for step in range(steps)]


def plan_optimizer_steps(counts: List[int], batch_size: int, micro_batch_size: int) -> List[List[List[int]]]:
    """Per rank, its optimiser steps as lists of micro-batch sizes of at most ``micro_batch_size``,
    the same number of micro-batches on every rank within a step (0 = a placeholder, no kept token)."""
    if micro_batch_size < 1:
        raise ValueError(f"micro_batch_size must be >= 1, got {micro_batch_size}")
    plan: List[List[List[int]]] = [[] for _ in counts]
    for shares in step_shares(counts, batch_size):
        parts = max(1, math.ceil(max(shares) / micro_batch_size))
        for rank, share in enumerate(shares):
            plan[rank].append(_cut(share, parts))
    return plan


# ── PPOTrainer / TrainingActor: removal before any forward pass ──


def train_step(trainer, rollout_samples, global_step, step_original: Callable, whole_batch_stats: Callable):
    """OpenRLHF's ``train_step`` on the kept samples only; ``whole_batch_stats(trainer, samples)``
    gives the rollout metrics of the whole batch, taken first."""
    args = trainer.args
    stats = whole_batch_stats(trainer, rollout_samples)
    correct = objectives.is_correct(torch.cat([s.rewards.flatten().float() for s in rollout_samples]))
    _, carries_grad = objectives.compute_advantages(args.algo.advantage.estimator, correct)
    kept = [sample for sample, keep in zip(rollout_samples, carries_grad.tolist()) if keep]
    if not kept:  # nothing to learn from: no forward pass, no optimiser step, weights unchanged
        return stats, global_step + 1
    state = state_of(trainer.experience_maker)
    state.batch_stats, state.removing = stats, True
    try:
        return step_original(trainer, kept, global_step)
    finally:
        state.removing = False


def _placeholder(sample):
    """A copy of ``sample`` with no kept token: fills a rank's micro-batch, adds nothing to the update."""
    return dataclasses.replace(sample, action_mask=torch.zeros_like(sample.action_mask), info=dict(sample.info))


def _world(args) -> int:
    return args.actor.num_nodes * args.actor.num_gpus_per_node


def split_kept_samples(maker, samples, split_original: Callable):
    """The kept samples as the micro-rollout batches OpenRLHF hands to the actor ranks.

    With dynamic batching, OpenRLHF's own split (micro-batches by ``--rollout.max_tokens_per_gpu``;
    ``balance_experiences`` then deals the samples to the ranks by length, counts within one), given at
    least one sample per rank. Otherwise dealt round robin, the same number of micro-batches on every
    rank (OpenRLHF hands them out in contiguous chunks).
    """
    from openrlhf.trainer.ppo_utils.experience import Experience

    args = maker.strategy.args
    world = _world(args)
    if args.train.dynamic_batch_enable:
        padded = list(samples) + [_placeholder(samples[0]) for _ in range(world - len(samples))]
        return split_original(maker, padded)
    parts = []
    for rank, sizes in enumerate(rank_shares(len(samples), world, args.rollout.micro_batch_size)):
        dealt, start = samples[rank::world], 0
        for size in sizes:
            parts.append(dealt[start : start + size] if size else [_placeholder(samples[0])])
            start += size
    position = 0
    for part in parts:
        for sample in part:
            sample.index, position = [position], position + 1
    return [Experience.concat_experiences(part, maker.tokenizer.pad_token_id) for part in parts]


# ── PolicyModelActor: optimiser steps of kept samples ──


def _rank_counts(strategy, count: int, device):
    """(world, rank, every rank's count) over the data-parallel group."""
    import torch.distributed as dist
    from openrlhf.utils import loss_utils

    group = loss_utils._get_dp_group(strategy)
    distributed = dist.is_available() and dist.is_initialized()
    world = dist.get_world_size(group=group) if distributed else 1
    rank = dist.get_rank(group=group) if distributed else 0
    counts = torch.zeros(world, dtype=torch.long, device=device)
    counts[rank] = count
    if distributed:
        dist.all_reduce(counts, group=group)
    return group, world, rank, counts.tolist()


def _device():
    # the device OpenRLHF's own normalisers reduce on: DeepSpeed's GPU group (NCCL) takes no CPU tensor
    return torch.cuda.current_device() if torch.cuda.is_available() else "cpu"


def _kept_items(replay_buffer):
    items = [item for item in replay_buffer.items if item.action_mask.any()]
    spare = items[0] if items else next(iter(replay_buffer.items), None)
    return items, spare


def _nothing_received():
    return RuntimeError("this actor rank received no sample at all: cannot keep the ranks in step")


def kept_micro_batches(strategy, replay_buffer, micro_batch_size, accumulated_gradient, mask_fn, normalisers):
    """(micro-batch, loss normalisers) of this rank, in optimiser steps of ``--train.batch_size`` kept
    samples, micro-batches of at most ``micro_batch_size`` (the fixed-size layout).

    Replaces OpenRLHF's fixed schedule (DataLoader over the replay buffer, drop_last, gas micro-batches
    per step). Before yielding a micro-batch it sets ``DropState.boundary``, which ``training_step``
    makes DeepSpeed's gradient-accumulation boundary. The normalisers are OpenRLHF's own for one step:
    its kept tokens summed over the step's micro-batches and all ranks (``normalisers`` guards 0).
    """
    from openrlhf.utils import loss_utils

    state = state_of(strategy)
    items, spare = _kept_items(replay_buffer)
    items = [items[i] for i in torch.randperm(len(items)).tolist()]  # shuffled, as OpenRLHF's DataLoader
    group, world, rank, counts = _rank_counts(strategy, len(items), _device())
    plan = plan_optimizer_steps(counts, strategy.args.train.batch_size, micro_batch_size)
    state.optimizer_steps += len(plan[rank])
    start = 0
    for step in plan[rank]:
        batches = []
        for size in step:
            if size == 0 and spare is None:
                raise _nothing_received()
            batches.append(replay_buffer.collate_fn(items[start : start + size] if size else [_placeholder(spare)]))
            start += size
        info = loss_utils._optimizer_step_loss_norm(
            [mask_fn(batch) for batch in batches], group, world, max(int(accumulated_gradient), 1)
        )
        for i, batch in enumerate(batches):
            state.boundary = i == len(batches) - 1
            yield batch, normalisers(info)
    state.boundary = None


def setup_kept_dynamic_batch(replay_buffer, strategy) -> None:
    """``NaiveReplayBuffer.setup_dynamic_batch`` for drop mode: the same fields OpenRLHF's dynamic path
    reads (micro-batch indices, optimiser-step flags, per-step token and sample counts), laid out in
    optimiser steps of ``--train.batch_size`` kept samples, with OpenRLHF's own token balancing inside
    each step and the same number of micro-batches per step on every rank.

    OpenRLHF's version plans ``rollout.batch_size * n / train.batch_size`` steps whatever is in the
    buffer, at most ``len // (batch / ranks)``, and leaves the rest of the samples out.
    """
    import torch.distributed as dist
    from openrlhf.utils.seqlen_balancing import get_minimum_num_micro_batch_size, get_seqlen_balanced_partitions

    args = strategy.args
    state = state_of(strategy)
    items, spare = _kept_items(replay_buffer)
    device = _device()
    group, world, rank, counts = _rank_counts(strategy, len(items), device)
    plan = step_shares(counts, args.train.batch_size)
    lengths = [int(item.total_length.item()) for item in items]

    starts, start = [], 0
    for shares in plan:
        starts.append(start)
        start += shares[rank]
    budget = (args.train.max_tokens_per_gpu, args.ds.ring_attn_size, args.ds.tensor_parallel_size)
    local = [
        get_minimum_num_micro_batch_size(lengths[s : s + shares[rank]], *budget) if shares[rank] else 1
        for s, shares in zip(starts, plan)
    ]
    # per step: micro-batches (max over ranks), kept tokens and samples (sums over ranks)
    totals = torch.zeros(len(plan), 3, dtype=torch.float64, device=device)
    for step, (s, shares) in enumerate(zip(starts, plan)):
        mine = items[s : s + shares[rank]]
        totals[step] = torch.tensor([0, sum(int(it.action_mask.sum()) for it in mine), len(mine)], dtype=torch.float64)
    micro = torch.tensor(local, dtype=torch.long, device=device)
    if world > 1:
        dist.all_reduce(micro, op=dist.ReduceOp.MAX, group=group)
        dist.all_reduce(totals, group=group)

    placeholder = len(items)  # index of the placeholder sample, appended after the kept ones
    indices, loss_scale, tokens, samples, optimizer_step = [], [], [], [], []
    for step, (s, shares) in enumerate(zip(starts, plan)):
        count, parts = shares[rank], int(micro[step])
        if count >= parts:
            partitions = get_seqlen_balanced_partitions(lengths[s : s + count], parts, equal_size=False)
            partitions = [[s + i for i in partition] for partition in partitions]
        else:  # fewer samples than the step's micro-batches on this rank: one each, then placeholders
            partitions = [[s + i] for i in range(count)] + [[placeholder] for _ in range(parts - count)]
        if any(partition == [placeholder] for partition in partitions) and spare is None:
            raise _nothing_received()
        indices.extend(partitions)
        loss_scale.extend(len(p) / max(count, 1) if p != [placeholder] else 0.0 for p in partitions)
        tokens.extend([float(totals[step, 1])] * parts)
        samples.extend([float(totals[step, 2])] * parts)
        optimizer_step.extend([0] * (parts - 1) + [1])

    replay_buffer.items = items + ([_placeholder(spare)] if spare is not None else [])
    replay_buffer.dynamic_indices = indices
    replay_buffer.sample_batch_size = 1
    replay_buffer.dynamic_sample_loss_scale = loss_scale
    replay_buffer.dynamic_batch_num_tokens = tokens
    replay_buffer.dynamic_global_batch_size = samples
    replay_buffer.dynamic_optimizer_step = optimizer_step
    state.optimizer_steps += len(plan) * max(int(getattr(args.train, "max_epochs", 1)), 1)


def ppo_train(trainer, kl_ctl, train_original: Callable):
    """OpenRLHF's ``ppo_train`` over optimiser steps of kept samples; logs ``optimizer_steps``."""
    state = state_of(trainer.strategy)
    state.optimizer_steps = 0
    if not trainer.args.train.dynamic_batch_enable:  # read by kept_micro_batches, one replay buffer per actor
        state.kept = (trainer.replay_buffer, trainer.micro_train_batch_size)
    try:
        status = train_original(trainer, kl_ctl)
    finally:
        state.kept = None
    status["optimizer_steps"] = float(state.optimizer_steps)  # over all epochs
    return status
