"""Every recipe parses with OpenRLHF 0.11.2's real parser and the plugin's checks (DRY_RUN=1), and the
recipes read top to bottom: settings files only set variables, recipes/launch.sh is the one launcher."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO
from recipe_runs import RECIPES, dry_run, prepared_data_dir

PAPER_OBJECTIVES = {"psr", "nsr", "w_reinforce", "reinforce"}
GROUP_OBJECTIVES = {"maxrl", "passk"}  # past the paper
LAUNCHER = REPO / "recipes" / "launch.sh"
# files that only set variables / define functions; recipes/launch.sh sources them
SETTINGS = sorted([REPO / "recipes" / "paths.sh", *(REPO / "recipes").glob("*/model.sh"),
                   *(REPO / "recipes" / "objectives").glob("*.sh")])  # fmt: skip
# what recipes/launch.sh needs, and the settings file (of recipes/qwen3-4b/nsr.sh) that must set it
MODEL_SETTINGS = (
    "MODEL_DEFAULT",
    "TEMPLATE",
    "VLLM_TP",
    "MODEL_ARGS",
)
REQUIRED = {**{name: "qwen3-4b/model.sh" for name in MODEL_SETTINGS}, "RUN_ARGS": "objectives/nsr.sh"}
# a stand-in for python that records each call
RECORD_CALL = '#!/bin/sh\necho "$*" >> "$CALLS"\nfor a in "$@"; do printf "%s\\n" "$a"; done\n'


@pytest.fixture
def python_recorder(tmp_path):
    """(PYTHON, CALLS): a python that records each call in CALLS (absent: python was never started)."""
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text(RECORD_CALL)
    fake.chmod(0o755)
    return str(fake), tmp_path / "calls"


def bash(args, recorder, cwd, **env) -> subprocess.CompletedProcess:
    python, calls = recorder
    environment = {k: v for k, v in os.environ.items() if k != "DRY_RUN"}
    environment.update(PYTHON=python, CALLS=str(calls), DATA_DIR=str(prepared_data_dir()))
    environment.update(env)
    cmd = ["bash", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=environment, cwd=cwd, timeout=60)


def test_every_model_has_every_run():
    runs = {(p.parent.name, p.stem) for p in RECIPES}
    models = {"qwen2.5-math-7b", "qwen3-4b", "llama3.1-8b-instruct"}
    assert runs == {(m, r) for m in models for r in PAPER_OBJECTIVES | {"grpo", "ppo"} | GROUP_OBJECTIVES}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recipe_is_accepted_by_openrlhfs_parser_with_the_papers_settings(recipe):
    config = dry_run(recipe)
    run, adv, kl = recipe.stem, config["algo"]["advantage"], config["algo"]["kl"]
    # docs/paper.md §2, for every run
    assert config["rollout"]["batch_size"] == 1024 and config["rollout"]["n_samples_per_prompt"] == 8
    assert config["train"]["batch_size"] == 2048 and config["rollout"]["temperature"] == 1.0
    assert config["actor"]["adam"]["lr"] == 1e-6 and config["actor"]["eps_clip"] == 0.2
    assert config["eval"]["steps"] == 7 and config["ckpt"]["save_steps"] == 7
    # the reference's length (119 steps, whole batches) and its evaluation at step 0; checkpoints that fit a disk
    assert config["train"]["num_episodes"] == 17 and config["rollout"]["drop_last_batch"] is True
    assert config["eval"]["before_training"] is True
    assert config["ckpt"]["max_num"] == 2 and config["ckpt"]["best_metric_key"] == "none"
    assert config["ckpt"]["save_hf"] is False and config["gpu_memory_gb"] == 80
    assert config["reward"]["remote_url"][0].endswith("openrlhf_nsr/reward.py")
    assert (
        config["train"]["colocate_all"] and config["vllm"]["num_engines"] * config["vllm"]["tensor_parallel_size"] == 8
    )
    expected = {
        "psr": ("psr", None, 0.0), "nsr": ("nsr", None, 0.0), "w_reinforce": ("w_reinforce", 0.1, 0.0),
        "reinforce": ("w_reinforce", 1.0, 0.0), "grpo": ("group_norm", None, 1e-3), "ppo": ("gae", None, 1e-3),
        "maxrl": ("maxrl", None, 0.0), "passk": ("passk", None, 0.0),
    }[run]  # fmt: skip
    assert adv.get("passk_k") == (4 if run == "passk" else None)
    assert (adv["estimator"], adv["w_reinforce_lambda"], kl["init_coef"]) == expected
    assert kl["use_loss"] == (run == "grpo") and (config["critic"]["model_name_or_path"] is not None) == (run == "ppo")
    template_tokens = {
        "qwen2.5-math-7b": (4096, 3072),
        "qwen3-4b": (32768, 31744),
        "llama3.1-8b-instruct": (4096, 3072),
    }
    assert (config["data"]["max_len"], config["rollout"]["max_new_tokens"]) == template_tokens[recipe.parent.name]


def test_environment_variables_adapt_a_recipe_without_editing_it(tmp_path):
    model = tmp_path / "my-qwen"  # a local model: the dry run reads its shape from config.json
    model.mkdir()
    (model / "config.json").write_text(json.dumps({
        "vocab_size": 152064, "hidden_size": 3584, "num_hidden_layers": 28, "intermediate_size": 18944,
        "num_attention_heads": 28, "num_key_value_heads": 4,
    }))  # fmt: skip
    shutil.copytree(prepared_data_dir(), tmp_path / "data")
    config = dry_run(
        REPO / "recipes" / "qwen2.5-math-7b" / "nsr.sh",
        MODEL_PATH=str(model), DATA_DIR=str(tmp_path / "data"), OUTPUT_DIR=str(tmp_path / "out"),
        NUM_NODES="2", GPUS_PER_NODE="4", EXTRA_ARGS="--train.seed 7",
    )  # fmt: skip
    assert config["actor"]["model_name_or_path"] == str(model)
    assert config["data"]["prompt_dataset"] == str(tmp_path / "data" / "train.jsonl")
    assert config["ckpt"]["path"] == str(tmp_path / "out" / "ckpt")
    assert (config["actor"]["num_nodes"], config["actor"]["num_gpus_per_node"]) == (2, 4)
    assert config["vllm"]["num_engines"] == 4 and config["train"]["seed"] == 7


def test_prepare_data_writes_openrlhf_prompt_rows_with_the_template(tmp_path):
    from conftest import PAPER_DATA

    out = tmp_path / "train.jsonl"
    cmd = [sys.executable, "-m", "openrlhf_nsr.prepare_data", "--template", "qwen", "--out", str(out),
           "--datasets", f"math_train={PAPER_DATA / 'math_train_slice.parquet'}"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 250  # the slice's 252 rows less the 2 problems of MATH train with no gold answer at all
    assert rows[0]["prompt"].startswith(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    )
    assert rows[0]["prompt"].endswith("within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n")
    assert {"prompt", "answer", "datasource"} <= set(rows[0]) and rows[0]["datasource"] == "math_train"
    matrices = [r for r in rows if "pmatrix" in r["answer"]]
    assert matrices and all("\\\\" in r["answer"] for r in matrices)  # row separators intact (labels from solutions)


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda p: str(p.relative_to(REPO / "recipes")))
def test_a_settings_file_run_directly_launches_nothing_and_says_what_to_run(settings, python_recorder, tmp_path):
    name = str(settings.relative_to(REPO))
    for dry in ({}, {"DRY_RUN": "1"}):
        result = bash([settings], python_recorder, tmp_path, RUN="nsr", MODEL_NAME="qwen3-4b", **dry)
        assert result.returncode == 2 and result.stdout == "", result
        (message,) = result.stderr.splitlines()  # one line
        assert message.startswith(f"{name} is a settings file; run: bash recipes/"), message
    assert not python_recorder[1].exists(), python_recorder[1].read_text()
    # sourced (what recipes/launch.sh does), it sets its variables and nothing else happens
    array = {"paths.sh": "RUN_NAMES", "model.sh": "MODEL_ARGS"}.get(settings.name, "RUN_ARGS")  # not from the env
    result = bash(["-c", f"source {settings} && declare -p {array} && echo sourced"], python_recorder, tmp_path)
    assert result.returncode == 0 and result.stdout.startswith(f"declare -a {array}=("), result
    assert result.stdout.endswith("sourced\n") and not python_recorder[1].exists()


def test_a_recipe_is_one_call_of_the_launcher_with_its_model_and_run():
    for recipe in RECIPES:
        code = [line for line in recipe.read_text().splitlines() if line and not line.startswith("#")]
        assert code == [f'exec bash "$(dirname "$0")/../launch.sh" {recipe.parent.name} {recipe.stem}'], recipe


def test_the_launcher_runs_the_same_command_as_the_recipe(python_recorder, tmp_path):
    recipe = REPO / "recipes" / "qwen3-4b" / "w_reinforce.sh"
    via_recipe = bash([recipe], python_recorder, tmp_path, DRY_RUN="1")
    via_launcher = bash([LAUNCHER, "qwen3-4b", "w_reinforce"], python_recorder, tmp_path, DRY_RUN="1")
    assert via_recipe.returncode == via_launcher.returncode == 0, (via_recipe.stderr, via_launcher.stderr)
    assert via_recipe.stdout == via_launcher.stdout and "--dry_run" in via_recipe.stdout.splitlines()


@pytest.mark.parametrize("args", [[], ["qwen3-4b"], ["qwen3", "nsr"], ["qwen3-4b", "dpo"], ["qwen3-4b", "nsr", "x"]])
def test_the_launcher_with_no_such_model_or_run_shows_its_usage(args, python_recorder, tmp_path):
    result = bash([LAUNCHER, *args], python_recorder, tmp_path, DRY_RUN="1")
    assert result.returncode == 2, result
    assert "usage: bash recipes/launch.sh <model> <run>" in result.stderr
    assert "<model>: llama3.1-8b-instruct qwen2.5-math-7b qwen3-4b" in result.stderr
    assert "<run>:   grpo maxrl nsr passk ppo psr reinforce w_reinforce" in result.stderr
    assert not python_recorder[1].exists()


@pytest.fixture
def recipes_copy(tmp_path):
    """A copy of recipes/ to break: (its recipes/qwen3-4b/nsr.sh, its recipes folder)."""
    shutil.copytree(REPO / "recipes", tmp_path / "copy" / "recipes")
    return tmp_path / "copy" / "recipes" / "qwen3-4b" / "nsr.sh", tmp_path / "copy" / "recipes"


@pytest.mark.parametrize("name", REQUIRED)
def test_the_launcher_names_a_setting_a_settings_file_does_not_set(name, recipes_copy, python_recorder, tmp_path):
    recipe, recipes = recipes_copy
    with open(recipes / REQUIRED[name], "a") as settings:
        settings.write(f"unset {name}\n")
    # the same value in the environment does not count: the settings files are the one source
    result = bash([recipe], python_recorder, tmp_path, DRY_RUN="1", **{name: "2"})
    assert result.returncode == 2, result
    message = f"recipes/launch.sh: {name} is not set: recipes/{REQUIRED[name]} must set it"
    assert result.stderr.startswith(message), result.stderr
    assert not python_recorder[1].exists()


WRONG_KIND = [("VLLM_TP", "two", "a positive integer"), ("VLLM_TP", "0", "a positive integer"),
              ("MODEL_ARGS", "--data.max_len", "an array"), ("TEMPLATE", "", "a value")]  # fmt: skip


@pytest.mark.parametrize("name,value,kind", WRONG_KIND)
def test_the_launcher_names_a_setting_of_the_wrong_kind(name, value, kind, recipes_copy, python_recorder, tmp_path):
    recipe, recipes = recipes_copy
    with open(recipes / "qwen3-4b" / "model.sh", "a") as settings:
        settings.write(f"unset {name}; {name}='{value}'\n")
    result = bash([recipe], python_recorder, tmp_path, DRY_RUN="1")
    assert result.returncode == 2, result
    message = f"recipes/launch.sh: {name} must be {kind}, not '{value}': recipes/qwen3-4b/model.sh sets it"
    assert result.stderr.startswith(message), result.stderr
    assert not python_recorder[1].exists()


def _plan(recipe, **env):
    """The lines the wrapper's dry run prints about a recipe's steps, memory, disk and labels."""
    from recipe_runs import _dry_run_process

    result = _dry_run_process(recipe, None, env)
    return result, [line for line in result.stdout.splitlines() if line.startswith("[openrlhf_nsr] ")]


@pytest.mark.parametrize("model", ["qwen2.5-math-7b", "qwen3-4b", "llama3.1-8b-instruct"])
def test_every_recipe_fits_an_80gb_gpu_and_says_its_steps_memory_and_disk(model):
    result, lines = _plan(REPO / "recipes" / model / "nsr.sh")
    assert result.returncode == 0, result.stderr[-2000:]
    text = "\n".join(lines)
    # 7,500 prompts: 7 whole batches of 1,024 per pass (the last 332 dropped), x 17 passes
    assert "7500 prompts / 1024 per rollout batch = 7 batches per pass" in text and "= 119 steps" in text
    assert "evaluations: 18 (step 0 included)" in text
    memory = [line for line in lines if "memory per GPU" in line]
    assert len(memory) == 2
    for line in memory:  # both phases' estimates below the 80 GB the recipes assume by default
        assert float(line.split(" tokens: ")[1].split(" GB")[0]) <= 80.0, line
    disk = next(line for line in lines if "disk: " in line)
    assert float(disk.split("disk: ")[1].split(" GB")[0]) < 300 and "2 DeepSpeed checkpoint(s) kept" in disk
    assert "labels of --data.prompt_dataset: 2000 of 7500 checked, 0 the reward cannot grade" in text


def test_the_token_budgets_follow_the_gpus_memory():
    recipe = REPO / "recipes" / "qwen2.5-math-7b" / "psr.sh"
    budgets = {}
    for gb in ("80", "141"):
        config = dry_run(recipe, GPU_MEMORY_GB=gb)
        budgets[gb] = (config["train"]["max_tokens_per_gpu"], config["rollout"]["max_tokens_per_gpu"])
    assert budgets["80"] == (11000, 26000) and budgets["141"] == (24000, 56000)
    reference = dry_run(recipe, GPU_MEMORY_GB="0")  # no estimate: the reference's budgets, no check
    assert (reference["train"]["max_tokens_per_gpu"], reference["rollout"]["max_tokens_per_gpu"]) == (48000, 64000)


def test_a_sequence_too_long_for_one_gpu_is_refused_with_what_fits():
    """Qwen3-4B's 32,768-token sequences: one alone needs ~167 GB to train; the recipe splits each over 4
    GPUs with ring attention. Without it the dry run refuses, naming the ring size and the other way out."""
    result, _ = _plan(REPO / "recipes" / "qwen3-4b" / "nsr.sh", EXTRA_ARGS="--ds.ring_attn_size 1")
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert "one training micro-batch of 32768 tokens needs about 166.7 GB" in error
    assert "--ds.ring_attn_size 4" in error and "--data.max_len" in error and "--gpu_memory_gb 0" in error


def test_a_dry_run_without_the_data_says_how_a_real_run_writes_it(python_recorder, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(prepared_data_dir() / "train.jsonl", data / "train.jsonl")  # eval.jsonl missing
    result = bash(
        [REPO / "recipes" / "qwen3-4b" / "nsr.sh"], python_recorder, tmp_path, DRY_RUN="1", DATA_DIR=str(data)
    )
    assert result.returncode == 2
    assert f"DATA_DIR={data} has no eval.jsonl" in result.stderr
    assert "openrlhf_nsr.prepare_data --datasets math,aime2025,amc23 --template qwen3_no_thinking" in result.stderr


def test_a_real_run_writes_only_the_data_file_that_is_missing(python_recorder, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(prepared_data_dir("qwen3_no_thinking") / "train.jsonl", data / "train.jsonl")
    result = bash([REPO / "recipes" / "qwen3-4b" / "nsr.sh"], python_recorder, tmp_path, DATA_DIR=str(data))
    assert result.returncode == 0, result.stderr
    calls = python_recorder[1].read_text().splitlines()
    prepared = [call for call in calls if "openrlhf_nsr.prepare_data" in call and "--out" in call]
    assert prepared == [f"-m openrlhf_nsr.prepare_data --datasets math,aime2025,amc23 --template qwen3_no_thinking "
                        f"--out {data}/eval.jsonl"]  # fmt: skip
    assert calls[-1].startswith("-m openrlhf_nsr.train_ppo_ray ")


def test_data_written_for_another_models_template_is_refused_naming_both(tmp_path):
    result = subprocess.run(
        ["bash", str(REPO / "recipes" / "qwen3-4b" / "nsr.sh")], capture_output=True, text=True, timeout=120,
        env={**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, "DATA_DIR": str(prepared_data_dir("qwen"))},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"recipes/launch.sh: DATA_DIR={prepared_data_dir('qwen')} is not data for qwen3-4b: "
        f"{prepared_data_dir('qwen')}/train.jsonl: its prompts carry the qwen template, not qwen3_no_thinking "
        f"(line 1); set DATA_DIR to a folder for the qwen3_no_thinking template (default {REPO}/data/qwen3_no_thinking)"
    )


@pytest.mark.parametrize(
    "rows,wrong",
    [
        ([], "it is empty"),
        (["{not json"], "line 1 is not JSON"),
        (['{"question": "q", "answer": "1"}'], "line 1 has no 'prompt' and 'answer'"),
        (['{"prompt": "What is 1 + 1?", "answer": "2"}'], "its prompts carry no template of this package"),
    ],
)
def test_prepare_data_check_says_what_is_wrong_with_a_data_file(tmp_path, rows, wrong):
    from openrlhf_nsr import prepare_data

    path = tmp_path / "train.jsonl"
    path.write_text("".join(row + "\n" for row in rows))
    assert prepare_data.check_file(path, "qwen").startswith(wrong)
    assert prepare_data.check_file(prepared_data_dir("llama") / "train.jsonl", "llama") is None


def test_offline_a_real_run_names_data_dir_and_how_to_fill_it(tmp_path):
    """prepare_data cannot reach the hub: the recipe's message leads with DATA_DIR, then the offline way."""
    fake = tmp_path / "python"
    fake.write_text(
        '#!/bin/sh\necho "usage: python -m openrlhf_nsr.prepare_data [-h] ..." >&2\n'
        'echo "python -m openrlhf_nsr.prepare_data: error: math_train: cannot download TianHongZXY/MATH" >&2\nexit 2\n'
    )
    fake.chmod(0o755)
    data = tmp_path / "empty"
    result = subprocess.run(
        ["bash", str(REPO / "recipes" / "qwen2.5-math-7b" / "nsr.sh")], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHON": str(fake), "DATA_DIR": str(data), "GPU_MEMORY_GB": "0"},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"recipes/launch.sh: DATA_DIR={data} has no train.jsonl and it could not be written from the hub: "
        "math_train: cannot download TianHongZXY/MATH",
        "(offline: set DATA_DIR to a folder holding train.jsonl and eval.jsonl for the qwen template, or write "
        "train.jsonl from local copies (--datasets math_train=/path/to/file.parquet,...))",
    ]


def test_a_gpu_memory_that_is_not_a_number_is_refused_by_the_recipe(python_recorder, tmp_path):
    result = bash(
        [REPO / "recipes" / "qwen3-4b" / "nsr.sh"], python_recorder, tmp_path, DRY_RUN="1", GPU_MEMORY_GB="80GB"
    )
    assert result.returncode == 2 and "GPU_MEMORY_GB must be the memory of one GPU in GB, a number" in result.stderr
    assert not python_recorder[1].exists()
