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


# ── The group objectives past the paper: MaxRL and Pass@k training ──


def _ratio_of_binomials(a, b, k):
    """C(a, k) / C(b, k) as a product (independent of math.comb): prod_i (a - i) / (b - i); 0 when a < k."""
    value = 1.0
    for i in range(k):
        value *= max(a - i, 0) / (b - i)
    return value


def expected_passk(n, c, k):
    """Chen et al. 2025 (arXiv 2508.10751), the issue's formulas, computed here without objectives.py."""
    rho = 1 - _ratio_of_binomials(n - c, n, k)
    sigma = (rho * (1 - rho)) ** 0.5
    positive = (1 - rho) / (sigma + 1e-6)
    negative = (1 - rho - _ratio_of_binomials(n - c - 1, n - 1, k - 1)) / (sigma + 1e-6)
    return positive, negative


def expected_maxrl(n, c):
    p = c / n
    return (1 - p) / (p + 1e-6), (0 - p) / (p + 1e-6)


def _group(n, c):
    return torch.tensor([True] * c + [False] * (n - c))


@pytest.mark.parametrize("n", range(2, 17))
def test_maxrl_advantages_equal_the_formula_for_every_group(n):
    for c in range(n + 1):
        adv, carries = objectives.compute_advantages("maxrl", _group(n, c), n)
        positive, negative = expected_maxrl(n, c) if 0 < c < n else (0.0, 0.0)
        assert adv[:c].tolist() == pytest.approx([positive] * c, rel=1e-6, abs=1e-7), (n, c)
        assert adv[c:].tolist() == pytest.approx([negative] * (n - c), rel=1e-6, abs=1e-7), (n, c)
        if c in (0, n):  # degenerate groups: exactly 0, never NaN, and no gradient
            assert adv.tolist() == [0.0] * n and not carries.any()
        assert torch.isfinite(adv).all()


@pytest.mark.parametrize("n", range(2, 17))
def test_passk_advantages_equal_the_formula_for_every_group_and_k(n):
    for k in range(1, n):
        for c in range(n + 1):
            adv, carries = objectives.compute_advantages("passk", _group(n, c), n, k=k)
            assert torch.isfinite(adv).all(), (n, c, k)
            if c in (0, n):
                assert adv.tolist() == [0.0] * n and not carries.any(), (n, c, k)
                continue
            positive, negative = expected_passk(n, c, k)
            assert adv[:c].tolist() == pytest.approx([positive] * c, rel=1e-5, abs=1e-6), (n, c, k)
            assert adv[c:].tolist() == pytest.approx([negative] * (n - c), rel=1e-5, abs=1e-6), (n, c, k)


def test_passk_at_k_1_is_close_to_group_normalisation():
    correct = torch.tensor([True, False, False, True, False, False, False, False])
    adv, _ = objectives.compute_advantages("passk", correct, 8, k=1)
    rewards = correct.float()
    grpo = (rewards - rewards.mean()) / rewards.std(unbiased=False)
    torch.testing.assert_close(adv, grpo, rtol=1e-5, atol=1e-5)


def test_group_objectives_take_each_prompts_own_group():
    rollout = torch.tensor([True, False, False, False] + [True, True, True, False] + [False] * 4)
    adv, _ = objectives.compute_advantages("maxrl", rollout, 4)
    for g, c in enumerate((1, 3, 0)):
        alone, _ = objectives.compute_advantages("maxrl", rollout[4 * g : 4 * g + 4], 4)
        assert torch.equal(adv[4 * g : 4 * g + 4], alone), c
    assert adv[0].item() == pytest.approx(3.0, rel=1e-5) and adv[4].item() == pytest.approx(1 / 3, rel=1e-5)


@pytest.mark.parametrize("name,extra", [("maxrl", {}), ("passk", {"k": 2})])
def test_group_objectives_refuse_a_batch_that_is_not_whole_prompts(name, extra):
    with pytest.raises(ValueError, match="cannot be cut into whole prompts of n_samples_per_prompt=4"):
        objectives.compute_advantages(name, torch.tensor([True, False, True]), 4, **extra)
    with pytest.raises(ValueError, match="n_samples_per_prompt=None"):
        objectives.compute_advantages(name, torch.tensor([True, False]), **extra)


def test_passk_needs_k_below_the_group_size():
    with pytest.raises(ValueError, match=r"passk's k must be in \[1, n_samples_per_prompt\) = \[1, 4\), got 4"):
        objectives.compute_advantages("passk", torch.tensor([True, False, True, False]), 4, k=4)
    with pytest.raises(ValueError, match="needs k="):
        objectives.compute_advantages("passk", torch.tensor([True, False]), 2)
    with pytest.raises(ValueError, match="passk_k 8 must be below n_samples_per_prompt 8"):
        objectives.resolve_hyperparameters("passk", {"passk_k": "8"}, 8)
    assert objectives.resolve_hyperparameters("passk", {"passk_k": "4"}, 8) == {"passk_k": 4}
    assert objectives.get_objective("maxrl").groups and not objectives.get_objective("nsr").groups
    assert "maxrl" not in objectives.sample_ignoring_objectives()  # every sample counts in the token-mean


def test_the_adapter_and_the_wrapper_name_no_objectives_parameter():
    """Only an objective's own definition names its parameters: the OpenRLHF adapter and the CLI wrapper ask
    its parameters object (objectives.objective_run) for flags, values, metrics, checkpoint state and printout."""
    import ast
    import io
    import tokenize
    from pathlib import Path

    names = set(objectives.hyperparameters()) - {"ignored_samples"} | {"EntropyLambdaController", "WReinforceRun"}
    for module in ("openrlhf_patch.py", "train_ppo_ray.py"):
        source = (Path(objectives.__file__).parent / module).read_text()
        docstrings = {
            node.body[0].value.lineno
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
        }  # fmt: skip
        code = [
            tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type not in (tokenize.COMMENT,) and not (tok.type == tokenize.STRING and tok.start[0] in docstrings)
        ]  # fmt: skip
        found = {name for name in names for text in code if name in text}
        assert not found, (module, found)
    assert {"w_reinforce_lambda", "lambda_controller", "passk_k"} <= names  # the check looks for real names


def test_passk_gives_nothing_to_a_group_whose_pass_at_k_is_certain():
    n, k = 4, 2
    for c in range(n + 1):
        adv, carries = objectives.compute_advantages("passk", _group(n, c), n, k=k)
        assert carries.any() == (0 < c <= n - k), c  # c = 3 of 4: any 2 samples hold a correct one
