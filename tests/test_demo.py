"""The CPU demonstration (the README's main command until the miniature experiment exists)."""

import pytest
import torch

from openrlhf_nsr import demo


def test_demo_prints_one_row_per_objective_and_is_deterministic(capsys):
    assert demo.main(["--steps", "5"]) == 0
    first = capsys.readouterr().out
    for label in ["base model", "psr", "nsr", "w_reinforce (lambda=0.1)", "w_reinforce (lambda=1)"]:
        assert label in first
    demo.main(["--steps", "5"])
    assert capsys.readouterr().out == first


def test_demo_updates_move_the_policy_the_way_each_objective_says():
    base = demo.ToyPolicy(64, 20, torch.Generator().manual_seed(0)).report()
    for objective, lam in demo.RUNS:
        result = demo.train(objective, lam, steps=20, seed=0, ignored_samples="drop")
        assert result["pass@1"] > base["pass@1"], objective  # every objective learns on this toy
        expected_grad = 1.0 if objective == "w_reinforce" else None
        if expected_grad is not None:
            assert result["grad_samples"] == pytest.approx(expected_grad)
        else:
            assert 0 < result["grad_samples"] < 1


def test_clipped_surrogate_of_an_all_dropped_batch_is_zero_not_nan():
    log_probs = torch.zeros(4, requires_grad=True)
    loss = demo.clipped_surrogate_loss(log_probs, torch.zeros(4), torch.zeros(4), torch.zeros(4))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(log_probs.grad, torch.zeros(4))


def test_invalid_steps_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        demo.main(["--steps", "0"])
    assert "--steps must be >= 1" in capsys.readouterr().err
