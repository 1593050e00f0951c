"""The update OpenRLHF's own PolicyLoss computes from our advantages equals the paper's.

drop mode: the gradient of one optimiser step equals the token-mean gradient of a batch from
which the samples that carry no gradient were REMOVED (docs/paper.md §1). zero mode: the same batch
with those samples kept at advantage 0 (diluted denominator).
"""

import copy

import pytest
import torch
from experience_builders import make_args, make_maker, make_rollout
from openrlhf.models.loss import PolicyLoss
from openrlhf.trainer.ppo_utils.replay_buffer import NaiveReplayBuffer
from openrlhf.trainer.ray import ppo_actor

VOCAB = 11
EPS = 0.2
N = 4
MICRO = 2  # micro_train_batch_size
GAS = 3  # micro-batches per optimiser step -> 6 samples per step
# rollout order; optimiser step 1 = samples 0-5 (all correct), step 2 = 6-11 (mixed)
REWARDS = [1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 1, 0]
PAPER_ADVANTAGE = {  # (correct, incorrect); None = removed from the update in drop mode
    ("psr", None): (1.0, None),
    ("nsr", None): (None, -1.0),
    ("w_reinforce", 0.1): (0.1, -1.0),
    ("w_reinforce", 1.0): (1.0, -1.0),
}


def token_log_probs(weight, sequences, num_actions):
    """A bigram policy: log pi(x_t | x_<t) = log_softmax(weight[x_{t-1}])[x_t]; the last num_actions tokens."""
    logits = weight[sequences[:, :-1]]
    log_probs = torch.log_softmax(logits, dim=-1).gather(-1, sequences[:, 1:, None]).squeeze(-1)
    return log_probs[:, -num_actions:]


@pytest.fixture
def policy():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(VOCAB, VOCAB, generator=g)
    old_weight = weight + 0.3 * torch.randn(VOCAB, VOCAB, generator=g)  # ratios off 1, some clipped
    return weight.requires_grad_(), old_weight


def rollout_with_old_log_probs(old_weight):
    rollout = make_rollout(REWARDS, micro_batch_size=4, vocab=VOCAB, seed=3)
    for exp in rollout:
        old = token_log_probs(old_weight, exp.sequences, exp.action_mask.shape[1]) * exp.action_mask
        exp.action_log_probs, exp.rollout_log_probs = old, old.clone()
        exp.info["sample_id"] = torch.tensor(exp.index)
    return rollout


def openrlhf_step_gradients(weight, experiences, estimator, monkeypatch):
    """Gradients of each optimiser step, the way ActorPPOTrainer.ppo_train / training_step make them."""
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    buffer = NaiveReplayBuffer(MICRO, cpu_offload=False)
    for exp in experiences:
        buffer.append(exp)
    micro_batches = [buffer.collate_fn(buffer.items[i : i + MICRO]) for i in range(0, len(buffer.items), MICRO)]
    strategy = type("Strategy", (), {"args": make_args(estimator, N)})()
    loss_fn = PolicyLoss(clip_eps_low=EPS, clip_eps_high=EPS)

    steps, ids = [], []
    for k, (exp, loss_batch_info) in enumerate(
        ppo_actor.iter_grad_accum_global_norm(iter(micro_batches), strategy, GAS, lambda e: e.action_mask)
    ):
        log_probs = token_log_probs(weight, exp.sequences, exp.action_mask.shape[1]) * exp.action_mask
        loss = loss_fn(log_probs, exp.action_log_probs, exp.advantages, action_mask=exp.action_mask, **loss_batch_info)[
            0
        ]
        assert torch.isfinite(loss)
        (loss / GAS).backward()  # DeepSpeed scales every micro-batch loss by 1 / gas
        ids.extend(int(i) for i in exp.info["sample_id"])
        if (k + 1) % GAS == 0:
            steps.append((weight.grad.clone(), ids))
            weight.grad = None
            ids = []
    return steps


def reference_gradient(weight, originals, sample_ids, advantage_of, keep):
    """Token-mean clipped surrogate over the kept samples only (the paper's reference semantics)."""
    total, tokens = 0.0, 0
    for i in sample_ids:
        if not keep(i):
            continue
        exp, row = originals[i]
        mask = exp.action_mask[row]
        log_probs = token_log_probs(weight, exp.sequences[row : row + 1], mask.shape[0])[0]
        ratio = (log_probs - exp.action_log_probs[row]).exp()
        adv = advantage_of(i)
        surrogate = -torch.min(ratio * adv, ratio.clamp(1 - EPS, 1 + EPS) * adv)
        total = total + (surrogate * mask).sum()
        tokens += int(mask.sum())
    if tokens == 0:
        return torch.zeros_like(weight)
    (grad,) = torch.autograd.grad(total / tokens, weight)
    return grad


@pytest.mark.parametrize("mode", ["drop", "zero"])
@pytest.mark.parametrize("estimator,lam", PAPER_ADVANTAGE)
def test_policy_loss_gradient_equals_the_reference_on_the_dropped_or_diluted_batch(
    estimator, lam, mode, policy, monkeypatch
):
    weight, old_weight = policy
    rollout = rollout_with_old_log_probs(old_weight)
    originals = {i: (exp, row) for exp in copy.deepcopy(rollout) for row, i in enumerate(exp.index)}
    maker = make_maker(make_args(estimator, N, lam=lam, ignored_samples=mode if estimator != "w_reinforce" else None))
    experiences = maker.compute_advantages_and_returns(rollout)

    correct_adv, wrong_adv = PAPER_ADVANTAGE[(estimator, lam)]

    def advantage_of(i):
        adv = correct_adv if REWARDS[i] == 1 else wrong_adv
        return 0.0 if adv is None else adv

    def keep(i):
        return mode == "zero" or (correct_adv if REWARDS[i] == 1 else wrong_adv) is not None

    steps = openrlhf_step_gradients(weight, experiences, estimator, monkeypatch)
    assert len(steps) == 2
    for grad, ids in steps:
        expected = reference_gradient(weight, originals, ids, advantage_of, keep)
        torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-7)
        assert torch.isfinite(grad).all()


def test_drop_and_zero_differ_exactly_by_kept_over_all_tokens(policy, monkeypatch):
    """Guards the test above against being vacuous: the two modes really give different updates."""
    weight, old_weight = policy
    grads = {}
    for mode in ("drop", "zero"):
        rollout = rollout_with_old_log_probs(old_weight)
        experiences = make_maker(make_args("nsr", N, ignored_samples=mode)).compute_advantages_and_returns(rollout)
        grads[mode] = openrlhf_step_gradients(weight, experiences, "nsr", monkeypatch)[1][0]
    rollout = rollout_with_old_log_probs(old_weight)
    masks = {i: exp.action_mask[row] for exp in rollout for row, i in enumerate(exp.index)}
    step2 = range(6, 12)
    kept = sum(int(masks[i].sum()) for i in step2 if REWARDS[i] == 0)
    everything = sum(int(masks[i].sum()) for i in step2)
    assert kept < everything
    torch.testing.assert_close(grads["zero"], grads["drop"] * kept / everything)


def test_a_step_where_no_sample_carries_gradient_is_a_zero_update_not_nan(policy, monkeypatch):
    weight, old_weight = policy
    rollout = rollout_with_old_log_probs(old_weight)
    experiences = make_maker(make_args("nsr", N)).compute_advantages_and_returns(rollout)
    (grad, ids), _ = openrlhf_step_gradients(weight, experiences, "nsr", monkeypatch)
    assert all(REWARDS[i] == 1 for i in ids)  # step 1: every sample correct, so nsr drops all of them
    assert torch.equal(grad, torch.zeros_like(grad))


def test_nsr_logit_gradient_has_the_one_minus_pi_form():
    """docs/paper.md §1: with A = -1, d(-loss)/dz_y = -(1 - pi_y) for the sampled token y and
    +pi_v for every other token v: a confident token barely moves, the others gain in
    proportion to their probability. Checked through OpenRLHF's own PolicyLoss."""
    from openrlhf_nsr.objectives import compute_advantages

    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0, 1.0]], requires_grad=True)
    y = 4
    log_probs = torch.log_softmax(logits, dim=-1)[:, y : y + 1]  # (1 sample, 1 action token)
    advantage, _ = compute_advantages("nsr", torch.tensor([False]))
    loss = PolicyLoss()(log_probs, log_probs.detach(), advantage[:, None], action_mask=torch.ones(1, 1))[0]
    (grad,) = torch.autograd.grad(-loss, logits)
    pi = torch.softmax(logits.detach(), dim=-1)[0]
    expected = pi.clone()
    expected[y] = -(1 - pi[y])
    torch.testing.assert_close(grad[0], expected)
    assert advantage.item() == -1.0


@pytest.mark.parametrize("estimator,passk_k", [("maxrl", None), ("passk", 2), ("passk", 3)])
def test_group_objectives_gradient_equals_the_reference_with_every_sample_in_the_token_mean(
    estimator, passk_k, policy, monkeypatch
):
    from test_objectives import expected_maxrl, expected_passk

    weight, old_weight = policy
    rollout = rollout_with_old_log_probs(old_weight)
    originals = {i: (exp, row) for exp in copy.deepcopy(rollout) for row, i in enumerate(exp.index)}
    maker = make_maker(make_args(estimator, N, passk_k=passk_k))
    experiences = maker.compute_advantages_and_returns(rollout)

    def advantage_of(i):
        c = sum(REWARDS[i // N * N : i // N * N + N])
        if c in (0, N):
            return 0.0
        positive, negative = expected_maxrl(N, c) if estimator == "maxrl" else expected_passk(N, c, passk_k)
        return positive if REWARDS[i] == 1 else negative

    steps = openrlhf_step_gradients(weight, experiences, estimator, monkeypatch)
    assert len(steps) == 2
    for grad, ids in steps:
        expected = reference_gradient(weight, originals, ids, advantage_of, keep=lambda i: True)
        torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-7)
    assert steps[1][0].abs().sum() > 0  # the mixed step moves the weights
