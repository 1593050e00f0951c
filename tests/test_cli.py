"""The wrapper CLI: OpenRLHF 0.11.2's real parser plus our estimators, flags and checks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import openrlhf_nsr.openrlhf_patch as openrlhf_patch
import openrlhf_nsr.reward
from openrlhf_nsr import objectives, openrlhf_contract, train_ppo_ray

# a hub id (never looked up by a dry run) and a reward file that exists (the wrapper checks local paths)
REWARD_FILE = str(Path(openrlhf_nsr.reward.__file__))
BASE = ["--actor.model_name_or_path", "Qwen/Qwen2.5-Math-7B", "--reward.remote_url", REWARD_FILE]


def dry_run(capsys, *flags):
    assert train_ppo_ray.main(BASE + list(flags) + ["--dry_run"]) == 0
    out = capsys.readouterr().out
    config = json.loads(out[out.index("{") :])
    return config, out


def test_nsr_is_accepted_and_kl_defaults_to_zero_with_a_notice(capsys):
    config, out = dry_run(capsys, "--algo.advantage.estimator", "nsr")
    assert config["algo"]["advantage"]["estimator"] == "nsr"
    assert config["algo"]["advantage"]["ignored_samples"] == "drop"
    assert config["algo"]["advantage"]["w_reinforce_lambda"] is None
    assert config["algo"]["kl"]["init_coef"] == 0.0
    assert "--algo.kl.init_coef not given, using 0" in out
    assert config["critic"]["model_name_or_path"] is None  # OpenRLHF's own post-processing ran


def test_an_explicit_kl_coefficient_is_honoured_silently(capsys):
    config, out = dry_run(capsys, "--algo.advantage.estimator", "psr", "--algo.kl.init_coef", "0.001")
    assert config["algo"]["kl"]["init_coef"] == 0.001
    assert "not given" not in out


@pytest.mark.parametrize("flags,lam", [([], 0.1), (["--algo.advantage.w_reinforce_lambda", "1"], 1.0)])
def test_w_reinforce_lambda_defaults_to_the_papers_value_and_one_is_reachable(capsys, flags, lam):
    config, _ = dry_run(capsys, "--algo.advantage.estimator", "w_reinforce", *flags)
    assert config["algo"]["advantage"]["w_reinforce_lambda"] == lam
    assert config["algo"]["advantage"]["ignored_samples"] is None


def test_zero_mode_is_reachable(capsys):
    config, _ = dry_run(capsys, "--algo.advantage.estimator", "psr", "--algo.advantage.ignored_samples", "zero")
    assert config["algo"]["advantage"]["ignored_samples"] == "zero"


def test_builtin_estimators_keep_openrlhfs_defaults(capsys):
    config, out = dry_run(capsys, "--algo.advantage.estimator", "group_norm", "--rollout.n_samples_per_prompt", "8")
    assert config["algo"]["kl"]["init_coef"] == 0.01  # OpenRLHF 0.11.2's default
    assert "[openrlhf_nsr] --algo" not in out


def test_a_full_paper_style_command_parses_with_every_kind_of_openrlhf_flag(capsys):
    flags = [
        "--algo.advantage.estimator", "nsr",
        "--ref.num_nodes", "1", "--actor.num_gpus_per_node", "8", "--vllm.num_engines", "8",
        "--vllm.tensor_parallel_size", "1", "--train.colocate_all", "--vllm.gpu_memory_utilization", "0.6",
        "--vllm.enable_sleep", "--ds.zero_stage", "3", "--ds.packing_samples", "--actor.gradient_checkpointing_enable",
        "--rollout.batch_size", "1024", "--rollout.n_samples_per_prompt", "8", "--train.batch_size", "2048",
        "--rollout.max_new_tokens", "3072", "--rollout.temperature", "1.0", "--actor.adam.lr", "1e-6",
        "--actor.eps_clip", "0.2", "--actor.entropy_coef", "1e-4", "--data.label_key", "answer",
        "--data.input_key", "prompt", "--train.max_epochs", "1", "--ckpt.save_steps", "7",
    ]  # fmt: skip
    config, _ = dry_run(capsys, *flags)
    assert config["rollout"]["batch_size"] == 1024 and config["actor"]["entropy_coef"] == 1e-4
    assert config["ds"]["attn_implementation"] == "flash_attention_2"  # OpenRLHF's packing fix-up ran


@pytest.mark.parametrize("estimator,extra", [("maxrl", []), ("passk", ["--algo.advantage.passk_k", "4"])])
def test_the_group_objectives_are_estimators_of_the_cli(capsys, estimator, extra):
    config, out = dry_run(
        capsys, "--algo.advantage.estimator", estimator, "--rollout.n_samples_per_prompt", "8", *extra
    )
    assert config["algo"]["advantage"]["estimator"] == estimator
    assert config["algo"]["kl"]["init_coef"] == 0  # as the paper's objectives: no KL unless asked for
    if extra:
        assert config["algo"]["advantage"]["passk_k"] == 4


def test_async_mode_is_accepted(capsys):
    config, _ = dry_run(capsys, "--algo.advantage.estimator", "nsr", "--train.async_enable", "--vllm.num_engines", "4")
    assert config["train"]["async_enable"] is True


W_REINFORCE = ["--algo.advantage.estimator", "w_reinforce"]
CONTROLLER = W_REINFORCE + ["--algo.advantage.lambda_controller", "entropy"]
TARGET = "--algo.advantage.lambda_controller_target"
PASSK = ["--algo.advantage.estimator", "passk", "--rollout.n_samples_per_prompt", "8", "--algo.advantage.passk_k"]


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--algo.advantage.estimator", "nsr", "--algo.dynamic_filtering_enable"], "dynamic_filtering_enable removes"),
        (["--algo.advantage.estimator", "w_reinforce", "--algo.dynamic_filtering_enable"], "defeats"),
        (["--algo.advantage.estimator", "w_reinforce", "--algo.advantage.w_reinforce_lambda", "-0.1"], ">= 0"),
        (["--algo.advantage.estimator", "nsr", "--algo.advantage.w_reinforce_lambda", "0.1"], "only applies to"),
        (["--algo.advantage.estimator", "group_norm", "--algo.advantage.w_reinforce_lambda", "0.1"], "only applies"),
        (["--algo.advantage.estimator", "w_reinforce", "--algo.advantage.ignored_samples", "zero"], "psr / nsr, not"),
        # lambda schedules: the message names the bad part
        (["--algo.advantage.estimator", "w_reinforce", "--algo.advantage.w_reinforce_lambda", "0:0,40:x"], "'40:x'"),
        (["--algo.advantage.estimator", "w_reinforce", "--algo.advantage.w_reinforce_lambda", "9:0,4:1"], "increasing"),
        (["--algo.advantage.estimator", "w_reinforce", "--algo.advantage.w_reinforce_lambda", "0:0,5"], "'5' is not"),
        (["--algo.advantage.estimator", "w_reinforce", "--algo.advantage.w_reinforce_lambda", "0:0,9:-1"], ">= 0"),
        (["--algo.advantage.estimator", "w_reinforce", "--algo.advantage.w_reinforce_lambda", "0:0,9:inf"], "finite"),
        (["--algo.advantage.estimator", "w_reinforce", "--algo.advantage.w_reinforce_lambda", "1.5:0"], "integer"),
        (["--algo.advantage.estimator", "nsr", "--algo.advantage.w_reinforce_lambda", "0:0,9:1"], "only applies to"),
        # the entropy controller
        (
            W_REINFORCE + ["--algo.advantage.lambda_controller", "entropy"],
            "needs --algo.advantage.lambda_controller_target",
        ),
        (CONTROLLER + [TARGET, "0"], "(0, 1]"),
        (CONTROLLER + [TARGET, "1.01"], "(0, 1]"),
        (CONTROLLER + [TARGET, "x"], "not a number"),
        (W_REINFORCE + [TARGET, "0.9"], "only applies with --algo.advantage.lambda_controller entropy"),
        (CONTROLLER + [TARGET, "0.9", "--algo.advantage.w_reinforce_lambda", "0:0,9:1"], "must be a number (its upper"),
        (
            CONTROLLER + [TARGET, "0.9", "--algo.advantage.lambda_controller_init", "0.5"],
            "above the controller's upper",
        ),
        (CONTROLLER + [TARGET, "0.9", "--algo.advantage.lambda_controller_rate", "0"], "finite and > 0"),
        (W_REINFORCE + ["--algo.advantage.lambda_controller_init", "0.05"], "only applies with"),
        (W_REINFORCE + ["--algo.advantage.lambda_controller_rate", "2"], "only applies with"),
        (["--algo.advantage.estimator", "nsr", "--algo.advantage.lambda_controller", "entropy"], "only applies to"),
        (["--algo.advantage.estimator", "w_reinforce", "--algo.advantage.lambda_controller", "pid"], "invalid choice"),
        (["--algo.advantage.estimator", "gae", "--algo.advantage.ignored_samples", "drop"], "only applies to"),
        (["--algo.advantage.estimator", "nsr", "--algo.advantage.gamma", "0.99"], "constant advantage"),
        (["--algo.advantage.estimator", "psr", "--reward.overlong_buffer_len", "512"], "length penalties"),
        # passk's k: required, an integer, 1 <= k < n_samples_per_prompt; the message names the flag
        (PASSK[:-1], "passk needs --algo.advantage.passk_k K"),
        (PASSK + ["0"], "--algo.advantage.passk_k 0: must be an integer >= 1, got '0'"),
        (PASSK + ["2.5"], "--algo.advantage.passk_k 2.5: must be an integer >= 1"),
        (
            PASSK + ["8", "--rollout.n_samples_per_prompt", "8"],
            "--algo.advantage.passk_k 8 must be below n_samples_per_prompt 8",
        ),
        (PASSK[:3] + ["2", "--algo.advantage.passk_k", "2"], "--algo.advantage.passk_k 2 must be below"),
        (  # OpenRLHF's default n_samples_per_prompt: 1, no group
            ["--algo.advantage.estimator", "passk", "--algo.advantage.passk_k", "2"],
            "passk needs --rollout.n_samples_per_prompt of at least 2",
        ),
        (["--algo.advantage.estimator", "maxrl"], "maxrl needs --rollout.n_samples_per_prompt of at least 2"),
        (["--algo.advantage.estimator", "maxrl", "--algo.advantage.passk_k", "4"], "only applies to"),
        (["--algo.advantage.estimator", "maxrl", "--algo.advantage.ignored_samples", "drop"], "psr / nsr, not"),
        (PASSK + ["2", "--algo.dynamic_filtering_enable"], "keeps them in the token-mean"),
    ],
)
def test_bad_combinations_are_refused_in_one_line_with_a_reason_and_a_fix(capsys, flags, message):
    assert train_ppo_ray.main(BASE + flags + ["--dry_run"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("[openrlhf_nsr] error: ") and len(err.strip().splitlines()) == 1, err
    assert "usage:" not in err  # not OpenRLHF's 160-line usage


def test_the_wrappers_checks_run_before_openrlhf_is_imported():
    """A mistake in our flags is reported without importing OpenRLHF, DeepSpeed or Ray (seconds, not 15)."""
    script = (
        "import sys; from openrlhf_nsr import train_ppo_ray; "
        "code = train_ppo_ray.main(sys.argv[1:]); "
        "heavy = sorted(m for m in ('openrlhf', 'deepspeed', 'ray', 'vllm', 'transformers') if m in sys.modules); "
        "print('imported:', heavy); sys.exit(code)"
    )
    flags = ["--algo.advantage.estimator", "nsr", "--algo.advantage.w_reinforce_lambda", "0.1", "--dry_run"]
    result = subprocess.run([sys.executable, "-c", script] + flags, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "imported: []" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == (  # (torch may warn above it, e.g. about pynvml)
        "[openrlhf_nsr] error: --algo.advantage.w_reinforce_lambda only applies to --algo.advantage.estimator "
        "w_reinforce, not nsr: remove it or change the estimator"
    )


def test_an_abbreviated_flag_is_read_as_openrlhfs_parser_reads_it(capsys):
    """The early check leaves a command with an abbreviated flag to the check on OpenRLHF's parse."""
    flags = ["--algo.advantage.estim", "w_reinforce", "--algo.advantage.w_reinforce_lambda", "0.3"]
    config, _ = dry_run(capsys, *flags)
    assert config["algo"]["advantage"]["w_reinforce_lambda"] == 0.3
    config, _ = dry_run(capsys, "--algo.advantage.estim=w_reinforce", *flags[2:])
    assert config["algo"]["advantage"]["w_reinforce_lambda"] == 0.3
    assert train_ppo_ray.main(BASE + ["--algo.advantage.estim", "nsr", *flags[2:], "--dry_run"]) == 2
    assert "only applies to --algo.advantage.estimator w_reinforce, not nsr" in capsys.readouterr().err


def test_an_estimator_neither_openrlhf_nor_we_know_is_openrlhfs_own_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_ppo_ray.main(BASE + ["--algo.advantage.estimator", "nrs", "--dry_run"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nrs'" in capsys.readouterr().err


def test_a_lambda_schedule_is_parsed_and_shown_by_dry_run(capsys):
    config, out = dry_run(
        capsys, "--algo.advantage.estimator", "w_reinforce", "--algo.advantage.w_reinforce_lambda", " 0:0, 40:0.10"
    )
    assert config["algo"]["advantage"]["w_reinforce_lambda"] == "0:0,40:0.1"  # canonical, JSON-able
    assert "w_reinforce_lambda: piecewise linear: 0 at step 0 -> 0.1 at step 40" in out


def test_the_entropy_controller_is_configured_and_shown_by_dry_run(capsys):
    config, out = dry_run(
        capsys, "--algo.advantage.estimator", "w_reinforce", "--algo.advantage.lambda_controller", "entropy",
        "--algo.advantage.lambda_controller_target", "0.8", "--algo.advantage.w_reinforce_lambda", "0.2",
    )  # fmt: skip
    adv = config["algo"]["advantage"]
    assert (adv["lambda_controller"], adv["lambda_controller_target"], adv["w_reinforce_lambda"]) == (
        "entropy",
        0.8,
        0.2,
    )
    assert (adv["lambda_controller_init"], adv["lambda_controller_rate"]) == (0.0, 1.0)
    assert "lambda starts at 0, stays in [0, 0.2]" in out and "near 0.8 x its first-step value" in out


@pytest.fixture
def scaled_nsr():
    """A new objective with a hyperparameter of its own, registered for one test."""
    weight = objectives.Hyperparameter(
        "test_negative_weight", float, 1.0, argument="weight", schedulable=True, check=objectives.check_lambda,
        help="weight of the negatives",
    )  # fmt: skip

    @objectives.register_objective("test_scaled_nsr", hyperparameters=(weight,))
    def scaled_nsr(correct, weight):
        return -weight * torch.ones(correct.shape), ~correct

    yield "test_scaled_nsr"
    del objectives._OBJECTIVES["test_scaled_nsr"]


def test_a_new_objectives_hyperparameters_become_validated_flags_with_no_plumbing(capsys, scaled_nsr):
    est = ["--algo.advantage.estimator", scaled_nsr]
    config, out = dry_run(capsys, *est, "--algo.advantage.test_negative_weight", "0:1,10:0.5")
    adv = config["algo"]["advantage"]
    assert (adv["test_negative_weight"], adv["ignored_samples"]) == ("0:1,10:0.5", "drop")
    assert "test_negative_weight: piecewise linear" in out
    run = objectives.objective_run(scaled_nsr, {"test_negative_weight": "0:1,10:0.5"})  # its parameters object
    assert run.arguments(5) == {"weight": 0.75} and run.params.test_negative_weight == "0:1,10:0.5"
    assert run.params.ignored_samples == "drop" and run.metrics(run.arguments(5)) == {} and run.state() == {}
    for flags, message in [
        (
            ["--algo.advantage.test_negative_weight", "-1"],
            "--algo.advantage.test_negative_weight -1: value '-1' must be finite and >= 0",
        ),
        (["--algo.advantage.w_reinforce_lambda", "0.1"], "only applies to --algo.advantage.estimator w_reinforce"),
    ]:
        assert train_ppo_ray.main(BASE + est + flags + ["--dry_run"]) == 2
        assert message in capsys.readouterr().err
    # and the other estimators refuse it
    flags = ["--algo.advantage.estimator", "nsr", "--algo.advantage.test_negative_weight", "1"]
    assert train_ppo_ray.main(BASE + flags) == 2
    assert f"only applies to --algo.advantage.estimator {scaled_nsr}, not nsr" in capsys.readouterr().err


class _StopAtRayInit(Exception):
    pass


def test_ray_init_gets_the_worker_setup_hook_next_to_openrlhfs_env_vars(monkeypatch):
    import ray

    calls = []

    def fake_init(*args, **kwargs):
        calls.append(kwargs)
        raise _StopAtRayInit

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fake_init)
    with pytest.raises(_StopAtRayInit):
        train_ppo_ray.main(BASE + ["--algo.advantage.estimator", "nsr"])
    runtime_env = calls[0]["runtime_env"]
    assert runtime_env["worker_process_setup_hook"] == openrlhf_patch.SETUP_HOOK
    assert "TOKENIZERS_PARALLELISM" in runtime_env["env_vars"]
    assert runtime_env["env_vars"]["OPENRLHF_NSR_REWARD_ACTORS_PER_NODE"] == "1"  # grader pools share the node
    assert ray.init is fake_init  # the wrapper's hooks are gone after the run


def test_an_unsupported_openrlhf_version_fails_at_start_naming_the_supported_one(monkeypatch, capsys):
    monkeypatch.setattr(openrlhf_contract.importlib.metadata, "version", lambda name: "0.12.0")
    assert train_ppo_ray.main(BASE + ["--algo.advantage.estimator", "nsr", "--dry_run"]) == 2
    err = capsys.readouterr().err
    assert "supports OpenRLHF 0.11.x" in err and "found 0.12.0" in err


def test_a_conflicting_setup_hook_is_refused_clearly():
    with pytest.raises(ValueError, match="worker_process_setup_hook"):
        openrlhf_patch.with_setup_hook({"worker_process_setup_hook": "mine.setup"})
    assert openrlhf_patch.with_setup_hook(None) == {"worker_process_setup_hook": openrlhf_patch.SETUP_HOOK}


def _run(module, *flags):
    return subprocess.run([sys.executable, "-m", module, *BASE, *flags], capture_output=True, text=True, timeout=300)


def test_the_module_entry_point_runs_as_python_dash_m():
    result = _run("openrlhf_nsr.train_ppo_ray", "--algo.advantage.estimator", "w_reinforce", "--dry_run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"w_reinforce_lambda": 0.1' in result.stdout


def test_plain_openrlhf_cli_is_left_untouched():
    result = _run("openrlhf.cli.train_ppo_ray", "--algo.advantage.estimator", "nsr")
    assert result.returncode == 2
    assert "invalid choice: 'nsr'" in result.stderr
    help_text = _run("openrlhf.cli.train_ppo_ray", "--help").stdout
    assert "--algo.advantage.estimator" in help_text and "w_reinforce" not in help_text


def test_math_verify_names_the_installed_reward_file(capsys):
    import openrlhf_nsr.reward

    config, _ = dry_run(capsys, "--algo.advantage.estimator", "nsr", "--reward.remote_url", "math_verify")
    assert config["reward"]["remote_url"] == [openrlhf_nsr.reward.__file__]
    config, _ = dry_run(capsys, "--algo.advantage.estimator", "nsr", "--reward.remote_url", REWARD_FILE)
    assert config["reward"]["remote_url"] == [REWARD_FILE]  # any other reward file, as given


def _without_gpu_packages():
    """The environment of a machine where neither vLLM nor flash-attn is installed: vLLM's CPU build and
    flash-attn's stub hidden (tests/without_gpu_packages/sitecustomize.py)."""
    from conftest import GPU_STUBS, HERE

    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(GPU_STUBS)]
    env["PYTHONPATH"] = os.pathsep.join([str(HERE / "without_gpu_packages")] + paths)
    return env


def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "openrlhf_nsr.train_ppo_ray", *args], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip


def test_help_and_dry_run_need_no_gpu_packages_and_a_real_run_says_what_to_install():
    env = _without_gpu_packages()
    probe = subprocess.run([sys.executable, "-c", "import importlib.util as u; print(u.find_spec('vllm'), "
                            "u.find_spec('flash_attn'))"], capture_output=True, text=True, env=env)  # fmt: skip
    assert probe.stdout.strip() == "None None"  # really no vllm / flash_attn here

    helped = _cli("--help", env=env)
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert "--algo.advantage.w_reinforce_lambda" in helped.stdout and "nsr" in helped.stdout

    checked = _cli(*BASE, "--algo.advantage.estimator", "nsr", "--dry_run", env=env)
    assert checked.returncode == 0, checked.stderr[-2000:]
    config = json.loads(checked.stdout[checked.stdout.index("{") :])
    assert config["algo"]["advantage"]["estimator"] == "nsr"

    refused = _cli(*BASE, "--algo.advantage.estimator", "nsr", env=env)
    assert refused.returncode == 2
    assert "needs vllm and flash_attn" in refused.stderr and "pip install 'openrlhf[vllm]==0.11.2'" in refused.stderr
    assert "Started a local Ray instance" not in refused.stdout + refused.stderr


@pytest.mark.parametrize(
    "flags,reason", [(["--ds.ring_attn_size", "2"], "--ds.ring_attn_size 2"), ([], None)], ids=["ring", "plain"]
)
def test_drop_mode_says_at_start_up_where_it_masks_instead_of_removing(capsys, flags, reason):
    """Under ring attention OpenRLHF lays out the batch across the group: drop mode masks, and says so."""
    _, out = dry_run(
        capsys, "--algo.advantage.estimator", "nsr", "--ds.packing_samples", "--vllm.num_engines", "1", *flags
    )
    notices = [line for line in out.splitlines() if "drop mode masks" in line]
    if reason is None:
        assert not notices, notices  # removal (packing and dynamic batching included): nothing to say
    else:
        assert len(notices) == 1 and reason in notices[0] and "no compute saved" in notices[0], notices
