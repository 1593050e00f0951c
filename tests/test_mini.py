"""The CPU miniature of the paper's experiment (the README's main command)."""

import json
from dataclasses import replace

import pytest
import torch
from openrlhf.models.loss import PolicyLoss

from openrlhf_nsr import mini, objectives
from openrlhf_nsr.schedules import EntropyLambdaController, Schedule


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("mini")
    assert mini.main(["--smoke", "--out", str(out), "--runs", ",".join(mini.RUNS), "--jobs", "2"]) == 0
    return out


def test_smoke_run_writes_the_whole_report_and_judges_nothing(smoke):
    results = json.loads((smoke / "results.json").read_text())
    assert set(results["summary"]) == {"base", *mini.RUNS} and results["seeds"] == [0] and results["smoke"]
    for run, s in results["summary"].items():
        assert list(s["pass_at_k"]) == ["1", "2", "4", "8", "16", "32", "64"]
        values = list(s["pass_at_k"].values())
        assert all(0 <= v <= 1 for v in values) and values == sorted(values)  # pass@k grows with k
        assert s["entropy"] > 0
        counts = results["per_seed"]["0"][run]["counts"]  # per held-out problem: what the intervals use
        assert len(counts) == mini.SMOKE["eval_problems"] and all(n == 64 and 0 <= c <= n for n, c in counts)
    history = results["per_seed"]["0"]["nsr"]["history"]
    assert len(history["correct_frac"]) == len(history["entropy"]) == mini.SMOKE["steps"]
    assert results["claims"] == []  # the smoke run judges no claim
    report = (smoke / "report.md").read_text()
    assert "| nsr - psr |" in report and "| w_reinforce - grpo |" in report and "| nsr - grpo |" in report
    assert "numbers mean nothing; no claim is judged" in report
    assert "holds" not in report and "fails" not in report and "not separable" not in report
    for png in ("passk.png", "paired.png", "training.png"):
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
    report = (smoke / "report.md").read_text()
    assert "## Lambda over training" in report
    assert "- w_reinforce_sched: piecewise linear: 0 at step 1 -> 0.1 at step 3" in report
    assert "over the RL steps; mean over the steps 0.062" in report  # (0 + 0.05 + 0.1 + 0.1) / 4
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


def test_several_seeds_give_paired_intervals_over_the_seeds(tmp_path):
    mini.main(["--smoke", "--out", str(tmp_path), "--seeds", "0-1", "--runs", "nsr,psr", "--jobs", "2"])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["seeds"] == [0, 1] and set(results["per_seed"]) == {"0", "1"}
    a, b = (results["per_seed"][s]["nsr"]["pass_at_k"]["64"] for s in ("0", "1"))
    assert results["summary"]["nsr"]["pass_at_k"]["64"] == pytest.approx((a + b) / 2)
    interval = results["paired"]["nsr - psr"]["1"]
    assert (interval["n"], interval["over"]) == (2, "seeds")
    # each seed's difference: the mean over its problems of nsr's pass@1 minus psr's (both from its base)
    diffs = [results["per_seed"][s]["nsr"]["pass_at_k"]["1"] - results["per_seed"][s]["psr"]["pass_at_k"]["1"]
             for s in ("0", "1")]  # fmt: skip
    assert interval["mean"] == pytest.approx(sum(diffs) / 2)
    assert interval["high"] - interval["mean"] == pytest.approx(12.7062 * abs(diffs[0] - diffs[1]) / 2, abs=1e-9)
    assert "Student's t over the seeds" in (tmp_path / "report.md").read_text()


def test_a_seed_gives_the_same_numbers_at_any_thread_count_core_count_and_jobs(smoke, tmp_path):
    """One process (--jobs 1: the tasks in it) on one core with 4 threads asked for, vs the fixture's two workers."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"}
    command = [sys.executable, "-m", "openrlhf_nsr.mini", "--smoke", "--out", str(tmp_path), "--jobs", "1",
               "--runs", "nsr,grpo"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600,
                          preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "in this process, one torch thread each" in done.stdout
    one_core = json.loads((tmp_path / "results.json").read_text())["per_seed"]["0"]
    two_jobs = json.loads((smoke / "results.json").read_text())["per_seed"]["0"]
    for run in ("base", "nsr", "grpo"):
        assert one_core[run] == two_jobs[run], run


def test_pretraining_stops_at_the_target_or_the_cap():
    from types import SimpleNamespace

    config = replace(mini.Config(), **mini.SMOKE).check()
    _, dev, train = mini.held_out_problems(config)

    def grader(correct):
        return lambda texts, golds: [SimpleNamespace(correct=correct) for _ in texts]

    done = mini.pretrain(mini.build_policy(config), train, dev, config, grader(True))
    assert done == {"steps": mini.PRETRAIN_CHECK, "dev_pass_at_1": 1.0}  # the first check reaches any target
    capped = replace(config, pretrain_steps=60)
    done = mini.pretrain(mini.build_policy(capped), train, dev, capped, grader(False))
    assert done == {"steps": 60, "dev_pass_at_1": 0.0}  # never reached: the cap, checked at its last step too
    eval_problems, dev, train = mini.held_out_problems(mini.Config().check())
    assert len(dev) == mini.DEV_PROBLEMS and len(eval_problems) == 200 and len(train) == mini.TRAIN_PROBLEMS
    assert not {p for p, _ in dev} & {p for p, _ in eval_problems + train}  # dev is held out of both


def test_the_bases_of_the_smoke_seeds_reach_the_target(smoke):
    results = json.loads((smoke / "results.json").read_text())
    pretraining = results["per_seed"]["0"]["base"]["pretraining"]
    assert pretraining["steps"] % mini.PRETRAIN_CHECK == 0 and pretraining["steps"] <= mini.SMOKE["pretrain_steps"]
    assert pretraining["dev_pass_at_1"] >= results["config"]["pretrain_target"]


def test_the_sampling_pass_gives_the_old_log_probs_of_a_separate_forward():
    config = replace(mini.Config(), **mini.SMOKE).check()
    policy = mini.build_policy(config)
    prompts = [p for p, _ in mini.held_out_problems(config)[0][:4]]
    ids, mask, _, _, sampled = mini.sample(policy, prompts, 3, config, torch.Generator().manual_seed(0))
    with torch.no_grad():
        again = mini.token_log_probs(policy, ids, len(prompts[0]))
    torch.testing.assert_close(sampled, again * mask, atol=1e-5, rtol=0)
    assert (sampled * mask).abs().sum() > 0


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--steps", "0"], "must be positive: --steps 0"),
        (["--lam", "-1"], "--lam must be >= 0"),
        (["--runs", "nsr,dpo"], "unknown runs ['dpo']"),
        (["--eval-samples", "32"], "must be >= 64"),
        (["--ignored-samples", "keep"], "--ignored-samples must be one of"),
        (["--seeds", "a"], "--seeds must be comma-separated integers or FIRST-LAST, got 'a'"),
        (["--lr", "nan"], "must be positive: --lr nan"),
        (["--lam", "inf"], "--lam must be >= 0 and finite"),
        (["--runs", "nsr,nsr"], "--runs names a run twice"),
        (["--width", "30"], "--width must be a multiple of 4"),
        (["--operands", "20"], "the policy has 64"),
        (
            ["--operands", "2", "--digits", "1"],
            "give 81 distinct problems: 200 held out (and 64 for pretraining's check) leave 0 to train on",
        ),
        (["--operands", "1"], "--operands must be >= 2 (numbers added per problem), got 1"),
        (["--digits", "9", "--operands", "9"], "--digits must be <= 4 (digits per number), got 9"),
        (["--pretrain-target", "1.5"], "--pretrain-target must be in (0, 1) (a held-out pass@1), got 1.5"),
        (["--jobs", "0"], "--jobs must be >= 1 (worker processes), got 0"),
        (["--runs", "passk", "--passk-k", "8"], "--passk-k must be in [1, --samples) = [1, 8), got 8"),
        (["--runs", "nsr", "--passk-k", "2"], "--passk-k only applies to the passk run"),
        (["--seeds", "3-1"], "--seeds must name each seed once, at least one, got '3-1'"),
        (["--seeds", "0,0"], "--seeds must name each seed once"),
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
    config = mini.parse_args(["--runs", runs])[0]
    assert config.ignored_samples == objectives.DEFAULT_IGNORED_SAMPLES
    config = mini.parse_args(["--runs", "grpo,nsr", "--ignored-samples", "zero"])[0]
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
    config = mini.Config(ignored_samples=ignored_samples, passk_k=2)
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


def _fake_per_seed(seeds=(0, 1), ks=("1", "2", "64"), lam_moves=True):
    """Results of every run for two seeds, in mini.run_all's layout, with made-up numbers."""
    per_seed = {}
    for seed in seeds:
        runs = {}
        for i, run in enumerate(("base", *mini.RUNS)):
            runs[run] = {"pass_at_k": {k: min(1.0, 0.1 * j + 0.01 * i + 0.01 * seed) for j, k in enumerate(ks, 1)},
                         "entropy": 0.5 - 0.01 * i, "counts": [[64, 10 + i + seed], [64, 30 + seed]],
                         "history": None if run == "base" else {"correct_frac": [0.1, 0.2, 0.3], "entropy": [0.4, 0.5, 0.4]}}  # fmt: skip
            if run in mini.LAMBDA_RUNS:
                runs[run]["history"]["lambda"] = (
                    [0.0, 0.05, 0.1] if lam_moves and run == "w_reinforce_sched" else [0.1] * 3
                )
        runs["base"]["pretraining"] = {"steps": 100, "dev_pass_at_1": 0.2}
        per_seed[seed] = runs
    return per_seed


def test_runs_are_told_apart_by_colour_and_line_style_and_every_panel_has_a_legend():
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    from openrlhf_nsr import plotting

    looks = {
        run: (to_hex(plotting.STYLES[run]["color"]), str(plotting.STYLES[run]["ls"])) for run in ("base", *mini.RUNS)
    }
    assert len({c for c, _ in looks.values()}) == len(looks)  # distinct colours
    for a, b in (("nsr", "w_reinforce"), ("psr", "grpo")):  # the pairs that hid each other: colour and style
        assert looks[a][0] != looks[b][0] and looks[a][1] != looks[b][1]
    per_seed = _fake_per_seed()
    config = mini.Config(runs=mini.RUNS)
    table = mini.paired_table(per_seed, config.runs)
    for fig in (
        mini.passk_figure(mini.mean_over_seeds(per_seed), "t"),
        mini.paired_figure(table, "t"),
        mini.training_figure(per_seed, "t"),
    ):
        for ax in fig.axes:
            assert ax.get_legend() is not None, ax.get_title()
            drawn = set()
            for handle, label in zip(*ax.get_legend_handles_labels()):
                line = handle[0] if isinstance(handle, tuple) else handle  # an errorbar: its data line
                drawn.add((to_hex(line.get_color()), str(line.get_linestyle())))
                if label in mini.CONTRAST_STYLES:  # objective minus objective: a look of its own
                    assert to_hex(line.get_color()) == to_hex(mini.CONTRAST_STYLES[label]["color"]), label
                else:  # a run, or a run minus its base: the run's colour
                    assert to_hex(line.get_color()) == looks[label.split(" - ")[0].split()[0]][0], label
            assert len(drawn) == len(ax.get_legend_handles_labels()[1]), ax.get_title()  # no two alike
        plt.close(fig)


def test_the_lambda_panel_only_when_lambda_moves_and_steps_are_integers():
    import matplotlib.pyplot as plt

    moving = mini.training_figure(_fake_per_seed(), "t")
    assert len(moving.axes) == 3 and "lambda" in moving.axes[2].get_ylabel()
    assert [line.get_label() for line in moving.axes[2].get_lines() if not line.get_label().startswith("_")] == [
        "w_reinforce", "w_reinforce_sched", "w_reinforce_adaptive"]  # fmt: skip
    still = mini.training_figure(_fake_per_seed(lam_moves=False), "t")
    assert len(still.axes) == 2  # every lambda constant: no panel
    for ax in moving.axes:
        assert all(float(t).is_integer() for t in ax.get_xticks())
    plt.close(moving)
    plt.close(still)


def test_curves_are_smoothed_with_the_raw_data_faint_behind():
    from openrlhf_nsr import plotting

    assert plotting.smooth([1, 2, 3, 4, 5], 2) == [1, 1.5, 2.5, 3.5, 4.5]
    assert plotting.smooth([3.0], 5) == [3.0]
    fig = mini.training_figure(_fake_per_seed(), "t")
    lines = fig.axes[0].get_lines()
    raw = [line for line in lines if line.get_alpha() is not None and line.get_alpha() < 0.5]
    assert len(raw) == len(mini.RUNS) and list(raw[0].get_ydata()) == [0.1, 0.2, 0.3]


def _interval(low, high):
    from openrlhf_nsr.paired import Interval

    return Interval((low + high) / 2, low, high, 5, "seeds")


def test_each_claim_is_judged_on_its_interval_and_states_its_tolerance():
    from openrlhf_nsr import paired

    row = dict.fromkeys(("1", "64", "entropy", "entropy_rel"), _interval(0.01, 0.02))
    table = {c: dict(row) for c in ("psr - base", "nsr - base", "w_reinforce - base", "nsr - psr", "nsr - grpo",
                                    "w_reinforce - grpo")}  # fmt: skip
    table["psr - base"]["64"] = _interval(-0.05, -0.02)  # PSR surely lowers pass@64
    table["nsr - base"]["64"] = _interval(-0.009, 0.01)  # NSR surely not more than 1 point below
    table["w_reinforce - base"]["64"] = _interval(-0.03, -0.02)  # surely more than 1 point below
    table["nsr - grpo"]["1"] = _interval(-0.04, -0.02)  # straddles -3 points
    table["nsr - base"]["entropy_rel"] = _interval(-0.1, -0.05)  # within 15%
    claims = {c["claim"]: c["verdict"] for c in mini.judge_claims(table, "64")}
    assert claims == {
        "PSR lowers pass@64 (psr - base < 0)": paired.HOLDS,
        "NSR keeps pass@64 (nsr - base > -1 point)": paired.HOLDS,
        "W-REINFORCE keeps pass@64 (w_reinforce - base > -1 point)": paired.FAILS,
        "NSR beats PSR at pass@64 (nsr - psr > 0)": paired.HOLDS,
        "PSR lowers the entropy (psr - base < 0)": paired.FAILS,
        "NSR keeps more entropy than PSR (nsr - psr > 0)": paired.HOLDS,
        "NSR keeps the entropy within 15% of the base model's": paired.HOLDS,
        "NSR improves pass@1 (nsr - base > 0)": paired.HOLDS,
        "NSR's pass@1 is within 3 points of GRPO's": paired.NOT_SEPARABLE,
        "W-REINFORCE's pass@1 is within 3 points of GRPO's": paired.HOLDS,
    }
    del table["w_reinforce - grpo"]  # a run not trained: its claims are left out, not judged
    assert len(mini.judge_claims(table, "64")) == 9


def test_the_paired_table_and_report_of_several_seeds(tmp_path):
    per_seed = _fake_per_seed()
    results = mini.write_report(mini.Config(runs=mini.RUNS), per_seed, tmp_path, 1.0)
    assert list(results["paired"]) == [f"{r} - base" for r in mini.RUNS] + [
        "nsr - psr", "w_reinforce - grpo", "nsr - grpo", "maxrl - w_reinforce", "passk - grpo"]  # fmt: skip
    nsr_psr = results["paired"]["nsr - psr"]["entropy"]
    assert nsr_psr["mean"] == pytest.approx(-0.01) and nsr_psr["n"] == 2  # nsr 0.5-0.02, psr 0.5-0.01
    report = (tmp_path / "report.md").read_text()
    assert "## The paper's claims, judged on their intervals" in report and "| 1 | 100 | 20.0 |" in report
    assert "Figure 2's crossover" in report
    assert mini.crossover_text({"estimate": None, "low": 16, "high": None}, "64") == (
        "not reached up to k = 64: NSR - PSR's mean stays below 0 (its interval reaches above 0 from k = 16 on)"
    )
    assert (
        mini.crossover_text({"estimate": 8, "low": 4, "high": None}, "64")
        == "from k = 8 (95% range: k = 4 to beyond 64)"
    )
    for png in ("passk.png", "paired.png", "training.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_the_group_runs_take_the_registered_objectives_with_every_sample_counted():
    correct = torch.tensor([True, False, False, False, True, True, True, True])  # 2 prompts x 4
    config = mini.Config(passk_k=2)
    for run, extra in (("maxrl", {}), ("passk", {"k": 2})):
        adv, carries_grad, counted = mini.advantages_for(run, correct, config, 4)
        expected, expected_carries = objectives.compute_advantages(run, correct, 4, **extra)
        assert torch.equal(adv, expected) and torch.equal(carries_grad, expected_carries)
        assert counted.all()  # as the reference code: the all-correct prompt stays in the token-mean
        assert adv[4:].tolist() == [0.0] * 4 and adv[0] > 0 > adv[1]


def test_help_states_each_options_default(capsys):
    with pytest.raises(SystemExit) as exit:
        mini.main(["--help"])
    out = capsys.readouterr().out
    assert exit.value.code == 0 and "default: None" not in out
    for text in ("(default runs/mini)", "(default 5e-05)", "(default 0-4", "(default psr,nsr,w_reinforce,grpo)",
                 "(default 0.2)", "(default 4)", "(default 120; --smoke: 4)"):  # fmt: skip
        assert text in " ".join(out.split()), text
