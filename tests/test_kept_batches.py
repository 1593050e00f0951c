"""Drop mode removes the samples with no gradient and trains on optimiser steps of kept samples.

The layout (drop_mode.py) on its own, then OpenRLHF's own ActorPPOTrainer.ppo_train through the
adapter's removal schedule, compared with the update computed by hand on the reduced batch in one
process: with one actor rank, and with two ranks in data parallel (torch.distributed over gloo, a
stand-in for DeepSpeed that averages gradients across ranks at the boundary the adapter sets).
"""

import os
import socket
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from experience_builders import make_args, make_maker, make_rollout
from openrlhf.models import PolicyLoss
from openrlhf.trainer.ppo_utils.experience import make_experience_batch
from test_actor_training import VOCAB, tiny_actor, trainer_for

from openrlhf_nsr import drop_mode

# ── the layout ──


@pytest.mark.parametrize("count,world,micro", [(13, 2, 8), (1, 2, 8), (0, 2, 4), (64, 4, 4), (5, 1, 2), (7, 3, 1)])
def test_rank_shares_deal_every_kept_sample_with_equal_micro_batch_counts(count, world, micro):
    shares = drop_mode.rank_shares(count, world, micro)
    assert sum(map(sum, shares)) == count and len(shares) == world
    assert len({len(s) for s in shares}) == 1  # the same number of micro-batches on every rank
    assert max(map(sum, shares)) - min(map(sum, shares)) <= 1
    assert all(0 <= size <= micro for s in shares for size in s)


@pytest.mark.parametrize(
    "counts,batch,micro",
    [
        ([7, 6], 16, 4),
        ([9, 8], 16, 4),
        ([32, 32], 16, 4),
        ([1, 0], 16, 4),
        ([5, 5, 4], 6, 1),
        ([3], 8, 2),
        ([0, 0], 8, 2),
    ],
)
def test_plan_steps_of_batch_size_kept_samples_ranks_in_lockstep(counts, batch, micro):
    plan = drop_mode.plan_optimizer_steps(counts, batch, micro)
    total = sum(counts)
    steps = -(-total // batch)  # ceil: fewer kept samples, fewer steps
    assert all(len(rank) == steps for rank in plan)
    for step in range(steps):
        sizes = [plan[r][step] for r in range(len(counts))]
        assert len({len(s) for s in sizes}) == 1, sizes  # same micro-batch count on every rank
        held = sum(map(sum, sizes))
        assert held == (batch if step < steps - 1 else total - batch * (steps - 1)), (step, sizes)
        assert all(0 <= size <= micro for s in sizes for size in s)
    assert [sum(map(sum, rank)) for rank in plan] == counts


def test_nothing_kept_plans_no_step_and_bad_settings_are_refused():
    assert drop_mode.plan_optimizer_steps([0, 0], 8, 2) == [[], []]
    with pytest.raises(ValueError, match="cannot plan"):
        drop_mode.plan_optimizer_steps([3, 3], 7, 2)  # not a multiple of the ranks


# ── the update, against the reduced batch by hand ──

N = 4
LR = 0.5
SEED = 123


def rollout_and_actor(rewards):
    """A tiny real actor and its rollout with nsr advantages (old log-probs from the policy itself)."""
    actor = tiny_actor()
    args = make_args("nsr", N)
    args.train = SimpleNamespace(dynamic_batch_enable=False, batch_size=8)
    args.ds = SimpleNamespace(tensor_parallel_size=1, packing_samples=False, ring_attn_size=1)
    args.actor = SimpleNamespace(entropy_coef=None, aux_loss_coef=0)
    args.algo.kl.use_loss = False
    rollout = make_rollout(rewards, micro_batch_size=4, vocab=VOCAB, seed=7, max_response=5)
    with torch.no_grad():
        for exp in rollout:
            exp.action_log_probs = actor(exp.sequences, exp.action_mask, attention_mask=exp.attention_mask)
    experiences = make_maker(args).compute_advantages_and_returns(rollout)
    return actor, args, experiences


def kept_items(experiences):
    """The kept samples as the replay buffer holds them (one Experience per sample), in rollout order."""
    from openrlhf.trainer.ppo_utils.replay_buffer import NaiveReplayBuffer

    with mock.patch.object(torch.cuda, "current_device", lambda: 0):  # its __init__ asks for a GPU (unused)
        buffer = NaiveReplayBuffer(1, cpu_offload=False)
    for exp in experiences:
        buffer.append(exp)
    return [item for item in buffer.items if item.action_mask.any()]


def reference_update(actor, steps):
    """SGD on each step's samples, loss = OpenRLHF's PolicyLoss token-mean over the step's kept tokens."""
    loss_fn = PolicyLoss(clip_eps_low=0.2, clip_eps_high=0.2)
    optimizer = torch.optim.SGD(actor.parameters(), lr=LR)
    for samples in steps:
        batch = make_experience_batch(samples)
        log_probs = actor(batch.sequences, batch.action_mask, attention_mask=batch.attention_mask)
        loss = loss_fn(log_probs, batch.action_log_probs, batch.advantages, action_mask=batch.action_mask)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return [p.detach().clone() for p in actor.parameters()]


REWARDS = [1, 0, 0, 1] + [0, 0, 0, 1] + [1, 1, 0, 0] + [0, 0, 1, 0] + [0, 1, 0, 0] + [1, 1, 1, 1]  # 13 kept by nsr


def test_one_rank_trains_full_steps_of_kept_samples_then_the_rest(monkeypatch):
    actor, args, experiences = rollout_and_actor(REWARDS)
    items = kept_items(experiences)
    assert len(items) == 13  # 2 steps: 8 kept samples, then 5
    reference_actor = tiny_actor()

    trainer = trainer_for(actor, args, monkeypatch)
    trainer.actor_loss_fn = PolicyLoss(clip_eps_low=0.2, clip_eps_high=0.2)
    for exp in experiences:
        trainer.replay_buffer.append(exp)
    torch.manual_seed(SEED)
    status = trainer.ppo_train(kl_ctl=0.0)
    assert status["optimizer_steps"] == 2 and len(trainer.strategy.grad_norms) == 2

    torch.manual_seed(SEED)
    order = torch.randperm(len(items)).tolist()  # the shuffle of OpenRLHF's loop, reproduced
    shuffled = [items[i] for i in order]
    expected = reference_update(reference_actor, [shuffled[:8], shuffled[8:]])
    for got, want in zip(actor.parameters(), expected):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)


class DataParallelStrategy:
    """The calls ppo_train / training_step make on DeepspeedStrategy, for one of several ranks:
    loss scaled by 1 / gas, gradients averaged across ranks and stepped at the boundary."""

    def __init__(self, args, gas):
        self.args = args
        self.accumulated_gradient = gas
        self.ring_attn_group = None
        self.boundary = None
        self.steps = 0

    def is_rank_0(self):
        return dist.get_rank() == 0

    def all_reduce(self, data, op="mean"):
        return {k: float(v) for k, v in data.items()}  # metrics only; not under test here

    def backward(self, loss, model, optimizer):
        (loss / self.accumulated_gradient).backward()

    def optimizer_step(self, optimizer, model, scheduler, name=None):
        assert self.boundary is not None, "the removal schedule sets the boundary on every micro-batch"
        if self.boundary:
            for p in model.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= dist.get_world_size()  # DeepSpeed / DDP average across ranks
            optimizer.step()
            optimizer.zero_grad()
            self.steps += 1

    def get_grad_norm(self, model):
        return 0.0


def _rank_main(rank, world, port, rewards, out):
    import openrlhf_nsr

    openrlhf_nsr.apply()
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        actor, args, experiences = rollout_and_actor(rewards)
        items = kept_items(experiences)
        mine = items[rank::world]  # what split_kept_samples deals this rank
        trainer = trainer_for(actor, args, pytest.MonkeyPatch())
        trainer.strategy = DataParallelStrategy(args, gas=args.train.batch_size // (2 * world))
        actor.model.set_gradient_accumulation_boundary = lambda flag: setattr(trainer.strategy, "boundary", flag)
        trainer.micro_train_batch_size = 2
        trainer.actor_loss_fn = PolicyLoss(clip_eps_low=0.2, clip_eps_high=0.2)
        trainer.replay_buffer.items = list(mine)
        torch.manual_seed(SEED + rank)
        status = trainer.ppo_train(kl_ctl=0.0)
        torch.save(
            {"params": [p.detach() for p in actor.parameters()], "steps": trainer.strategy.steps, "status": status},
            os.path.join(out, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_ranks_in_data_parallel_make_the_update_of_the_reduced_batch_in_one_process(tmp_path):
    world = 2
    mp.start_processes(
        _rank_main, args=(world, _free_port(), REWARDS, str(tmp_path)), nprocs=world, start_method="spawn"
    )
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    # 13 kept samples, 7 and 6 per rank: a step of 8 (4 per rank), then the other 5 (3 + 2)
    assert [r["steps"] for r in results] == [2, 2] and results[0]["status"]["optimizer_steps"] == 2
    for a, b in zip(results[0]["params"], results[1]["params"]):
        assert torch.equal(a, b)  # the ranks stayed in step

    _, _, experiences = rollout_and_actor(REWARDS)
    items = kept_items(experiences)
    per_rank = []
    for rank in range(world):
        mine = items[rank::world]
        torch.manual_seed(SEED + rank)
        per_rank.append([mine[i] for i in torch.randperm(len(mine)).tolist()])
    steps = [per_rank[0][:4] + per_rank[1][:4], per_rank[0][4:] + per_rank[1][4:]]
    expected = reference_update(tiny_actor(), steps)
    for got, want in zip(results[0]["params"], expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


# ── the same, with packing and dynamic batching (the recipes' configuration) ──

TOKENS_PER_MICRO_BATCH = 16  # samples of 5-8 tokens: 2-3 per micro-batch, several per optimiser step


class DynamicBatchStrategy:
    """DeepspeedStrategy's calls under dynamic batching (gradient accumulation 1 in DeepSpeed; OpenRLHF
    steps where the replay buffer's plan says): gradients summed over the step's micro-batches and
    averaged across ranks at the step."""

    def __init__(self, args):
        self.args = args
        self.accumulated_gradient = 1
        self.ring_attn_group = None
        self.steps = 0

    def is_rank_0(self):
        return not dist.is_initialized() or dist.get_rank() == 0

    def all_reduce(self, data, op="mean"):
        return {k: float(v) for k, v in data.items()}  # metrics only; not under test here

    def backward(self, loss, model, optimizer):
        loss.backward()

    def optimizer_step(self, optimizer, model, scheduler, name=None):
        if dist.is_initialized():
            for p in model.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= dist.get_world_size()
        optimizer.step()
        optimizer.zero_grad()
        self.steps += 1

    def get_grad_norm(self, model):
        return 0.0


def dynamic_trainer(actor, args):
    from openrlhf.trainer.ppo_utils.replay_buffer import NaiveReplayBuffer

    args.train.dynamic_batch_enable = True
    args.train.max_tokens_per_gpu = TOKENS_PER_MICRO_BATCH
    args.train.max_epochs = 1
    args.ds.packing_samples = True
    actor.packing_samples = True  # OpenRLHF's packed forward (tests/test_packing.py)
    actor.model.config.use_cache = False  # as Actor(path) sets it: packed rows need a forward without a cache
    trainer = trainer_for(actor, args, pytest.MonkeyPatch())
    trainer.strategy = DynamicBatchStrategy(args)
    trainer.actor_loss_fn = PolicyLoss(clip_eps_low=0.2, clip_eps_high=0.2)
    with mock.patch.object(torch.cuda, "current_device", lambda: 0):  # its __init__ asks for a GPU (unused)
        trainer.replay_buffer = NaiveReplayBuffer(1, cpu_offload=False, packing_samples=True, dynamic_batch=True)
    return trainer


def _dynamic_rank_main(rank, world, port, rewards, out):
    import openrlhf_nsr

    openrlhf_nsr.apply()
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        actor, args, experiences = rollout_and_actor(rewards)
        trainer = dynamic_trainer(actor, args)
        trainer.replay_buffer.items = list(kept_items(experiences)[rank::world])  # as the ranks receive them
        trainer.replay_buffer.setup_dynamic_batch(trainer.strategy)
        layout = (
            [list(i) for i in trainer.replay_buffer.dynamic_indices],
            list(trainer.replay_buffer.dynamic_optimizer_step),
        )
        trainer.replay_buffer.items = list(kept_items(experiences)[rank::world])
        status = trainer.ppo_train(kl_ctl=0.0)
        torch.save(
            {"params": [p.detach() for p in actor.parameters()], "steps": trainer.strategy.steps, "status": status,
             "layout": layout, "lengths": [int(i.total_length) for i in trainer.replay_buffer.items]},
            os.path.join(out, f"rank{rank}.pt"),
        )  # fmt: skip
    finally:
        if world > 1:
            dist.destroy_process_group()


@pytest.mark.parametrize("world", [1, 2])
def test_dynamic_batching_trains_steps_of_kept_samples_in_token_budgeted_micro_batches(world, tmp_path):
    if world == 1:
        _dynamic_rank_main(0, 1, None, REWARDS, str(tmp_path))
    else:
        mp.start_processes(
            _dynamic_rank_main, args=(world, _free_port(), REWARDS, str(tmp_path)), nprocs=world, start_method="spawn"
        )
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    # 13 kept samples, steps of 8: 8 then 5 (1 rank: 8 + 5; 2 ranks: 4 + 4, then 3 + 2)
    assert [r["steps"] for r in results] == [2] * world
    assert all(r["status"]["optimizer_steps"] == 2 for r in results)
    for result in results:
        indices, flags = result["layout"]
        assert len(indices) == len(flags) and sum(flags) == 2 and flags[-1] == 1
        lengths = result["lengths"]
        for micro_batch in indices:  # the token budget holds (a placeholder index lies past the kept samples)
            assert sum(lengths[i] for i in micro_batch if i < len(lengths)) <= TOKENS_PER_MICRO_BATCH
        assert len(indices) > 2  # several micro-batches per step, so the budget was in force
    if world == 2:
        assert results[0]["layout"][1] == results[1]["layout"][1]  # the same micro-batch count per step
        for a, b in zip(results[0]["params"], results[1]["params"]):
            assert torch.equal(a, b)

    # by hand: step s takes the s-th batch_size / world kept samples of each rank, in buffer order
    _, _, experiences = rollout_and_actor(REWARDS)
    items = kept_items(experiences)
    per_rank = [items[rank::world] for rank in range(world)]
    share = 8 // world
    steps = [sum((mine[s * share : (s + 1) * share] for mine in per_rank), []) for s in range(2)]
    assert sum(map(len, steps)) == 13
    expected = reference_update(tiny_actor(), steps)
    for got, want in zip(results[0]["params"], expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
