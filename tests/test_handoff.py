"""The hand-off from training to the paper's tables: a recipe writes its final model exactly where
benchmarks/reproduce_*.sh evaluate it (recipes/paths.sh), whatever directory either is launched from,
and a failed evaluation fails the launcher, naming its log."""

import os
import shlex
import shutil
import subprocess
import sys

import pytest
from conftest import PAPER_DATA, REPO
from recipe_runs import RECIPES, dry_runs, prepared_data_dir
from tiny_model import build_tiny_model

from openrlhf_nsr import data
from openrlhf_nsr import eval as evaluation

RUN_NAMES = subprocess.run(["bash", "-c", 'source recipes/paths.sh && echo "${RUN_NAMES[@]}"'], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
# benchmark script: the recipes' <model> it evaluates
BENCHMARKS = {"reproduce_table1.sh": "qwen2.5-math-7b", "reproduce_figure3.sh": "qwen3-4b"}
TEMPLATES = {"qwen2.5-math-7b": "qwen", "qwen3-4b": "qwen3_no_thinking", "llama3.1-8b-instruct": "llama"}
# what a user may have set: each test gives these explicitly, or relies on their defaults
USER_VARS = ("CHECKPOINT_ROOT", "OUTPUT_DIR", "DATA_DIR", "OUT_DIR", "MODEL_BASE", "MODEL_PATH", "BACKEND",
             "EVAL_EXTRA_ARGS", "CUDA_VISIBLE_DEVICES", "DRY_RUN", "PYTHON")  # fmt: skip
UNSET = {k: None for k in USER_VARS if k not in ("DRY_RUN", "PYTHON")}


def clean_env(**env) -> dict:
    return {**{k: v for k, v in os.environ.items() if k not in USER_VARS}, **env}


def benchmark(script: str, cwd, **env) -> subprocess.CompletedProcess:
    env.setdefault("PYTHON", sys.executable)
    cmd = ["bash", str(REPO / "benchmarks" / script)]
    return subprocess.run(cmd, capture_output=True, text=True, env=clean_env(**env), cwd=cwd, timeout=300)


def planned_evaluations(script: str, cwd, **env) -> dict:
    """{run: (model evaluated, --out, the whole command)} and the compare command of a DRY_RUN=1 benchmark."""
    result = benchmark(script, cwd, DRY_RUN="1", **env)
    assert result.returncode == 0, result.stderr
    evaluations, compare = {}, None
    for line in result.stdout.splitlines():
        words = shlex.split(line)
        if words[words.index("-m") + 2 : words.index("-m") + 3] == ["compare"]:
            compare = words
        else:
            out = words[words.index("--out") + 1]
            evaluations[os.path.basename(out)] = (words[words.index("--model") + 1], out, words)
    return evaluations, compare


def flag(words, name):
    return words[words.index(name) + 1]


def recipe_command(recipe, cwd, fake_python, **env) -> list:
    """The OpenRLHF command line a recipe runs (DRY_RUN=1, PYTHON a stand-in that prints its arguments)."""
    result = subprocess.run(["bash", str(recipe)], capture_output=True, text=True, cwd=cwd,
                            env=clean_env(DRY_RUN="1", PYTHON=str(fake_python), **env), timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.fixture(scope="module", autouse=True)
def default_data_dirs():
    """The recipes' default DATA_DIR (<repo>/data/<template>) holding train.jsonl and eval.jsonl, as after a
    user's first run (a dry run checks the data it will read): made where missing, removed afterwards."""
    made = []
    for template in TEMPLATES.values():
        folder = REPO / "data" / template
        for name in ("train.jsonl", "eval.jsonl"):
            if not (folder / name).exists():
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copy(prepared_data_dir(template) / name, folder / name)
                made.append(folder / name)
    yield
    for path in made:
        path.unlink(missing_ok=True)
    for template in TEMPLATES.values():
        for folder in (REPO / "data" / template, REPO / "data"):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


@pytest.fixture(scope="module")
def launch_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("elsewhere")  # not the repo: paths must not depend on it


@pytest.fixture(scope="module")
def print_argv(tmp_path_factory):
    fake = tmp_path_factory.mktemp("bin") / "print_argv"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    return fake


@pytest.fixture(scope="module")
def recipe_commands(launch_dir, print_argv):
    return {recipe: recipe_command(recipe, launch_dir, print_argv) for recipe in RECIPES}


@pytest.mark.parametrize("script", BENCHMARKS)
def test_a_benchmark_evaluates_the_folder_each_recipe_writes_its_final_model_to(script, launch_dir, recipe_commands):
    model = BENCHMARKS[script]
    evaluations, compare = planned_evaluations(script, launch_dir)
    runs = [name for name in evaluations if name != "base"]
    assert runs and set(runs) <= set(RUN_NAMES), runs
    for run in runs:
        recipe = REPO / "recipes" / model / f"{run}.sh"
        assert recipe in RECIPES, f"{script} evaluates {run}, which no recipe trains"
        final = str(REPO / "checkpoints" / model / run / "final")
        assert flag(recipe_commands[recipe], "--ckpt.output_dir") == evaluations[run][0] == final
        assert evaluations[run][1] == str(REPO / "runs" / script[len("reproduce_") : -len(".sh")] / run)
    # compare gets the run names as labels, and each names one of the paper's methods (w_reinforce: W-REINFORCE)
    # (a run with no final model yet is a "# skip" line of the dry run, and compare leaves it out)
    labels = flag(compare, "--labels").split(",")
    assert labels == [run for run, (_, _, words) in evaluations.items() if words[0] != "#"]
    assert flag(compare, "--paper") == model
    paper = evaluation.load_paper(model)
    assert all(evaluation._paper_method(label, paper) for label in labels), (labels, list(paper))


def test_every_recipe_writes_to_its_run_folder_from_any_directory(recipe_commands):
    assert {(r.parent.name, r.stem) for r in recipe_commands} == {(m, r) for m in TEMPLATES for r in RUN_NAMES}
    for recipe, words in recipe_commands.items():
        model, run = recipe.parent.name, recipe.stem
        assert flag(words, "--ckpt.output_dir") == str(REPO / "checkpoints" / model / run / "final")
        assert flag(words, "--ckpt.path") == str(REPO / "checkpoints" / model / run / "ckpt")
        assert flag(words, "--data.prompt_dataset") == str(REPO / "data" / TEMPLATES[model] / "train.jsonl")
        assert flag(words, "--eval.dataset") == str(REPO / "data" / TEMPLATES[model] / "eval.jsonl")


def test_openrlhfs_parser_keeps_the_final_model_folder_the_benchmark_evaluates(launch_dir):
    """OpenRLHF's real parser (DRY_RUN=1 with the real PYTHON): its resolved ckpt.output_dir is the path the
    benchmark evaluates. One run per benchmark (test_recipes.py parses every recipe; one is ~8 s)."""
    picks = {"reproduce_table1.sh": "w_reinforce", "reproduce_figure3.sh": "nsr"}
    recipes = {script: REPO / "recipes" / BENCHMARKS[script] / f"{run}.sh" for script, run in picks.items()}
    configs = dry_runs(recipes.values(), cwd=launch_dir, **UNSET)
    for script, run in picks.items():
        config = configs[recipes[script]]
        run_folder = REPO / "checkpoints" / BENCHMARKS[script] / run
        evaluated = planned_evaluations(script, launch_dir)[0][run][0]
        assert config["ckpt"]["output_dir"] == evaluated == str(run_folder / "final")
        assert config["ckpt"]["path"] == str(run_folder / "ckpt")


def test_relative_paths_are_taken_against_the_directory_the_user_launches_from(tmp_path, print_argv):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for recipe in RECIPES[:: len(RUN_NAMES)] + [REPO / "recipes" / "qwen3-4b" / "psr.sh"]:
        model, run = recipe.parent.name, recipe.stem
        if not (cwd / "d").exists():
            shutil.copytree(prepared_data_dir(TEMPLATES[model]), cwd / "d")
        words = recipe_command(recipe, cwd, print_argv, CHECKPOINT_ROOT="ckpts", DATA_DIR="d")
        assert flag(words, "--ckpt.output_dir") == str(cwd / "ckpts" / model / run / "final")
        assert flag(words, "--data.prompt_dataset") == str(cwd / "d" / "train.jsonl")
    words = recipe_command(RECIPES[0], cwd, print_argv, OUTPUT_DIR="../mine", MODEL_PATH="../base")
    assert flag(words, "--ckpt.output_dir") == str(tmp_path / "mine" / "final")
    assert flag(words, "--actor.model_name_or_path") == str(tmp_path / "base")  # starts with ..: a path
    words = recipe_command(RECIPES[0], cwd, print_argv, MODEL_PATH="Qwen/Qwen2.5-Math-7B")
    assert flag(words, "--actor.model_name_or_path") == "Qwen/Qwen2.5-Math-7B"  # a hub id, as is
    # the benchmarks take a relative CHECKPOINT_ROOT / OUT_DIR against the same directory, though they cd
    for script, model in BENCHMARKS.items():
        evaluations, _ = planned_evaluations(script, cwd, CHECKPOINT_ROOT="ckpts", OUT_DIR="out")
        for run, (evaluated, out, _) in evaluations.items():
            if run != "base":
                assert evaluated == str(cwd / "ckpts" / model / run / "final")
            assert out == str(cwd / "out" / run)


FAKE_EVAL = """#!/bin/sh
# a stand-in for python: records each call, fails (exit 3) the evaluation of nsr
echo "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-unset} $*" >> "$CALLS"
case "$*" in *"/nsr/final "*) echo "nsr: not a model" >&2; exit 3 ;; esac
sleep 0.3
"""


@pytest.mark.parametrize("backend", ["vllm", "hf"])
def test_a_failed_evaluation_fails_the_launcher_and_names_its_log(tmp_path, backend):
    fake, calls, out, root = tmp_path / "python", tmp_path / "calls", tmp_path / "out", tmp_path / "ckpts"
    fake.write_text(FAKE_EVAL)
    fake.chmod(0o755)
    for run in ("grpo", "psr", "nsr", "w_reinforce"):  # no ppo
        (root / "qwen2.5-math-7b" / run / "final").mkdir(parents=True)
    result = benchmark("reproduce_table1.sh", tmp_path, PYTHON=str(fake), CALLS=str(calls), BACKEND=backend,
                       CHECKPOINT_ROOT=str(root), OUT_DIR=str(out))  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"evaluation of nsr failed (exit 3): see {out}/nsr.log" in result.stderr
    assert "nsr: not a model" in (out / "nsr.log").read_text()
    assert "skip ppo: no final model" in result.stderr and "bash recipes/qwen2.5-math-7b/ppo.sh" in result.stderr
    assert result.stderr.count("failed (exit") == 1
    lines = calls.read_text().splitlines()
    assert not any(" compare " in line for line in lines)  # skipped
    evaluated = [flag(line.split(), "--out") for line in lines]
    assert sorted(evaluated) == sorted(str(out / r) for r in ("base", "grpo", "psr", "nsr", "w_reinforce"))
    devices = {line.split()[0] for line in lines}  # vllm: one GPU each; hf: none assigned
    assert devices == (
        {"CUDA_VISIBLE_DEVICES=unset"} if backend == "hf" else {f"CUDA_VISIBLE_DEVICES={i}" for i in range(5)}
    )


def test_a_trained_run_is_evaluated_and_compared_with_the_paper_on_cpu(tmp_path):
    """BACKEND=hf, a tiny model as base and as the final model of w_reinforce, relative paths."""
    _, problems = data.load_problems(f"math={PAPER_DATA / 'math_test.parquet'}")
    tiny = build_tiny_model(tmp_path / "tiny", [p.problem for p in problems[:20]])
    shutil.copytree(tiny, tmp_path / "ckpts" / "qwen2.5-math-7b" / "w_reinforce" / "final")
    result = benchmark("reproduce_table1.sh", tmp_path, BACKEND="hf", MODEL_BASE="tiny", CHECKPOINT_ROOT="ckpts",
                       OUT_DIR="out", DATA_DIR=str(PAPER_DATA),
                       EVAL_EXTRA_ARGS="--max-problems 2 --n 2 --max-tokens 8")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train it: bash recipes/qwen2.5-math-7b/psr.sh" in result.stderr
    assert "base - paper base" in result.stdout and "w_reinforce - paper w-reinforce" in result.stdout
    assert (tmp_path / "out" / "compare_passk.png").stat().st_size > 5000
    for run in ("base", "w_reinforce"):
        assert (tmp_path / "out" / run / "metrics.json").exists() and (tmp_path / "out" / f"{run}.log").exists()
