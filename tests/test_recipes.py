"""Every recipe parses with OpenRLHF 0.11.2's real parser and the plugin's checks (DRY_RUN=1)."""

import json
import subprocess
import sys

import pytest
from conftest import REPO
from recipe_runs import RECIPES, dry_run

PAPER_OBJECTIVES = {"psr", "nsr", "w_reinforce", "reinforce"}


def test_every_model_has_every_run():
    runs = {(p.parent.name, p.stem) for p in RECIPES}
    models = {"qwen2.5-math-7b", "qwen3-4b", "llama3.1-8b-instruct"}
    assert runs == {(m, r) for m in models for r in PAPER_OBJECTIVES | {"grpo", "ppo"}}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recipe_is_accepted_by_openrlhfs_parser_with_the_papers_settings(recipe):
    config = dry_run(recipe)
    run, adv, kl = recipe.stem, config["algo"]["advantage"], config["algo"]["kl"]
    # paper §2, for every run
    assert config["rollout"]["batch_size"] == 1024 and config["rollout"]["n_samples_per_prompt"] == 8
    assert config["train"]["batch_size"] == 2048 and config["rollout"]["temperature"] == 1.0
    assert config["actor"]["adam"]["lr"] == 1e-6 and config["actor"]["eps_clip"] == 0.2
    assert config["eval"]["steps"] == 7 and config["ckpt"]["save_steps"] == 7
    assert config["reward"]["remote_url"][0].endswith("openrlhf_nsr/reward.py")
    assert config["train"]["colocate_all"] and config["vllm"]["num_engines"] * config["vllm"]["tensor_parallel_size"] == 8
    expected = {
        "psr": ("psr", None, 0.0), "nsr": ("nsr", None, 0.0), "w_reinforce": ("w_reinforce", 0.1, 0.0),
        "reinforce": ("w_reinforce", 1.0, 0.0), "grpo": ("group_norm", None, 1e-3), "ppo": ("gae", None, 1e-3),
    }[run]  # fmt: skip
    assert (adv["estimator"], adv["w_reinforce_lambda"], kl["init_coef"]) == expected
    assert kl["use_loss"] == (run == "grpo") and (config["critic"]["model_name_or_path"] is not None) == (run == "ppo")
    template_tokens = {"qwen2.5-math-7b": (4096, 3072), "qwen3-4b": (32768, 31744), "llama3.1-8b-instruct": (4096, 3072)}
    assert (config["data"]["max_len"], config["rollout"]["max_new_tokens"]) == template_tokens[recipe.parent.name]


def test_environment_variables_adapt_a_recipe_without_editing_it(tmp_path):
    config = dry_run(
        REPO / "recipes" / "qwen2.5-math-7b" / "nsr.sh",
        MODEL_PATH="/models/my-qwen", DATA_DIR=str(tmp_path / "data"), OUTPUT_DIR=str(tmp_path / "out"),
        NUM_NODES="2", GPUS_PER_NODE="4", EXTRA_ARGS="--train.seed 7",
    )  # fmt: skip
    assert config["actor"]["model_name_or_path"] == "/models/my-qwen"
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
    assert rows[0]["prompt"].startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert rows[0]["prompt"].endswith("within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n")
    assert {"prompt", "answer", "datasource"} <= set(rows[0]) and rows[0]["datasource"] == "math_train"
    matrices = [r for r in rows if "pmatrix" in r["answer"]]
    assert matrices and all("\\\\" in r["answer"] for r in matrices)  # row separators intact (labels from solutions)
