"""Advantages from OpenRLHF's own RemoteExperienceMaker.compute_advantages_and_returns, patched."""

import copy

import pytest
import torch
from experience_builders import BUILTIN_ESTIMATORS, RemoteExperienceMaker, make_args, make_maker, make_rollout

N = 4
# Three prompts of four samples: mixed, all correct, none correct (the paper's three regimes).
MIXED = [1, 0, 1, 0]
ALL_CORRECT = [1, 1, 1, 1]
ALL_WRONG = [0, 0, 0, 0]
BATCHES = {
    "mixed": MIXED + ALL_CORRECT + ALL_WRONG,
    "all_correct": ALL_CORRECT * 2,
    "all_wrong": ALL_WRONG * 2,
}
# (estimator, lambda) -> (advantage of a correct sample, of an incorrect one, carries gradient?)
CASES = {
    ("psr", None): ((1.0, True), (0.0, False)),
    ("nsr", None): ((0.0, False), (-1.0, True)),
    ("w_reinforce", 0.1): ((0.1, True), (-1.0, True)),
    ("w_reinforce", 1.0): ((1.0, True), (-1.0, True)),
}


def run(estimator, rewards, lam=None, mode=None, order=None, kl_coef=0.0):
    args = make_args(estimator, N, lam=lam, ignored_samples=mode, kl_coef=kl_coef)
    maker = make_maker(args, kl_coef=kl_coef)
    rollout = make_rollout(rewards, order=order)
    original_masks = {i: m.clone() for e in rollout for i, m in zip(e.index, e.action_mask)}
    experiences = maker.compute_advantages_and_returns(rollout)
    return maker, experiences, original_masks


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("mode", ["drop", "zero"])
@pytest.mark.parametrize("estimator,lam", CASES)
def test_advantages_are_constant_per_response_with_the_papers_values(estimator, lam, mode, batch):
    rewards = BATCHES[batch]
    order = torch.randperm(len(rewards), generator=torch.Generator().manual_seed(0)).tolist()
    maker, experiences, masks = run(estimator, rewards, lam=lam, mode=mode, order=order)
    for exp in experiences:
        for row, i in enumerate(exp.index):
            correct = rewards[i] == 1
            value, carries = CASES[(estimator, lam)][0 if correct else 1]
            mask = masks[i]
            dropped = mode == "drop" and not carries
            if dropped:
                # removed from the update: padding everywhere OpenRLHF looks
                assert not exp.action_mask[row].any()
                assert torch.all(exp.advantages[row] == 0) and torch.all(exp.action_log_probs[row] == 0)
            else:
                assert torch.equal(exp.action_mask[row], mask)
                expected = torch.where(mask, torch.tensor(value), torch.tensor(0.0))
                assert torch.equal(exp.advantages[row], expected), (i, exp.advantages[row], expected)
            assert exp.advantages.dtype == torch.float32


DIVERSITY_METRICS = ("entropy", "distinct_answers_frac", "pass_at_1", "pass_at_n")


@pytest.mark.parametrize("estimator,lam", CASES)
def test_rollout_diagnostics_are_computed_per_prompt_in_rollout_order(estimator, lam):
    # samples shuffled across micro-batches: stats must regroup them by experience.index
    maker, _, _ = run(estimator, BATCHES["mixed"], lam=lam, order=[11, 0, 5, 3, 8, 1, 10, 2, 4, 6, 9, 7])
    carries_frac = {"psr": 6 / 12, "nsr": 6 / 12, "w_reinforce": 1.0}[estimator]
    figure4 = {k: v for k, v in maker.nsr_rollout_stats.items() if k.endswith("_frac") and "answers" not in k}
    assert figure4 == pytest.approx(
        {
            "rollout/correct_frac": 0.5,
            "rollout/prompts_all_correct_frac": 1 / 3,
            "rollout/prompts_none_correct_frac": 1 / 3,
            "rollout/grad_samples_frac": carries_frac,
        }
    )


def test_an_explicit_in_reward_kl_is_honoured_like_openrlhfs_reinforce():
    args = make_args("nsr", N, ignored_samples="zero", kl_coef=0.5)
    maker = make_maker(args, kl_coef=0.5)
    rollout = make_rollout(MIXED)
    for exp in rollout:
        exp.kl = torch.full_like(exp.kl, 0.2) * exp.action_mask
    exp = maker.compute_advantages_and_returns(rollout)[0]
    # return-to-go of (-1 at the last token) - 0.5 * 0.2 per token: first token = -1 - 0.1 * length
    lengths = exp.action_mask.sum(-1)
    first = exp.advantages[:, 0]
    expected = torch.tensor([0.0 if r == 1 else -1.0 for r in exp.rewards]) - 0.1 * lengths
    torch.testing.assert_close(first, expected)


def test_gamma_other_than_one_is_refused():
    args = make_args("nsr", N, gamma=0.9)
    with pytest.raises(ValueError, match="gamma"):
        make_maker(args).compute_advantages_and_returns(make_rollout(MIXED))


@pytest.mark.parametrize("estimator", BUILTIN_ESTIMATORS)
def test_builtin_estimators_are_bit_identical_to_unpatched_openrlhf(estimator):
    patched = RemoteExperienceMaker.compute_advantages_and_returns
    original = patched.__wrapped__  # OpenRLHF's own method, as it was before apply()
    assert original is not patched
    rollout = make_rollout(BATCHES["mixed"], order=[3, 1, 0, 2, 4, 5, 6, 7, 8, 9, 10, 11])
    for exp in rollout:  # values and kl make gae and the KL path non-trivial
        exp.values = torch.randn(exp.values.shape, generator=torch.Generator().manual_seed(1)) * exp.action_mask
        exp.kl = torch.rand(exp.kl.shape, generator=torch.Generator().manual_seed(2)) * exp.action_mask
    a = make_maker(make_args(estimator, N), kl_coef=0.05)
    b = make_maker(make_args(estimator, N), kl_coef=0.05)
    out_patched = patched(a, copy.deepcopy(rollout))
    out_original = original(b, copy.deepcopy(rollout))
    for x, y in zip(out_patched, out_original):
        for field in ("advantages", "returns", "action_mask", "action_log_probs", "rewards"):
            assert torch.equal(getattr(x, field), getattr(y, field)), field
        assert x.info.keys() == y.info.keys()
        for key in x.info:
            assert torch.equal(x.info[key], y.info[key]), key
    # built-in estimators only gain the diversity metrics, no objective diagnostics or lambda
    assert set(a.nsr_rollout_stats) == {f"rollout/{k}" for k in DIVERSITY_METRICS}


@pytest.mark.parametrize("estimator,passk_k", [("maxrl", None), ("passk", 2)])
def test_group_objectives_see_whole_prompts_however_the_samples_were_split(estimator, passk_k):
    """Samples shuffled across micro-batches (as dynamic batching and the actor ranks get them): each sample's
    advantage is its own prompt's group formula, computed in rollout order before any split."""
    from test_objectives import expected_maxrl, expected_passk

    rewards = MIXED + ALL_CORRECT + ALL_WRONG + [1, 0, 0, 0]
    order = torch.randperm(len(rewards), generator=torch.Generator().manual_seed(1)).tolist()
    maker = make_maker(make_args(estimator, N, passk_k=passk_k))
    rollout = make_rollout(rewards, order=order)
    masks = {i: m.clone() for e in rollout for i, m in zip(e.index, e.action_mask)}
    experiences = maker.compute_advantages_and_returns(rollout)
    seen = 0
    for exp in experiences:
        for row, i in enumerate(exp.index):
            group = rewards[i // N * N : i // N * N + N]
            c = sum(group)
            if c in (0, N):
                value = 0.0
            else:
                positive, negative = expected_maxrl(N, c) if estimator == "maxrl" else expected_passk(N, c, passk_k)
                value = positive if rewards[i] == 1 else negative
            assert torch.equal(exp.action_mask[row], masks[i])  # every sample kept, as the reference code
            expected = torch.where(masks[i], torch.tensor(value), torch.tensor(0.0))
            torch.testing.assert_close(exp.advantages[row], expected, rtol=1e-5, atol=1e-6)
            seen += 1
    assert seen == len(rewards)
    stats = maker.nsr_rollout_stats
    assert stats["rollout/prompts_all_correct_frac"] == 0.25 and stats["rollout/prompts_none_correct_frac"] == 0.25
    assert stats["rollout/grad_samples_frac"] == 0.5  # the two degenerate groups carry no gradient
