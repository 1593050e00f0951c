"""The framework-independent objectives: values, gradient-carrying samples, registry, diagnostics."""

import math

import pytest
import torch

from openrlhf_nsr import objectives

CORRECT = torch.tensor([True, False, True, False, False])


def test_psr_reinforces_correct_samples_only():
    adv, carries = objectives.compute_advantages("psr", CORRECT)
    assert adv.tolist() == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert carries.tolist() == CORRECT.tolist()


def test_nsr_penalises_incorrect_samples_only():
    adv, carries = objectives.compute_advantages("nsr", CORRECT)
    assert adv.tolist() == [0.0, -1.0, 0.0, -1.0, -1.0]
    assert carries.tolist() == (~CORRECT).tolist()


@pytest.mark.parametrize("lam", [0.1, 0.0, 0.5, 1.0])
def test_w_reinforce_gives_lambda_to_correct_and_minus_one_to_incorrect_on_every_sample(lam):
    adv, carries = objectives.compute_advantages("w_reinforce", CORRECT, lam=lam)
    expected = torch.tensor([lam, -1.0, lam, -1.0, -1.0], dtype=torch.float32)
    assert torch.equal(adv, expected) and adv.dtype == torch.float32
    assert carries.all()


def test_w_reinforce_default_lambda_is_the_papers_0_1():
    adv, _ = objectives.compute_advantages("w_reinforce", CORRECT)
    assert adv[0].item() == pytest.approx(0.1) and objectives.DEFAULT_LAMBDA == 0.1


def test_w_reinforce_with_lambda_one_is_plain_reinforce():
    adv, carries = objectives.compute_advantages("w_reinforce", CORRECT, lam=1.0)
    assert torch.equal(adv, CORRECT.float() * 2 - 1) and carries.all()


@pytest.mark.parametrize("lam", [-0.1, math.nan, math.inf])
def test_invalid_lambda_is_refused_with_the_reason(lam):
    with pytest.raises(ValueError, match="lambda must be a finite number >= 0"):
        objectives.compute_advantages("w_reinforce", CORRECT, lam=lam)


@pytest.mark.parametrize("name", ["psr", "nsr"])
def test_lambda_is_refused_by_objectives_that_do_not_take_it(name):
    with pytest.raises(ValueError, match="takes no lam \\(only: w_reinforce\\)"):
        objectives.compute_advantages(name, CORRECT, lam=0.1)


def test_correctness_threshold_is_reward_above_one_half():
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.51, -1.0])
    assert objectives.is_correct(rewards).tolist() == [True, False, False, True, False]


def test_non_finite_rewards_are_an_error_not_a_silent_verdict():
    with pytest.raises(ValueError, match="finite"):
        objectives.is_correct(torch.tensor([1.0, math.nan]))


def test_correct_must_be_a_bool_vector():
    with pytest.raises(ValueError, match="bool"):
        objectives.compute_advantages("nsr", torch.tensor([1.0, 0.0]))


def test_unknown_objective_error_lists_the_valid_names():
    with pytest.raises(ValueError, match="psr, nsr, w_reinforce"):
        objectives.get_objective("nrs")


def test_registering_a_different_function_under_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):

        @objectives.register_objective("nsr")
        def other(correct):
            return -torch.ones(correct.shape), ~correct


def test_a_new_objective_is_one_registered_function():
    @objectives.register_objective("test_half_nsr")
    def half_nsr(correct):
        return -0.5 * torch.ones(correct.shape), ~correct

    try:
        adv, carries = objectives.compute_advantages("test_half_nsr", CORRECT)
        assert adv.tolist() == [0.0, -0.5, 0.0, -0.5, -0.5]
        assert "test_half_nsr" in objectives.sample_ignoring_objectives()
    finally:
        del objectives._OBJECTIVES["test_half_nsr"]


@pytest.mark.parametrize("mode,expected", [("drop", [False, True, True]), ("zero", [True, True, True])])
def test_loss_sample_mask_follows_the_ignored_samples_mode(mode, expected):
    assert objectives.loss_sample_mask(torch.tensor([False, True, True]), mode).tolist() == expected


def test_rollout_stats_are_the_papers_figure_4_diagnostics():
    # prompt 0 mixed, prompt 1 all correct, prompt 2 none correct; n = 4
    correct = torch.tensor([1, 0, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.bool)
    _, carries = objectives.compute_advantages("nsr", correct)
    stats = objectives.rollout_stats(correct, carries, 4)
    assert stats == pytest.approx(
        {
            "correct_frac": 6 / 12,
            "prompts_all_correct_frac": 1 / 3,
            "prompts_none_correct_frac": 1 / 3,
            "grad_samples_frac": 6 / 12,
        }
    )


def test_rollout_stats_refuse_a_batch_that_is_not_whole_prompts():
    with pytest.raises(ValueError, match="cannot be grouped"):
        objectives.rollout_stats(torch.ones(5, dtype=torch.bool), torch.ones(5, dtype=torch.bool), 4)
