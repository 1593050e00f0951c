"""Before a run starts: memory and disk estimates, the run's length, the prompt order, the plugin's
state in checkpoints, and the checks that refuse a run before Ray starts."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from conftest import HERE, REPO

from openrlhf_nsr import memory, openrlhf_patch, preflight, schedules

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_memory_check  # noqa: E402

# ── memory.py ──


@pytest.mark.parametrize(
    "name,billions",
    [("Qwen/Qwen2.5-Math-7B", 7.62), ("Qwen/Qwen3-4B", 4.02), ("meta-llama/Llama-3.1-8B-Instruct", 8.03)],
)
def test_parameter_counts_match_the_published_models(name, billions):
    assert memory.KNOWN_MODELS[name].parameters / 1e9 == pytest.approx(billions, rel=0.005)


def test_a_local_models_shape_comes_from_its_config(tmp_path):
    config = {"vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 3, "intermediate_size": 128,
              "num_attention_heads": 4, "tie_word_embeddings": True}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    shape = memory.model_shape(str(tmp_path))
    assert (shape.vocab, shape.kv_heads, shape.head_dim, shape.tied_embeddings) == (1000, 4, 16, True)
    assert shape.parameters == 1000 * 64 + 3 * (64 * 16 * 16 + 3 * 64 * 128 + 2 * 64) + 64
    assert memory.model_shape(str(tmp_path / "missing")) is None and memory.model_shape("org/unknown") is None


def test_the_largest_fitting_budget_fits_and_one_more_step_does_not():
    shape = memory.KNOWN_MODELS["Qwen/Qwen2.5-Math-7B"]
    for forward, cost in ((False, memory.training_bytes), (True, memory.forward_bytes)):
        tokens = memory.largest_fitting(shape, 8, 80, forward=forward)
        assert sum(cost(shape, tokens, 8).values()) <= 80e9 < sum(cost(shape, tokens + 1000, 8).values())


def test_the_estimate_matches_the_measured_peak_of_openrlhfs_actor_at_toy_size():
    """benchmarks/gpu_memory_check.py on CPU: one training micro-batch and one no-grad forward through
    OpenRLHF's Actor (fp32 logits, entropy), measured tensor by tensor, against the estimate's terms."""
    result = gpu_memory_check.measure(gpu_memory_check.TOY, 2048, 2, "cpu")
    assert result["estimate_train"] / result["train"] == pytest.approx(1.0, abs=0.15), result
    assert result["estimate_forward"] / result["forward"] == pytest.approx(1.0, abs=0.15), result


def test_without_openrlhf_the_check_replicates_actor_forward_to_the_byte():
    """A bare GPU machine (torch and transformers only) measures the same tensors: the replica of
    Actor.forward gives OpenRLHF's peaks."""
    real = gpu_memory_check.measure(gpu_memory_check.TOY, 1024, 2, "cpu", use_openrlhf=True)
    replica = gpu_memory_check.measure(gpu_memory_check.TOY, 1024, 2, "cpu", use_openrlhf=False)
    assert real["actor"].endswith("openrlhf.models.actor.Actor") and replica["actor"].endswith("ActorForward")
    for phase in ("train", "forward"):
        assert replica[phase] == pytest.approx(real[phase], rel=1e-3), (phase, real, replica)


def test_gpu_memory_check_runs_as_a_script():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_memory_check.py"), "--toy", "--tokens", "512"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "train    measured" in out.stdout and "estimate / measured" in out.stdout
    usage = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_memory_check.py")], capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert usage.returncode == 2 and "give one of --model NAME or --toy" in usage.stderr


# ── the run's length ──


def _config(**overrides):
    config = SimpleNamespace(
        rollout=SimpleNamespace(batch_size=8, n_samples_per_prompt=4, drop_last_batch=False),
        train=SimpleNamespace(num_episodes=2, batch_size=16, max_epochs=1, seed=42),
    )
    for dotted, value in overrides.items():
        section, key = dotted.split("__")
        setattr(getattr(config, section), key, value)
    return config


@pytest.mark.parametrize("drop,expected", [(False, (3, 20, 6)), (True, (2, 16, 4))])
def test_steps_with_a_partial_last_batch(drop, expected):
    """20 prompts in batches of 8: OpenRLHF trains the partial third batch; --rollout.drop_last_batch does not."""
    assert preflight.steps_plan(20, _config(rollout__drop_last_batch=drop)) == expected


def _prompt_loader(config, prompts=20):
    """OpenRLHF's prepare_datasets as the PPOTrainer actor runs it (no process group), wrapped by the plugin:
    its prompt dataloader comes from DeepspeedStrategy.setup_dataloader, the call OpenRLHF makes."""
    from openrlhf.utils.deepspeed.deepspeed import DeepspeedStrategy

    def original(strategy, tokenizer):
        loader = DeepspeedStrategy.setup_dataloader(strategy, list(range(prompts)), 1, True, True, None)
        return loader, None, prompts * config.rollout.n_samples_per_prompt // config.train.batch_size * 2

    strategy = SimpleNamespace(args=config)
    return openrlhf_patch._prepare_datasets(original)(strategy, None)


def _passes(loader, passes=2):
    return [[int(batch[0]) for batch in loader] for _ in range(passes)]


def test_the_prompt_order_follows_train_seed():
    """OpenRLHF 0.11.2 alone: another order in every run (its sampler seeds itself from torch's global
    generator); with the plugin the same --train.seed gives the same passes, another seed others."""
    from openrlhf.utils.deepspeed.deepspeed import DeepspeedStrategy

    upstream = [_passes(DeepspeedStrategy.setup_dataloader(None, list(range(20)), 1, True, True, None))
                for _ in range(2)]  # fmt: skip
    assert upstream[0] != upstream[1]
    first, again = (_passes(_prompt_loader(_config())[0]) for _ in range(2))
    assert first == again and first[0] != first[1]  # same run, same order; each pass a new permutation
    assert sorted(first[0]) == list(range(20))
    assert _passes(_prompt_loader(_config(train__seed=7))[0]) != first


def test_drop_last_batch_trains_whole_batches_of_a_fresh_permutation_each_pass():
    loader, _, max_steps = _prompt_loader(_config(rollout__drop_last_batch=True))
    passes = _passes(loader, 3)
    assert [len(p) for p in passes] == [16, 16, 16] and len({tuple(p) for p in passes}) == 3
    assert all(len(set(p)) == 16 for p in passes)  # no prompt twice within a pass
    assert max_steps == 16 * 4 // 16 * 2  # OpenRLHF's formula on the prompts a pass trains on


def test_a_resumed_loader_continues_the_same_order():
    """OpenRLHF saves the dataloader's state_dict in its checkpoints; restored, the plugin's seeded sampler
    gives the rest of the pass and the next passes the first run would have had."""
    loader, _, _ = _prompt_loader(_config())
    iterator = iter(loader)
    head = [int(next(iterator)[0]) for _ in range(5)]
    state = loader.state_dict()
    rest = [int(b[0]) for b in iterator]
    following = _passes(loader, 1)[0]
    resumed, _, _ = _prompt_loader(_config())
    resumed.load_state_dict(state)
    assert [int(b[0]) for b in resumed] == rest and _passes(resumed, 1)[0] == following
    assert sorted(head + rest) == list(range(20))


# ── the plugin's state in checkpoints ──


def _maker(controller: bool):
    advantage = SimpleNamespace(
        estimator="w_reinforce", w_reinforce_lambda="0.1", lambda_controller="entropy" if controller else None,
        lambda_controller_target="0.9" if controller else None, lambda_controller_init=None,
        lambda_controller_rate=None, ignored_samples=None,
    )  # fmt: skip
    args = SimpleNamespace(algo=SimpleNamespace(advantage=advantage), rollout=SimpleNamespace(n_samples_per_prompt=8))
    return SimpleNamespace(strategy=SimpleNamespace(args=args))


def test_the_controllers_state_goes_into_the_checkpoint_and_comes_back():
    first = _maker(controller=True)
    run = openrlhf_patch.objective_run(first)
    assert openrlhf_patch.objective_run(first) is run  # built once per process, kept on the maker
    for step, entropy in ((1, 0.8), (2, 0.7)):
        run.arguments(step, entropy)
    state = json.loads(json.dumps(openrlhf_patch.plugin_state(first)))  # what DeepSpeed stores
    assert state["lambda_controller"]["reference"] == 0.8
    resumed = _maker(controller=True)
    line = openrlhf_patch.restore_plugin_state(resumed, state)
    assert "reference entropy 0.8" in line
    a, b = run.controller, openrlhf_patch.objective_run(resumed).controller
    assert (a.value, a.reference) == (b.value, b.reference)
    assert run.arguments(3, 0.6) == openrlhf_patch.objective_run(resumed).arguments(3, 0.6)
    fresh = schedules.EntropyLambdaController(target=0.9, lam_max=0.1)
    assert fresh.update(0.6) != a.value  # without the state, step 3 would start over
    assert run.metrics(run.arguments(4, 0.6)) == {"lambda": a.value}  # logged as rollout/lambda
    assert openrlhf_patch.plugin_state(_maker(controller=False)) == {}
    assert openrlhf_patch.restore_plugin_state(_maker(controller=False), state) is None


# ── refused before Ray starts ──


def _wrapper(*flags, env=None):
    """The wrapper as a real run (not --dry_run), with flash-attn's test stub importable."""
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join([str(HERE / "gpu_stubs"), str(REPO), environment.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "openrlhf_nsr.train_ppo_ray", *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment, cwd=REPO)


def test_a_wrong_label_key_is_refused_before_ray_starts(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "answer": str(i)}) + "\n" for i in range(50)))
    result = _wrapper(
        "--actor.model_name_or_path", "Qwen/Qwen2.5-Math-7B", "--reward.remote_url", "math_verify",
        "--data.prompt_dataset", str(data), "--data.input_key", "prompt", "--data.label_key", "solution",
        "--algo.advantage.estimator", "nsr",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    error = result.stderr.strip().splitlines()[-1]
    assert "--data.prompt_dataset" in error and "'solution'" in error and "answer" in error
    assert "--data.label_key" in error and "--data.skip_label_check" in error
    assert "Started a local Ray instance" not in result.stdout + result.stderr  # refused before ray.init


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--actor.model_name_or_path", "/no/such/model"], "--actor.model_name_or_path /no/such/model: no such folder"),
        (["--data.prompt_dataset", "/no/such/train.jsonl"], "--data.prompt_dataset /no/such/train.jsonl: no such file"),
        (["--eval.dataset", "./missing.parquet"], "--eval.dataset ./missing.parquet: no such file"),
        (["--reward.remote_url", "math_verfy"], "--reward.remote_url math_verfy: not a reward OpenRLHF can call"),
        (["--reward.remote_url", "/no/reward.py"], "--reward.remote_url /no/reward.py: no such reward file"),
    ],
)
def test_the_dry_run_refuses_paths_that_do_not_exist_and_a_reward_that_is_not_one(flags, message):
    base = {"--actor.model_name_or_path": "Qwen/Qwen2.5-Math-7B", "--reward.remote_url": "math_verify"}
    base.update(dict(zip(flags[::2], flags[1::2])))
    args = [x for pair in base.items() for x in pair] + ["--algo.advantage.estimator", "nsr", "--dry_run"]
    result = _wrapper(*args)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]


def test_reward_urls_that_are_accepted(tmp_path):
    reward = tmp_path / "my_reward.py"
    reward.write_text("def reward_func(queries, prompts, labels):\n    return [0.0] * len(queries)\n")
    for url in ("math_verify", "http://localhost:5000/get_reward", str(reward)):
        preflight.check_sources("Qwen/Qwen2.5-Math-7B", [], url)


def test_the_partial_batch_rule_in_the_dry_runs_printout(tmp_path):
    """The tiny e2e data (20 prompts, batches of 8): 3 batches per pass OpenRLHF's way, 2 whole ones with the flag."""
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "answer": str(i)}) + "\n" for i in range(20)))
    common = ["--actor.model_name_or_path", "Qwen/Qwen2.5-Math-7B", "--reward.remote_url", "math_verify",
              "--data.prompt_dataset", str(data), "--data.input_key", "prompt", "--data.label_key", "answer",
              "--rollout.batch_size", "8", "--train.num_episodes", "2", "--algo.advantage.estimator", "nsr",
              "--dry_run"]  # fmt: skip
    openrlhf = _wrapper(*common)
    dropped = _wrapper(*common, "--rollout.drop_last_batch")
    assert "= 3 batches per pass" in openrlhf.stdout and "x 2 passes = 6 steps" in openrlhf.stdout
    assert "= 2 batches per pass" in dropped.stdout and "x 2 passes = 4 steps" in dropped.stdout
    assert "the last 4 prompts of each shuffled pass dropped" in dropped.stdout
    assert "labels of --data.prompt_dataset: 20 of 20 checked, 0 the reward cannot grade" in dropped.stdout


def test_a_step_of_ungradable_samples_is_a_warning():
    def sample(invalid, timeout, found=1.0):
        import torch

        info = {"gold_invalid": torch.tensor([invalid]), "grading_timeout": torch.tensor([timeout]),
                "answer_found": torch.tensor([found])}  # fmt: skip
        return SimpleNamespace(info=info)

    bad = [sample(1.0, 0.0)] * 3 + [sample(0.0, 0.0)]
    assert "gold_invalid 75%" in openrlhf_patch.ungradable_warning(bad)
    assert openrlhf_patch.ungradable_warning([sample(0.0, 0.0)] * 3 + [sample(1.0, 0.0)]) is None
    assert openrlhf_patch.ungradable_warning([SimpleNamespace(info={})]) is None  # another reward: no flags


def test_each_rollout_actors_grader_pool_takes_its_share_of_the_node(monkeypatch):
    """The wrapper puts the number of rollout actors per node in the Ray job's environment (reward_pool.py reads it)."""
    from openrlhf_nsr import reward_pool, train_ppo_ray

    monkeypatch.delenv(reward_pool.ACTORS_PER_NODE_ENV, raising=False)
    config = SimpleNamespace(actor=SimpleNamespace(num_nodes=2), vllm=SimpleNamespace(num_engines=8))
    env = train_ppo_ray.with_reward_environment({"worker_process_setup_hook": "x", "env_vars": {"A": "1"}}, config)
    assert env == {"worker_process_setup_hook": "x", "env_vars": {"A": "1", reward_pool.ACTORS_PER_NODE_ENV: "4"}}
    told = {"env_vars": {reward_pool.ACTORS_PER_NODE_ENV: "1"}}  # the user's value wins
    assert train_ppo_ray.with_reward_environment(told, config) == told


def test_a_resumed_run_says_where_it_resumes_from(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "answer": str(i)}) + "\n" for i in range(20)))
    common = ["--actor.model_name_or_path", "Qwen/Qwen2.5-Math-7B", "--reward.remote_url", "math_verify",
              "--data.prompt_dataset", str(data), "--data.input_key", "prompt", "--data.label_key", "answer",
              "--eval.dataset", str(data), "--eval.before_training", "--rollout.batch_size", "8",
              "--ckpt.path", str(tmp_path / "ckpt"), "--ckpt.load_enable", "--algo.advantage.estimator", "nsr",
              "--dry_run"]  # fmt: skip
    fresh = _wrapper(*common)
    assert f"resume: no checkpoint in {tmp_path / 'ckpt'}/_actor yet: the run starts from step 0" in fresh.stdout
    assert "evaluations: 1 (step 0 included)" in fresh.stdout
    (tmp_path / "ckpt" / "_actor" / "global_step14").mkdir(parents=True)
    (tmp_path / "ckpt" / "_actor" / "latest").write_text("global_step14")
    resumed = _wrapper(*common)
    assert f"resume: from {tmp_path / 'ckpt' / '_actor' / 'global_step14'} at step 14" in resumed.stdout
    assert "evaluations: 0\n" in resumed.stdout  # no step-0 evaluation on resume (and no --eval.steps here)
    fresh_again = _wrapper(*[flag for flag in common if flag != "--ckpt.load_enable"])  # a checkpoint, not resumed
    assert "resume:" not in fresh_again.stdout and "evaluations: 1 (step 0 included)" in fresh_again.stdout


def test_a_reward_file_without_reward_func_is_refused(tmp_path):
    reward = tmp_path / "reward.py"
    reward.write_text("def score(x):\n    return 0\n")
    with pytest.raises(preflight.Refusal, match="defines no reward_func"):
        preflight.check_sources("Qwen/Qwen2.5-Math-7B", [], str(reward))


def test_the_budget_tool_names_what_is_wrong():
    run = [sys.executable, "-m", "openrlhf_nsr.memory", "--gpus", "8"]
    missing = subprocess.run(run + ["--model", "/no/such/model"], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "--model /no/such/model: no such folder" in missing.stderr
    small = subprocess.run(run + ["--model", "Qwen/Qwen2.5-Math-7B", "--gpu-memory-gb", "20"], capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert small.stdout.split() == ["0", "0"] and "do not fit 20 GB per GPU" in small.stderr
