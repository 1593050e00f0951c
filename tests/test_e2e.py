"""OpenRLHF 0.11.2's real training loop with the plugin, end to end on CPU (tests/e2e/harness.py).

The runs are made once per session (about 30 minutes on 2 cores, each printed by name as it starts
and ends; ``-m "not e2e"`` leaves them out) and every assertion reads what they left: exit codes, OpenRLHF's tensorboard logs, the
saved models, the vLLM engine's record of its weights and requests, evaluation outputs.
"""

import json
import math
import os
import sys
from pathlib import Path

import pytest
import torch
from conftest import HERE, terminal_lines
from safetensors.torch import load_file

sys.path.insert(0, str(HERE / "e2e"))
import harness  # noqa: E402

pytestmark = pytest.mark.e2e
RUNS = {run.name: run for run in harness.RUNS}
OBJECTIVE_RUNS = [
    name for name, run in RUNS.items() if run.estimator in ("psr", "nsr", "w_reinforce", "maxrl", "passk")
]
GROUP_RUNS = [name for name, run in RUNS.items() if run.estimator in ("maxrl", "passk")]
# the paper's Figure 4 diagnostics the plugin adds to OpenRLHF's rollout/ metrics
PLUGIN_METRICS = ["correct_frac", "prompts_all_correct_frac", "prompts_none_correct_frac", "grad_samples_frac"]
# the rollout's diversity, added for every estimator
DIVERSITY_METRICS = ["entropy", "distinct_answers_frac", "pass_at_1", "pass_at_n"]
# psr / nsr in drop mode: the samples with no gradient are removed before any forward pass
REMOVAL_RUNS = [n for n, r in RUNS.items() if r.estimator in ("psr", "nsr") and "zero" not in r.flags]


@pytest.fixture(scope="session")
def summary(tmp_path_factory, pytestconfig):
    done = os.environ.get("OPENRLHF_NSR_E2E_SUMMARY")  # re-check a finished `make e2e` without running it
    if done:
        return json.loads(Path(done).read_text())
    out = tmp_path_factory.mktemp("e2e")
    # each run by name as it starts and ends, on the terminal (pytest would show nothing for 30 minutes)
    result = harness.run_all(out, say=terminal_lines(pytestconfig))
    assert json.loads((out / "summary.json").read_text()) == result
    return result


@pytest.fixture(scope="session")
def runs(summary):
    return {run["name"]: run for run in summary["runs"]}


def _log_tail(run, lines=60):
    return "\n".join(Path(run["log"]).read_text(errors="replace").splitlines()[-lines:])


def _scalars(run):
    return harness.read_scalars(run["tensorboard_dir"])


def _weights(folder):
    state = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        state.update(load_file(str(file)))
    assert state, f"no safetensors weights in {folder}"
    return state


def _under_vllm_names(state):
    """A Qwen state dict of transformers as vLLM's Qwen models hold it: q/k/v and gate/up projections fused
    (in that order) into ``qkv_proj`` and ``gate_up_proj``; the tied lm_head is the embedding."""
    fused = {".qkv_proj.": (".q_proj.", ".k_proj.", ".v_proj."), ".gate_up_proj.": (".gate_proj.", ".up_proj.")}
    out = dict(state)
    for target, parts in fused.items():
        for key in [k for k in state if parts[0] in k]:
            names = [key.replace(parts[0], part) for part in parts]
            out[key.replace(parts[0], target)] = torch.cat([out.pop(name) for name in names])
    return out


def _engines(run):
    """{engine log: its records}: one engine per actor rank (the recipes colocate engines x TP = actor GPUs)."""
    logs = sorted(Path(run["engine_log_dir"]).glob("engine-*.jsonl"))
    assert len(logs) == RUNS[run["name"]].actor_ranks, logs
    return {log: [json.loads(line) for line in log.read_text().splitlines()] for log in logs}


@pytest.mark.parametrize("name", list(RUNS))
def test_run_exits_0_after_its_steps(runs, name):
    run = runs[name]
    assert run["returncode"] == 0, _log_tail(run)
    steps = _scalars(run)["train/rollout/num_samples"]
    assert sorted(steps) == list(range(1, RUNS[name].steps + 1))


@pytest.mark.parametrize("name", OBJECTIVE_RUNS)
def test_plugin_metrics_reach_openrlhfs_logs_every_step(runs, name):
    scalars = _scalars(runs[name])
    for metric in PLUGIN_METRICS:
        values = scalars.get(f"train/rollout/{metric}", {})
        assert sorted(values) == list(range(1, RUNS[name].steps + 1)), (metric, sorted(scalars))
        assert all(0.0 <= v <= 1.0 for v in values.values()), (metric, values)


def test_builtin_estimator_gets_openrlhfs_metrics_and_none_of_the_objectives(runs):
    scalars = _scalars(runs["group_norm"])
    assert len(scalars["train/rollout/reward_mean"]) == harness.STEPS
    assert not any(f"train/rollout/{metric}" in scalars for metric in PLUGIN_METRICS + ["lambda"])


@pytest.mark.parametrize("name", list(RUNS))
def test_diversity_metrics_reach_openrlhfs_logs_every_step_for_every_estimator(runs, name):
    scalars = _scalars(runs[name])
    entropy = "entropy_kept" if name in REMOVAL_RUNS else "entropy"  # only kept samples had a forward pass
    metrics = [entropy if m == "entropy" else m for m in DIVERSITY_METRICS]
    for metric in metrics:
        values = scalars.get(f"train/rollout/{metric}", {})
        if metric == "entropy_kept" and name == "nsr_all_correct":
            assert not values  # nothing kept: no forward pass, no entropy
            continue
        assert sorted(values) == list(range(1, RUNS[name].steps + 1)), (metric, sorted(scalars))
    n = 4  # samples per prompt
    for step in range(1, RUNS[name].steps + 1):
        value = {m: scalars[f"train/rollout/{m}"][step] for m in metrics if f"train/rollout/{m}" in scalars}
        assert value.get(entropy, 1) > 0, value  # sampled at temperature 1
        assert 1 / n <= value["distinct_answers_frac"] <= 1 and 0 <= value["pass_at_1"] <= value["pass_at_n"] <= 1
        # 0/1 rewards: pass@1 is the share of correct samples (OpenRLHF's own reward mean)
        assert value["pass_at_1"] == pytest.approx(scalars["train/rollout/reward_mean"][step], abs=1e-6)


@pytest.mark.parametrize("name", [n for n in RUNS if RUNS[n].estimator == "w_reinforce"])
def test_lambda_is_logged_every_step_as_configured(runs, name):
    from openrlhf_nsr.schedules import EntropyLambdaController

    scalars = _scalars(runs[name])
    lam = scalars["train/rollout/lambda"]
    assert sorted(lam) == list(range(1, RUNS[name].steps + 1))
    if name == "w_reinforce_sched":  # 0:0,2:0.1 at OpenRLHF's global steps 1 and 2
        assert lam == pytest.approx({1: 0.05, 2: 0.1})
    elif name.startswith("w_reinforce_sched4"):  # 0:0,4:0.1, resumed or not
        assert lam == pytest.approx({1: 0.025, 2: 0.05, 3: 0.075, 4: 0.1})
    elif name.startswith("w_reinforce_adaptive"):  # the controller replayed on the logged entropies (resumed:
        # only the state saved with step 2's checkpoint gives the same lambda at steps 3 and 4)
        controller = EntropyLambdaController(target=0.9, lam_max=0.1)
        entropy = scalars["train/rollout/entropy"]
        expected = {step: controller.update(entropy[step]) for step in sorted(entropy)}
        assert lam == pytest.approx(expected, abs=1e-6), (lam, entropy)
        assert lam[1] == pytest.approx(0.1 * 0.1 / 0.9 * 1.0, abs=1e-6)  # first step: +(1/0.9 - 1) x 0.1
    else:
        assert lam == pytest.approx({1: 0.1, 2: 0.1})
    for other in [n for n in RUNS if RUNS[n].estimator != "w_reinforce"]:
        assert "train/rollout/lambda" not in _scalars(runs[other])


def test_evaluation_during_training_logs_pass_at_every_k(runs):
    scalars = _scalars(runs["w_reinforce_sched"])
    sources = [tag[len("eval/eval_") : -len("_pass1")] for tag in scalars if tag.startswith("eval/eval_") and
               tag.endswith("_pass1")]  # fmt: skip
    assert sources, sorted(scalars)
    for source in sources:
        values = [scalars[f"eval/eval_{source}_pass{k}"][harness.STEPS] for k in (1, 2, 4, 8)]
        assert values == sorted(values) and 0 <= values[0] and values[-1] <= 1, values


@pytest.mark.parametrize("name", list(RUNS))
def test_every_logged_number_is_finite(runs, name):
    scalars = _scalars(runs[name])
    bad = {tag: v for tag, values in scalars.items() for v in values.values() if not math.isfinite(v)}
    assert not bad


@pytest.mark.parametrize(
    "name", ["psr", "nsr", "w_reinforce", "nsr_zero", "nsr_2ranks", "w_reinforce_async", *GROUP_RUNS]
)
def test_each_objective_learned_from_both_classes_of_samples(runs, name):
    """The tiny model is right on some samples and wrong on others, so every objective gets gradient; a group
    objective's gradient comes from exactly the prompts whose group mixes both."""
    scalars = _scalars(runs[name])
    correct = scalars["train/rollout/correct_frac"]
    assert all(0.0 < v < 1.0 for v in correct.values()), correct
    grad = scalars["train/rollout/grad_samples_frac"]
    mixed = {
        s: 1
        - scalars["train/rollout/prompts_all_correct_frac"][s]
        - scalars["train/rollout/prompts_none_correct_frac"][s]
        for s in correct
    }
    estimator = RUNS[name].estimator
    if estimator == "passk":  # pass@k training also gives 0 to a group with so many correct that pass@k is sure
        assert all(0 < grad[s] <= mixed[s] + 1e-6 for s in grad), (grad, mixed)
        return
    expected = {"psr": correct, "nsr": {s: 1 - v for s, v in correct.items()}, "maxrl": mixed}.get(estimator)
    for step, value in grad.items():
        assert value == pytest.approx(1.0 if expected is None else expected[step], abs=1e-6)


@pytest.mark.parametrize("name", [n for n in RUNS if n != "nsr_all_correct"])
def test_final_model_loads_with_transformers_and_differs_from_the_base(summary, runs, name):
    from transformers import AutoModelForCausalLM

    final = runs[name]["final_model"]
    model = AutoModelForCausalLM.from_pretrained(final)
    base = AutoModelForCausalLM.from_pretrained(summary["base_model"])
    base_state = base.state_dict()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v.float(), base_state[k].float())]
    assert changed, f"{name}: the final model equals the base model"


@pytest.mark.parametrize("name", list(RUNS))
def test_engine_samples_with_the_weights_the_trainer_sent(summary, runs, name):
    """Weight sync is real: after every step the engine holds new weights (all parameters sent
    over the gloo group), generates the next rollouts with them, and after the last sync it holds
    exactly the weights OpenRLHF saved as the final model."""
    final = _weights(runs[name]["final_model"])
    for log, records in _engines(runs[name]).items():
        syncs = [r for r in records if r["event"] == "weights"]
        # the checkpoint, then one per step; nsr_all_correct never had a sample to learn from: no sync.
        # A resumed run's engine loads the base model, then gets the checkpoint's weights (OpenRLHF's
        # broadcast on resume), then one sync per step left
        spec = RUNS[name]
        steps = spec.steps - (spec.preempt_after or 0)
        versions = [0] if name == "nsr_all_correct" else list(range(steps + 1 + bool(spec.preempt_after)))
        assert [r["version"] for r in syncs] == versions, log
        generations = [r for r in records if r["event"] == "generate"]
        sha_of = {r["version"]: r["sha256"] for r in syncs}
        assert all(r["sha256"] == sha_of[r["version"]] for r in generations)
        used = {r["version"] for r in generations}
        if name == "nsr_all_correct":  # the engine kept the base weights it loaded (the final model: see below)
            assert used == {0}, used
            continue
        if spec.async_:  # rollouts run ahead of training (both batches may come from the checkpoint)
            assert 0 in used and used <= set(range(steps)), used
        elif spec.eval_during_training:  # and the evaluation after the last step samples with its weights
            assert used == set(range(steps + 1)), used
        elif spec.preempt_after:  # the base model's weights never sample: the checkpoint's do, then each step's
            assert used == set(range(1, steps + 1)), used
        else:
            assert used == set(range(steps)), used
        engine = load_file(log.with_name(log.stem + "-weights.safetensors"))  # the engine model's own
        expected = _under_vllm_names(final)
        assert expected.keys() <= engine.keys(), sorted(expected.keys() - engine.keys())
        for key, tensor in expected.items():  # vLLM pads the vocabulary rows of its embeddings
            held = engine[key][: tensor.shape[0]] if key.endswith("embed_tokens.weight") else engine[key]
            assert torch.equal(held, tensor.to(held.dtype)), (log, key)
        assert len({r["sha256"] for r in syncs}) == len(syncs)  # every step changed the weights


def test_nsr_on_batches_where_every_sample_is_correct_goes_on_without_nan(summary, runs):
    """Nothing to learn from: no sample carries gradient, so no forward pass, no optimiser step and no
    weight sync (OpenRLHF alone divides 0 by 0 here); the rollout metrics are logged and the weights
    stay exactly what they were."""
    run = runs["nsr_all_correct"]
    scalars = _scalars(run)
    assert set(scalars["train/rollout/correct_frac"].values()) == {1.0}
    assert set(scalars["train/rollout/grad_samples_frac"].values()) == {0.0}
    assert "train/policy_loss" not in scalars and "train/optimizer_steps" not in scalars
    base, final = _weights(Path(summary["base_model"])), _weights(run["final_model"])
    assert base.keys() <= final.keys()  # the final model may also save the tied lm_head
    assert all(torch.equal(final[k], base[k].to(final[k].dtype)) for k in base)


@pytest.mark.parametrize("name", [n for n in REMOVAL_RUNS if n != "nsr_all_correct"])
def test_drop_mode_trains_optimiser_steps_of_batch_size_kept_samples(runs, name):
    """Fewer kept samples, fewer optimiser steps: ceil(kept / --train.batch_size) per rollout batch."""
    spec, scalars = RUNS[name], _scalars(runs[name])
    samples, batch_size = spec.prompts_per_step * 4, spec.prompts_per_step * 2
    for step, frac in scalars["train/rollout/grad_samples_frac"].items():
        kept = round(frac * samples)
        assert scalars["train/optimizer_steps"][step] == -(-kept // batch_size), (step, kept)
    assert "train/optimizer_steps" not in _scalars(runs["nsr_zero"])  # zero mode keeps OpenRLHF's schedule


def test_grading_faults_score_0_and_show_in_the_logs(runs):
    run = runs["nsr_grading_faults"]
    assert run["returncode"] == 0, _log_tail(run)
    scalars = _scalars(run)
    timeouts = scalars["train/grading_timeout"]
    assert sorted(timeouts) == list(range(1, harness.STEPS + 1))
    log = Path(run["log"]).read_text(errors="replace")
    for step in timeouts:  # the reward's faults reach the log as a warning, every step
        assert f"[openrlhf_nsr] warning: step {step}: " in log and "grading_timeout 100%" in log
    assert all(v > 0.5 for v in timeouts.values()), timeouts
    for step, correct in scalars["train/rollout/correct_frac"].items():
        assert correct <= 1.0 - timeouts[step] + 1e-6  # a sample whose grading timed out scored 0


def test_two_actor_ranks_train_in_data_parallel(runs):
    run = runs["nsr_2ranks"]
    log = Path(run["log"]).read_text(errors="replace")
    assert log.count("(PolicyModelActor pid=") and len(set(_actor_pids(log))) == 2


def _actor_pids(log):
    return [
        line.split("(PolicyModelActor pid=")[1].split(")")[0]
        for line in log.splitlines()
        if "(PolicyModelActor pid=" in line
    ]


def test_summary_says_what_each_run_is(summary, runs):
    assert Path(summary["base_model"]).is_dir()
    for name, spec in RUNS.items():
        run = runs[name]
        assert (run["estimator"], run["actor_ranks"], run["async"], run["steps"]) == (
            spec.estimator, spec.actor_ranks, spec.async_, spec.steps)  # fmt: skip
        assert run["command"][:2] == ["bash", str(harness.REPO / "recipes" / "launch.sh")], run["command"]
        assert Path(run["tensorboard_dir"]).is_dir() and Path(run["final_model"]).is_dir()
        assert run["final_model"] == str(Path(summary["checkpoint_root"]) / harness.MODEL_NAME / name / "final")
    evaluated = [run for run in summary["runs"] if "eval_dir" in run]
    assert [run["name"] for run in evaluated] == [harness.EVALUATED_RUN]


def test_evaluation_of_a_trained_checkpoint_with_both_backends(runs):
    run = runs[harness.EVALUATED_RUN]
    evaluation = run["eval"]
    for step in ("hf", "vllm", "compare"):
        assert evaluation["returncodes"][step] == 0, Path(evaluation["logs"][step]).read_text()[-3000:]
    for backend in ("hf", "vllm"):
        metrics = json.loads((Path(evaluation["dirs"][backend]) / "metrics.json").read_text())
        config = json.loads((Path(evaluation["dirs"][backend]) / "config.json").read_text())
        assert config["model"] == run["final_model"] and config["backend"] == backend
        passk = metrics["datasets"]["math"]["pass_at_k"]
        assert sorted(passk, key=int) == ["1", "2", "4"]
        assert all(0.0 <= v <= 1.0 for v in passk.values())
        assert passk["1"] <= passk["2"] <= passk["4"]
    compared = Path(evaluation["logs"]["compare"]).read_text()
    compared = compared.lower()
    assert "paper w-reinforce" in compared and f"{run['name']} - paper w-reinforce" in compared


def test_benchmark_launcher_evaluates_the_final_models_the_runs_wrote(summary, runs):
    evaluation = runs[harness.EVALUATED_RUN]["eval"]
    assert evaluation["returncodes"]["launcher"] == 0, Path(evaluation["logs"]["launcher"]).read_text()[-3000:]
    out = Path(evaluation["dirs"]["launcher"])
    for name in ("base",) + harness.LAUNCHER_RUNS:
        config = json.loads((out / name / "config.json").read_text())
        expected = summary["base_model"] if name == "base" else runs[name]["final_model"]
        assert config["model"] == expected and config["backend"] == "hf"
        assert (out / name / "metrics.json").exists()
    assert (out / "compare_passk.png").exists()


@pytest.mark.parametrize("name", list(RUNS))
def test_every_run_trains_in_the_recipes_configuration(runs, name):
    """Launched through recipes/launch.sh: packing, dynamic batching, ZeRO-3 and colocation as the recipes
    set them, whatever the CPU profile overrides (sizes, logical GPUs); read back from the run's own log."""
    spec, resolved = RUNS[name], runs[name]["resolved"]
    assert resolved, _log_tail(runs[name])
    assert resolved["ds.packing_samples"] is True and resolved["train.dynamic_batch_enable"] is True
    assert resolved["ds.zero_stage"] == 3 and resolved["train.colocate_all"] is True and resolved["ds.enable_sleep"]
    # vLLM's CPU build has no sleep mode (harness.CPU_ENVIRONMENT: VLLM_SLEEP=0), nor has async mode
    assert resolved["vllm.enable_sleep"] is False
    assert resolved["algo.advantage.estimator"] == spec.estimator
    assert resolved["actor.num_gpus_per_node"] == spec.actor_ranks
    assert (
        resolved["train.batch_size"] == spec.prompts_per_step * 2
        and resolved["rollout.batch_size"] == spec.prompts_per_step
    )
    assert resolved["rollout.n_samples_per_prompt"] == 4


def test_each_recipe_sets_the_estimator_the_harness_expects():
    for recipe, estimator in harness.RECIPE_ESTIMATORS.items():
        text = (harness.REPO / "recipes" / "objectives" / f"{recipe}.sh").read_text()
        assert f"--algo.advantage.estimator {estimator}" in text, recipe


RESUMED_RUNS = [name for name, run in RUNS.items() if run.preempt_after]


def _steps_per_event_file(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logged = []
    for events in sorted(Path(run["tensorboard_dir"]).rglob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        logged.append(sorted(e.step for e in accumulator.Scalars("train/rollout/num_samples")))
    return logged


def _trainer_steps(folder):
    lines = (Path(folder) / "trainer-steps.jsonl").read_text().splitlines()
    return {record["step"]: sorted(record["prompts"]) for record in map(json.loads, lines)}


@pytest.mark.parametrize("name", RESUMED_RUNS)
def test_a_preempted_run_resumes_from_its_checkpoint_and_logs_each_step_once(runs, name):
    """Killed right after step 2's checkpoint (the first launch fails), relaunched with --ckpt.load_enable:
    OpenRLHF logs steps 1-2 in the first launch's events and 3-4 in the second's, each once."""
    run, spec = runs[name], RUNS[name]
    first = run["preempted"]
    assert first["returncode"] != 0 and "[e2e] preempted after step 2's checkpoint" in Path(first["log"]).read_text()
    assert run["returncode"] == 0, _log_tail(run)
    assert "--ckpt.load_enable" in run["launch_env"]["EXTRA_ARGS"].split()
    assert _steps_per_event_file(run) == [[1, 2], [3, 4]]
    assert spec.steps == 4  # 20 prompts in batches of 8, the partial batch of 4 dropped: 2 steps per pass


@pytest.mark.parametrize("name", RESUMED_RUNS)
def test_a_resumed_run_trains_on_the_prompts_of_the_uninterrupted_run(runs, name):
    """The same --train.seed gives the same prompt order (the plugin seeds OpenRLHF's sampler), and the
    sampler's state in the checkpoint continues it: every step, resumed or not, trains the same prompts."""
    run, uninterrupted = runs[name], runs[name.removesuffix("_resumed")]
    steps = {**_trainer_steps(run["preempted"]["engine_log_dir"]), **_trainer_steps(run["engine_log_dir"])}
    reference = _trainer_steps(uninterrupted["engine_log_dir"])
    assert sorted(steps) == sorted(reference) == [1, 2, 3, 4]
    assert all(steps[s] == reference[s] for s in reference)
    assert len({p for s in (1, 2) for p in reference[s]}) == 16  # a pass: 16 distinct prompts of the 20


@pytest.mark.parametrize("name", RESUMED_RUNS)
def test_a_resumed_run_continues_its_lambdas(runs, name):
    """Schedules: the same lambda at every step as uninterrupted. The controller: its state (lambda and
    the first step's entropy) comes back from the checkpoint, so one controller replayed over all four
    logged entropies gives the logged lambdas (test_lambda_is_logged_every_step_as_configured), which a
    controller started afresh at step 3 would not. (Its lambdas equal the uninterrupted run's only as far
    as the samples do: vLLM's CPU sampling is not reproducible from run to run, so the entropies differ.)"""
    from openrlhf_nsr.schedules import EntropyLambdaController

    lam = _scalars(runs[name])["train/rollout/lambda"]
    reference = _scalars(runs[name.removesuffix("_resumed")])["train/rollout/lambda"]
    assert sorted(lam) == sorted(reference) == [1, 2, 3, 4]
    if "sched" in name:
        assert lam == pytest.approx(reference, abs=1e-9)
        return
    entropy = _scalars(runs[name])["train/rollout/entropy"]
    restored = f"[openrlhf_nsr] step 2: lambda controller resumed: lambda {lam[2]:g}, reference entropy "
    log = Path(runs[name]["log"]).read_text(errors="replace")
    assert restored in log and log.split(restored)[1].split()[0] == f"{entropy[1]:g}"
    afresh = EntropyLambdaController(target=0.9, lam_max=0.1)
    assert afresh.update(entropy[3]) != pytest.approx(lam[3], abs=1e-6)


@pytest.mark.parametrize("name", [n for n, r in RUNS.items() if not r.async_])
def test_the_starting_model_is_evaluated_before_training(runs, name):
    """--eval.before_training (the recipes'): OpenRLHF's evaluation at step 0, not again on resume."""
    scalars = _scalars(runs[name])
    at_zero = [tag for tag, values in scalars.items() if tag.startswith("eval/") and 0 in values]
    assert at_zero, sorted(scalars)
    if RUNS[name].preempt_after:
        assert _steps_per_event_file(runs[name])[1][0] == 3  # the resumed launch starts at step 3
