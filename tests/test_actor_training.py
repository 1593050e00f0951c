"""OpenRLHF's own ActorPPOTrainer.ppo_train on a tiny real model, with our advantages.

Only the DeepSpeed strategy is replaced (by plain torch backward / SGD step, stepping at DeepSpeed's
accumulation boundary: every GAS micro-batches, or where the adapter sets it); the replay buffer,
micro-batching, loss normalisation, training_step and metric reduction are OpenRLHF's (with the
adapter's removal schedule in drop mode).

Two paths: drop mode removes the samples that carry no gradient and trains on optimiser steps of
--train.batch_size kept samples; where OpenRLHF builds the batches itself (dynamic batching, ring
attention, tensor parallelism) they are masked instead.
"""

import math
from types import SimpleNamespace

import pytest
import torch
from experience_builders import make_args, make_maker, make_rollout
from openrlhf.models import Actor, PolicyLoss
from openrlhf.trainer.ppo_utils.replay_buffer import NaiveReplayBuffer
from openrlhf.trainer.ray.ppo_actor import ActorPPOTrainer
from transformers import Qwen2Config, Qwen2ForCausalLM

VOCAB = 32
MICRO = 2
GAS = 2


class CpuStrategy:
    """The calls ppo_train / training_step make on DeepspeedStrategy, in plain torch (1 process)."""

    def __init__(self, args):
        self.args = args
        self.accumulated_gradient = GAS
        self.ring_attn_group = None
        self.grad_norms = []
        self._micro_steps = 0
        self.boundary = None  # DeepSpeed's engine.set_gradient_accumulation_boundary

    def is_rank_0(self):
        return True

    def all_reduce(self, data, op="mean"):
        return data

    def backward(self, loss, model, optimizer):
        (loss / GAS).backward()  # DeepSpeed scales each micro-batch loss by 1 / gas

    def optimizer_step(self, optimizer, model, scheduler, name=None):
        self._micro_steps += 1
        at_boundary = self._micro_steps % GAS == 0 if self.boundary is None else self.boundary
        if at_boundary:  # DeepSpeed steps at the accumulation boundary
            grads = [p.grad.flatten() for p in model.parameters() if p.grad is not None]
            self.grad_norms.append(torch.cat(grads).norm().item() if grads else 0.0)
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()

    def get_grad_norm(self, model):
        return self.grad_norms[-1] if self.grad_norms else 0.0


def tiny_actor():
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=64,
    )  # fmt: skip
    model = Qwen2ForCausalLM(config)
    model.config._attn_implementation = "eager"
    actor = Actor(model)
    actor.packing_samples = False  # Actor(nn.Module) leaves it unset in 0.11.2 (only Actor(path) sets it)
    return actor


def trainer_for(actor, args, monkeypatch):
    trainer = ActorPPOTrainer.__new__(ActorPPOTrainer)
    trainer.strategy = CpuStrategy(args)
    # the DeepSpeed engine method the removal schedule calls, answered by the stand-in strategy
    actor.model.set_gradient_accumulation_boundary = lambda flag: setattr(trainer.strategy, "boundary", flag)
    trainer.micro_train_batch_size = MICRO
    trainer.args = args
    trainer.actor = actor
    trainer.ema_model = None
    trainer.actor_optim = torch.optim.SGD(actor.parameters(), lr=0.5)
    trainer.actor_scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.actor_optim, lambda step: 1.0)
    trainer.actor_loss_fn = PolicyLoss(clip_eps_low=0.2, clip_eps_high=0.2)
    trainer.aux_loss = False
    trainer.max_epochs = 1
    trainer.dataloader_pin_memory = False
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    trainer.replay_buffer = NaiveReplayBuffer(MICRO, cpu_offload=False)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: "cpu")
    return trainer


def train_args(estimator, masked=False):
    args = make_args(estimator, 4)
    args.train = SimpleNamespace(dynamic_batch_enable=False, batch_size=MICRO * GAS)
    # ring attention (as dynamic batching / tensor parallelism) makes drop mode mask, not remove
    args.ds = SimpleNamespace(tensor_parallel_size=1, packing_samples=False, ring_attn_size=2 if masked else 1)
    args.actor = SimpleNamespace(entropy_coef=1e-3, aux_loss_coef=0)
    args.algo.kl.use_loss = False
    return args


def run_ppo_train(rewards, estimator, monkeypatch, masked=False):
    actor = tiny_actor()
    args = train_args(estimator, masked)
    rollout = make_rollout(rewards, micro_batch_size=4, vocab=VOCAB, seed=5)
    with torch.no_grad():
        for exp in rollout:  # old log-probs from the policy itself, as make_experience does
            exp.action_log_probs = actor(exp.sequences, exp.action_mask, attention_mask=exp.attention_mask)
            exp.rollout_log_probs = exp.action_log_probs.clone()
    experiences = make_maker(args).compute_advantages_and_returns(rollout)
    trainer = trainer_for(actor, args, monkeypatch)
    for exp in experiences:
        trainer.replay_buffer.append(exp)
    before = [p.detach().clone() for p in actor.parameters()]
    status = trainer.ppo_train(kl_ctl=0.0)
    changed = any(not torch.equal(a, p) for a, p in zip(before, actor.parameters()))
    return status, trainer.strategy.grad_norms, changed


def test_masked_nsr_on_an_all_correct_batch_is_a_zero_update_with_finite_metrics(monkeypatch):
    status, grad_norms, changed = run_ppo_train([1] * 8, "nsr", monkeypatch, masked=True)
    assert grad_norms == [0.0, 0.0]
    assert not changed
    assert status and all(math.isfinite(v) for v in status.values() if isinstance(v, float)), status
    assert status["policy_loss"] == 0.0 and status["entropy_loss"] == 0.0


def test_without_the_empty_step_guard_openrlhf_would_fail_on_the_same_batch(monkeypatch):
    """Shows what the guard prevents: OpenRLHF's own training_step divides 0 by 0."""
    monkeypatch.setattr(ActorPPOTrainer, "training_step", ActorPPOTrainer.training_step.__wrapped__)
    with pytest.raises(ZeroDivisionError):
        run_ppo_train([1] * 8, "nsr", monkeypatch, masked=True)


def test_removal_with_nothing_kept_takes_no_optimiser_step(monkeypatch):
    status, grad_norms, changed = run_ppo_train([1] * 8, "nsr", monkeypatch)
    assert grad_norms == [] and not changed and status["optimizer_steps"] == 0


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("estimator", ["psr", "nsr", "w_reinforce"])
def test_a_mixed_batch_trains_with_finite_metrics(estimator, masked, monkeypatch):
    status, grad_norms, changed = run_ppo_train([1, 0, 0, 1, 0, 1, 1, 0], estimator, monkeypatch, masked)
    assert changed and all(n > 0 for n in grad_norms)
    assert all(math.isfinite(v) for v in status.values() if isinstance(v, float)), status
