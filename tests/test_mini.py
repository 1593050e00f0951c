"""The CPU miniature of the paper's experiment (the README's main command)."""

import json

import pytest
import torch
from openrlhf.models.loss import PolicyLoss

from openrlhf_nsr import mini, objectives
from openrlhf_nsr.schedules import EntropyLambdaController, Schedule


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("mini")
    assert mini.main(["--smoke", "--out", str(out), "--runs", ",".join(mini.RUNS)]) == 0
    return out


def test_smoke_run_writes_the_whole_report(smoke):
    results = json.loads((smoke / "results.json").read_text())
    assert set(results["summary"]) == {"base", *mini.RUNS}
    for run, s in results["summary"].items():
        assert list(s["pass_at_k"]) == ["1", "2", "4", "8", "16", "32", "64"]
        values = list(s["pass_at_k"].values())
        assert all(0 <= v <= 1 for v in values) and values == sorted(values)  # pass@k grows with k
        assert s["entropy"] > 0
    history = results["per_seed"]["0"]["nsr"]["history"]
    assert len(history["correct_frac"]) == len(history["entropy"]) == mini.SMOKE["steps"]
    assert [c["claim"][0] for c in results["claims"]] == ["1", "2", "3"]
    report = (smoke / "report.md").read_text()
    assert "| nsr |" in report and "The paper's claims" in report
    for png in ("passk.png", "training.png"):
        assert (smoke / png).read_bytes()[:4] == b"\x89PNG"


def test_every_smoke_run_trains_on_mixed_batches_and_moves_the_weights(smoke):
    """At 0% correct psr and grpo get no gradient and a broken psr would pass the smoke run."""
    per_seed = json.loads((smoke / "results.json").read_text())["per_seed"]["0"]
    for run in mini.RUNS:
        h = per_seed[run]["history"]
        assert set(h) == {*objectives.rollout_stats(torch.tensor([True]), torch.tensor([True]), 1), "entropy",
                          "weight_change", *(["lambda"] if run in mini.LAMBDA_RUNS else [])}  # fmt: skip
        assert any(0 < c < 1 for c in h["correct_frac"]), (run, h["correct_frac"])  # correct AND incorrect
        assert any(g > 0 for g in h["grad_samples_frac"]), run
        assert h["weight_change"][-1] > 0, f"{run} never moved the weights"
    # grad_samples_frac is objectives.rollout_stats': the samples that carry gradient, per objective
    assert per_seed["psr"]["history"]["grad_samples_frac"] == per_seed["psr"]["history"]["correct_frac"]
    nsr = per_seed["nsr"]["history"]
    assert nsr["grad_samples_frac"] == pytest.approx([1 - c for c in nsr["correct_frac"]])
    for run in ("w_reinforce", "w_reinforce_sched", "w_reinforce_adaptive"):  # lambda 0 included: all samples
        assert set(per_seed[run]["history"]["grad_samples_frac"]) == {1.0}, run
    grpo = per_seed["grpo"]["history"]  # some prompt with both outcomes: a nonzero group advantage
    assert any(a + n < 1 for a, n in zip(grpo["prompts_all_correct_frac"], grpo["prompts_none_correct_frac"]))


def test_lambda_is_recorded_per_step_from_the_schedule_and_the_controller(smoke):
    results = json.loads((smoke / "results.json").read_text())
    config, per_seed = results["config"], results["per_seed"]["0"]
    steps = mini.SMOKE["steps"]
    # The default schedule for 4 steps, at OpenRLHF's step numbers (first rollout batch: 1): a ramp
    # from step 1 to 3. Counting from 0 would give [0, 0, 0.05, 0.1].
    assert config["lam_schedule"] == "1:0,3:0.1"
    sched = per_seed["w_reinforce_sched"]["history"]["lambda"]
    assert sched == [Schedule.parse(config["lam_schedule"])(step) for step in range(1, steps + 1)]
    assert sched == pytest.approx([0, 0.05, 0.1, 0.1])
    adaptive = per_seed["w_reinforce_adaptive"]["history"]
    assert len(adaptive["lambda"]) == steps and all(0 <= lam <= 0.1 for lam in adaptive["lambda"])
    assert any(lam > 0 for lam in adaptive["lambda"])  # the controller moved it off its start
    # Fed each step that step's rollout entropy, the one the history records, before the update.
    controller = EntropyLambdaController(config["lam_target"], lam_max=config["lam"])
    assert adaptive["lambda"] == [controller.update(entropy) for entropy in adaptive["entropy"]]
    assert per_seed["w_reinforce"]["history"]["lambda"] == [0.1] * steps
    assert per_seed["reinforce"]["history"]["lambda"] == [1.0] * steps
    summary = results["summary"]
    assert summary["w_reinforce_sched"]["lambda_mean"] == pytest.approx(0.0625)
    assert "lambda_mean" not in summary["nsr"] and "lambda_mean" not in summary["base"]
    report = (smoke / "report.md").read_text()
    assert "## Lambda over training" in report and "0 at step 1 -> 0.1 at step 3" in report
    assert "above 0.85 x its first-step value" in report


def test_the_default_schedule_is_nsr_first_then_lambda_over_thirds_of_the_steps():
    assert mini.parse_args([])[0].lam_schedule == "40:0,80:0.1"
    assert mini.parse_args(["--steps", "30", "--lam", "0.2"])[0].lam_schedule == "10:0,20:0.2"
    for steps in range(1, 50):  # any step count: a valid schedule that ends at lambda
        schedule = Schedule.parse(mini.default_schedule(steps, 0.1))
        assert schedule(steps) == 0.1 and schedule(round(steps / 3)) == 0, steps
    runs = "w_reinforce_sched,w_reinforce_adaptive"
    config = mini.parse_args(["--runs", runs, "--lam-schedule", " 0:0, 10:0.05 ", "--lam-target", "0.5"])[0]
    assert (config.lam_schedule, config.lam_target) == ("0:0,10:0.05", 0.5)
    assert mini.Config().lam_target == 1 - mini.ENTROPY_BAND  # the target is the report's entropy band


def test_the_same_seed_gives_the_same_numbers_and_runs_selects(smoke, tmp_path):
    mini.main(["--smoke", "--out", str(tmp_path), "--runs", "nsr,psr,w_reinforce_adaptive"])
    again = json.loads((tmp_path / "results.json").read_text())
    first = json.loads((smoke / "results.json").read_text())
    assert set(again["summary"]) == set(again["per_seed"]["0"]) == {"base", "nsr", "psr", "w_reinforce_adaptive"}
    for run in ("base", "nsr", "psr", "w_reinforce_adaptive"):
        for key in ("pass_at_k", "entropy"):
            assert again["summary"][run][key] == first["summary"][run][key], (run, key)
        assert again["per_seed"]["0"][run]["history"] == first["per_seed"]["0"][run]["history"], run
    report = (tmp_path / "report.md").read_text()
    assert "| w_reinforce_adaptive |" in report and "| grpo |" not in report and "w_reinforce_sched" not in report
    assert mini.parse_args([])[0].runs == mini.PAPER_RUNS  # the moving-lambda runs are opt-in


def test_several_seeds_report_mean_and_spread(tmp_path):
    mini.main(["--smoke", "--out", str(tmp_path), "--seeds", "0,1", "--runs", "nsr"])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["seeds"] == [0, 1] and set(results["per_seed"]) == {"0", "1"}
    a, b = (results["per_seed"][s]["nsr"]["pass_at_k"]["64"] for s in ("0", "1"))
    assert results["summary"]["nsr"]["pass_at_k"]["64"] == pytest.approx((a + b) / 2)
    assert "± " in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--steps", "0"], "must be positive: --steps 0"),
        (["--lam", "-1"], "--lam must be >= 0"),
        (["--runs", "nsr,dpo"], "unknown runs ['dpo']"),
        (["--eval-samples", "32"], "must be >= 64"),
        (["--ignored-samples", "keep"], "--ignored-samples must be one of"),
        (["--seeds", "a"], "--seeds must be comma-separated integers"),
        (["--lr", "nan"], "must be positive: --lr nan"),
        (["--lam", "inf"], "--lam must be >= 0 and finite"),
        (["--runs", "nsr,nsr"], "--runs names a run twice"),
        (["--width", "30"], "--width must be a multiple of 4"),
        (["--operands", "20"], "the policy has 64"),
        (["--operands", "2", "--digits", "1"], "give 81 distinct problems: 200 held out leave 0 to train on"),
        (
            ["--runs", "w_reinforce,grpo", "--ignored-samples", "zero"],
            "--ignored-samples only applies to runs in which some samples carry no gradient (psr or nsr); "
            "w_reinforce, grpo train on every sample",
        ),
        (["--runs", "reinforce", "--ignored-samples", "drop"], "remove the flag or add psr or nsr to --runs"),
        (["--lam-target", "0"], "--lam-target must be in (0, 1]"),
        (["--lam-target", "1.5"], "--lam-target must be in (0, 1]"),
        (["--lam-target", "nan"], "--lam-target must be in (0, 1]"),
        (["--lam-schedule", "0:0,0:0.1"], "--lam-schedule '0:0,0:0.1': schedule point '0:0.1': steps must be strictly"),
        (
            ["--lam-schedule", "0:0,40:-0.1"],
            "--lam-schedule '0:0,40:-0.1': schedule point '40:-0.1': value '-0.1' must be finite and >= 0",
        ),
        (["--lam-schedule", "0:0,40"], "schedule point '40' is not STEP:VALUE"),
        (
            ["--runs", "nsr,w_reinforce_sched", "--lam-target", "0.9"],
            "--lam-target only applies to the w_reinforce_adaptive run, which --runs nsr,w_reinforce_sched leaves out",
        ),
        (
            ["--runs", "w_reinforce_adaptive", "--lam-schedule", "0:0,10:0.1"],
            "--lam-schedule only applies to the w_reinforce_sched run",
        ),
    ],
)
def test_invalid_values_are_clear_errors(flags, message, capsys):
    with pytest.raises(SystemExit) as exit:
        mini.main(flags)
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("runs", [*mini.RUNS, "w_reinforce,grpo"])
def test_ignored_samples_defaults_for_any_selection_and_applies_to_psr_nsr(runs):
    config, _, _ = mini.parse_args(["--runs", runs])
    assert config.ignored_samples == objectives.DEFAULT_IGNORED_SAMPLES
    config, _, _ = mini.parse_args(["--runs", "grpo,nsr", "--ignored-samples", "zero"])
    assert config.ignored_samples == "zero"


def _lam(run, config=mini.Config()):
    """The run's lambda at step 1 (None for a run without one)."""
    source = mini.lambda_source(run, config)
    return None if source is None else source(1, 0.2)


def test_advantages_come_from_the_registered_objectives():
    correct = torch.tensor([True, False, True, True, False, False, False, False])
    config = mini.Config()
    adv, carries_grad, counted = mini.advantages_for("nsr", correct, config, 4)
    assert adv.tolist() == [0, -1, 0, 0, -1, -1, -1, -1] and counted.tolist() == (~correct).tolist()
    assert carries_grad.tolist() == (~correct).tolist()
    adv, carries_grad, counted = mini.advantages_for("reinforce", correct, config, 4, _lam("reinforce"))
    assert adv.tolist() == [1 if c else -1 for c in correct.tolist()] and counted.all() and carries_grad.all()
    adv, _, _ = mini.advantages_for("w_reinforce", correct, config, 4, _lam("w_reinforce"))
    assert adv[0].item() == pytest.approx(0.1)
    # lambda 0: correct samples have advantage 0 yet carry gradient (they stay in the update)
    adv, carries_grad, _ = mini.advantages_for(
        "w_reinforce", correct, config, 4, _lam("w_reinforce", mini.Config(lam=0.0))
    )
    assert adv[0].item() == 0 and carries_grad.all()
    adv, _, _ = mini.advantages_for("w_reinforce_sched", correct, config, 4, 0.05)  # the step's lambda, as given
    assert adv[0].item() == pytest.approx(0.05) and adv[1].item() == -1
    with pytest.raises(ValueError, match="w_reinforce_adaptive needs lambda"):  # never objectives' default 0.1
        mini.advantages_for("w_reinforce_adaptive", correct, config, 4)
    with pytest.raises(ValueError, match="nsr takes no lambda"):
        mini.advantages_for("nsr", correct, config, 4, 0.1)
    adv, carries_grad, counted = mini.advantages_for("grpo", correct, config, 4)
    assert adv[4:].tolist() == [0, 0, 0, 0] and adv[0] > 0 > adv[1] and counted.all()
    assert carries_grad.tolist() == [True] * 4 + [False] * 4  # the second prompt's samples are all wrong
    _, _, counted = mini.advantages_for("psr", correct, mini.Config(ignored_samples="zero"), 4)
    assert counted.all()


def test_the_surrogate_normalises_by_the_kept_tokens():
    log_probs = torch.zeros(2, 3, requires_grad=True)
    mask = torch.tensor([[1.0, 1, 0], [0, 0, 0]])  # the second sample dropped
    loss = mini.clipped_surrogate(log_probs, torch.zeros(2, 3), torch.tensor([-1.0, -1.0]), mask)
    loss.backward()
    assert loss.item() == pytest.approx(1.0)  # -(ratio 1 x advantage -1), mean over the 2 kept tokens
    assert log_probs.grad.tolist() == [[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]


@pytest.mark.parametrize("ignored_samples", objectives.IGNORED_SAMPLES_MODES)
@pytest.mark.parametrize("run", mini.RUNS)
@pytest.mark.parametrize("clip_low,clip_high", [(0.2, 0.2), (0.2, 0.28)])
def test_the_loss_and_its_gradient_equal_openrlhf_policy_loss(run, ignored_samples, clip_low, clip_high):
    """Far outside the clip band and beyond the +-20 log-ratio clamp, with the drop / zero mask."""
    generator = torch.Generator().manual_seed(0)
    correct = torch.tensor([True, False, True, False, False, False, True, True])  # 2 prompts x 4
    config = mini.Config(ignored_samples=ignored_samples)
    adv, _, counted = mini.advantages_for(run, correct, config, 4, _lam(run, config))
    response = torch.ones(8, 6)
    for i, length in enumerate([6, 4, 1, 6, 5, 3, 2, 6]):
        response[i, length:] = 0
    token_mask = response * counted[:, None].float()  # drop: the plugin zeroes the action mask
    old = torch.randn(8, 6, generator=generator) - 2
    log_ratio = 3 * torch.randn(8, 6, generator=generator)
    log_ratio[1, :4] = torch.tensor([25.0, -25.0, 3.0, -21.0])  # an incorrect sample past the clamp
    log_ratio[0, :4] = torch.tensor([23.0, -23.0, -3.0, 0.1])
    ours_lp = (old + log_ratio).requires_grad_()
    theirs_lp = (old + log_ratio).requires_grad_()

    ours = mini.clipped_surrogate(ours_lp, old, adv, token_mask, clip_low, clip_high)
    loss_fn = PolicyLoss(clip_eps_low=clip_low, clip_eps_high=clip_high)
    theirs = loss_fn(theirs_lp, old, adv[:, None].expand(8, 6), action_mask=token_mask)[0]
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ours_lp.grad, theirs_lp.grad)
    assert ours_lp.grad.abs().sum() > 0
    # The real path passes the optimiser step's token count (0 made 1 by the plugin): the same value.
    again = loss_fn(theirs_lp, old, adv[:, None].expand(8, 6), action_mask=token_mask,
                    batch_num_tokens=token_mask.sum().clamp(min=1))[0]  # fmt: skip
    torch.testing.assert_close(ours, again)
    if run != "psr":  # the test sees the clamp: without it the incorrect sample's e^25 ratio counts
        ratio = log_ratio.exp()
        unclamped = -torch.min(ratio * adv[:, None], ratio.clamp(1 - clip_low, 1 + clip_high) * adv[:, None])
        assert not torch.isclose((unclamped * token_mask).sum() / token_mask.sum(), theirs)


def test_an_empty_mask_gives_a_zero_loss_and_gradient():
    log_probs = torch.zeros(2, 3, requires_grad=True)
    loss = mini.clipped_surrogate(log_probs, torch.zeros(2, 3), torch.tensor([-1.0, 1.0]), torch.zeros(2, 3))
    loss.backward()
    assert loss.item() == 0 and not log_probs.grad.any()


def _fake_results(ks=("1", "2")):
    runs = ("base", *mini.RUNS)
    summary = {r: {"pass_at_k": {k: 0.1 * i for i, k in enumerate(ks, 1)},
                   "pass_at_k_std": dict.fromkeys(ks, 0.0), "entropy": 0.5} for r in runs}  # fmt: skip
    histories = {r: {"correct_frac": [0.1, 0.2], "entropy": [0.4, 0.5]} for r in mini.RUNS}
    for r in mini.LAMBDA_RUNS:
        histories[r]["lambda"] = [0.0, 0.1]
    per_seed = [{"base": {"history": None}, **{r: {"history": h} for r, h in histories.items()}}]
    return per_seed, summary


def test_each_run_has_one_colour_in_every_plot():
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    assert set(mini.COLOURS) == {"base", *mini.RUNS}
    assert len({to_hex(c) for c in mini.COLOURS.values()}) == len(mini.COLOURS)  # distinct
    per_seed, summary = _fake_results()
    for fig in (mini.passk_figure(summary), mini.training_figure(per_seed, summary)):
        seen = {}
        for ax in fig.axes:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                line = handle[0] if isinstance(handle, tuple) else handle  # an errorbar: its data line
                seen.setdefault(label.split()[0], set()).add(to_hex(line.get_color()))
        assert seen == {run: {to_hex(mini.COLOURS[run])} for run in ("base", *mini.RUNS)}
        plt.close(fig)


def test_the_claims_state_the_tolerances_they_use():
    _, summary = _fake_results(("1", "64"))

    def claims(**pass_at_64):
        for run, value in pass_at_64.items():
            summary[run]["pass_at_k"]["64"] = value
        return {c["claim"][0]: c for c in mini.check_claims(summary)}

    within = claims(base=0.90, nsr=0.895, w_reinforce=0.93, psr=0.885)  # nsr 0.5 below, psr 1.5 below
    assert within["1"]["holds"]
    assert "keep pass@64 within 1 point of the base model's or raise it" in within["1"]["claim"]
    assert "PSR lowers it by more than 1 point" in within["1"]["claim"]
    assert not claims(nsr=0.885)["1"]["holds"]  # 1.5 points below the base: not kept
    assert not claims(nsr=0.90, psr=0.895)["1"]["holds"]  # psr only 0.5 below: not lowered
    for base in range(3, 201):  # exactly 1 point below (2 of 200 problems) is within, whatever the float ulp
        assert claims(base=base / 200, nsr=(base - 2) / 200, w_reinforce=(base - 2) / 200, psr=0)["1"]["holds"], base
    assert "within 15%" in within["2"]["claim"] and "more than 15% below" in within["2"]["claim"]
    assert "within 3 points" in within["3"]["claim"]
