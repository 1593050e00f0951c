"""Every command a user starts answers --help / -h with its usage and each setting's default, and runs
nothing (no file written, no interpreter started by a launcher, no model loaded); a launcher's missing
required variable or stray argument is one line naming it (exit 2)."""

import os
import re
import subprocess
import sys
import time

import pytest
from conftest import REPO

BENCHMARKS = REPO / "benchmarks"
SHELL_SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.sh"))
PYTHON_SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))
EVAL = [sys.executable, "-m", "openrlhf_nsr.eval"]
# what a user may have set; each test sets what it needs
USER_VARS = ("CHECKPOINT_ROOT", "OUT_DIR", "DATA_DIR", "MODEL_BASE", "BACKEND", "EVAL_EXTRA_ARGS", "DRY_RUN",
             "PYTHON", "MODEL_NAME", "RUNS", "EVAL_FLAGS", "PAPER", "OUT_NAME")  # fmt: skip
# set by reproduce_*.sh before they source eval_checkpoints.sh: not the user's to set there
SET_BY_THE_REPRODUCE_SCRIPTS = {"MODEL_NAME", "MODEL_BASE_DEFAULT", "RUNS", "EVAL_FLAGS", "PAPER", "OUT_NAME"}
REQUIRED = {"MODEL_NAME": "qwen3-4b", "MODEL_BASE": "Qwen/Qwen3-4B", "RUNS": "psr nsr", "EVAL_FLAGS": "--n 2"}


def clean_env(**env) -> dict:
    return {**{k: v for k, v in os.environ.items() if k not in USER_VARS}, **env}


@pytest.fixture
def recorder(tmp_path):
    """A stand-in PYTHON that records each call: a launcher asked for --help must start none."""
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    fake.chmod(0o755)
    return fake, calls


def run_in_empty_dir(command, tmp_path, env, timeout):
    """Run ``command`` in an empty folder; returns (result, seconds) after checking it wrote nothing there."""
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    seconds = time.monotonic() - start
    assert list(cwd.iterdir()) == [], command
    return result, seconds


def option_blocks(text: str) -> dict:
    """{first option string or positional name: its help, on one line} of an argparse help."""
    blocks, name, in_section = {}, None, False
    for line in text.splitlines():
        if re.match(r"\S.*:$", line):  # "options:", "positional arguments:"
            in_section, name = True, None
        elif not line.strip() or not line.startswith(" "):
            in_section, name = False, None
        elif in_section and re.match(r"  \S", line):
            name = line.split()[0].rstrip(",")
            blocks[name] = " ".join(line.split())
        elif in_section and name:
            blocks[name] += " " + " ".join(line.split())
    return blocks


def assert_each_default_once(help_text: str, at_least: int):
    """Every option but -h says its default exactly once, as "(default ...)", or that it is required."""
    blocks = {name: text for name, text in option_blocks(help_text).items() if name != "-h"}
    assert len(blocks) >= at_least, blocks
    for name, text in blocks.items():
        assert text.count("(default") == 1 or (text.count("(default") == 0 and "(required" in text), text
    assert "default: None" not in help_text and "(default: False)" not in help_text


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_a_launcher_prints_its_usage_and_the_variables_it_reads_and_runs_nothing(script, flag, tmp_path, recorder):
    fake, calls = recorder
    out = tmp_path / "out"
    env = clean_env(PYTHON=str(fake), OUT_DIR=str(out), CHECKPOINT_ROOT=str(tmp_path / "ckpts"))
    result, seconds = run_in_empty_dir(["bash", str(BENCHMARKS / script), flag], tmp_path, env, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.startswith(f"usage: [VARIABLE=value ...] bash benchmarks/{script} [-h | --help]")
    assert not calls.exists() and not out.exists() and seconds < 20
    # each variable the launcher reads (eval_checkpoints.sh and recipes/paths.sh) is listed with its default
    sources = (BENCHMARKS / "eval_checkpoints.sh").read_text() + (REPO / "recipes" / "paths.sh").read_text()
    read = set(re.findall(r"\$\{([A-Z][A-Z_]*):[-+]", sources)) | set(re.findall(r"^need ([A-Z_]+)", sources, re.M))
    read -= {"MODEL_BASE_DEFAULT"}
    if script != "eval_checkpoints.sh":
        read -= SET_BY_THE_REPRODUCE_SCRIPTS
    entries = {}
    for line in result.stdout.splitlines():
        if m := re.match(r"  ([A-Z][A-Z_]+)\s", line):
            name = m.group(1)
            entries[name] = line
        elif line.startswith("    ") and entries:  # a continuation line (the header's examples come first)
            entries[name] += " " + line.strip()
    assert set(entries) == read, (sorted(entries), sorted(read))
    for name, text in entries.items():
        required = script == "eval_checkpoints.sh" and name in REQUIRED
        assert text.count("(default") == (0 if required else 1), text
    assert "docs/paper.md §3" in result.stdout or script == "eval_checkpoints.sh"
    if script == "reproduce_table1.sh":
        assert (
            "MODEL_BASE       the base model: a hub id or a local path (default Qwen/Qwen2.5-Math-7B)" in result.stdout
        )
        assert f"(default {REPO}/runs/table1)" in result.stdout and "(default vllm)" in result.stdout


@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_a_launcher_refuses_an_argument_in_one_line(script, tmp_path, recorder):
    fake, calls = recorder
    env = clean_env(PYTHON=str(fake), OUT_DIR=str(tmp_path / "out"), **REQUIRED)
    result, _ = run_in_empty_dir(["bash", str(BENCHMARKS / script), "--dry-run"], tmp_path, env, timeout=60)
    assert result.returncode == 2 and not calls.exists()
    assert result.stderr.splitlines() == [
        f"benchmarks/{script}: unexpected argument '--dry-run': it takes none, its settings are environment "
        f"variables (bash benchmarks/{script} --help)"
    ]


@pytest.mark.parametrize("missing", REQUIRED)
def test_eval_checkpoints_names_a_missing_required_variable_in_one_line(missing, tmp_path, recorder):
    fake, calls = recorder
    env = clean_env(PYTHON=str(fake), OUT_DIR=str(tmp_path / "out"), DRY_RUN="1",
                    **{k: v for k, v in REQUIRED.items() if k != missing})  # fmt: skip
    result, _ = run_in_empty_dir(["bash", str(BENCHMARKS / "eval_checkpoints.sh")], tmp_path, env, timeout=60)
    assert result.returncode == 2 and result.stdout == "" and not calls.exists()
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"benchmarks/eval_checkpoints.sh: {missing} is not set: set it to ")
    assert f"{missing}=" in lines[0] and lines[0].endswith("(bash benchmarks/eval_checkpoints.sh --help)")


def test_eval_checkpoints_runs_directly_from_the_environment(tmp_path, recorder):
    """The variables as strings (a reproduce_*.sh gives arrays): the plan of a dry run, the paper optional."""
    fake, _ = recorder
    root = tmp_path / "ckpts"
    (root / "qwen3-4b" / "nsr" / "final").mkdir(parents=True)
    env = clean_env(PYTHON=str(fake), CHECKPOINT_ROOT=str(root), DRY_RUN="1", BACKEND="hf", **REQUIRED)
    result, _ = run_in_empty_dir(["bash", str(BENCHMARKS / "eval_checkpoints.sh")], tmp_path, env, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    out = REPO / "runs" / "qwen3-4b"  # OUT_NAME's default: the model
    assert lines[0].endswith(
        f"--model Qwen/Qwen3-4B --datasets math,aime2025,amc23 --n 2 --backend hf --out {out}/base"
    )
    assert lines[1].startswith(f"# skip psr: no final model at {root}/qwen3-4b/psr/final")
    assert lines[2].endswith(f"--model {root}/qwen3-4b/nsr/final --datasets math,aime2025,amc23 --n 2 --backend hf "
                             f"--out {out}/nsr")  # fmt: skip
    assert (
        lines[3]
        == f"{fake} -m openrlhf_nsr.eval compare {out}/base {out}/nsr --labels base,nsr --out {out}/compare_passk.png"
    )
    bad = run_in_empty_dir(["bash", str(BENCHMARKS / "eval_checkpoints.sh")], tmp_path, {**env, "PAPER": "llama"}, 60)[
        0
    ]
    assert bad.returncode == 2 and "PAPER must be one of qwen2.5-math-7b qwen3-4b" in bad.stderr


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("script", PYTHON_SCRIPTS)
def test_a_python_benchmark_states_each_options_default_and_runs_nothing(script, flag, tmp_path):
    result, seconds = run_in_empty_dir([sys.executable, str(BENCHMARKS / script), flag], tmp_path, clean_env(), 120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"usage: {script}") and seconds < 60  # imports only: nothing measured
    assert_each_default_once(result.stdout, at_least=4)


@pytest.mark.parametrize("subcommand", [[], ["compare"]])
def test_the_eval_cli_states_each_options_default_and_loads_nothing(subcommand, tmp_path):
    env = clean_env(HF_HUB_OFFLINE="1")
    result, seconds = run_in_empty_dir([*EVAL, *subcommand, "--help"], tmp_path, env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage: python -m openrlhf_nsr.eval") and seconds < 60
    assert_each_default_once(result.stdout, at_least=4 if subcommand else 18)
    blocks = option_blocks(result.stdout)
    if subcommand:
        assert "(default compare_passk.png)" in blocks["--out"] and "(default: none)" in blocks["--paper"]
        assert "(required" in blocks["RUN_DIR"]
    else:  # the compare subcommand is named in the usage and the description, and the protocol's defaults
        assert "python -m openrlhf_nsr.eval compare RUN_DIR [RUN_DIR ...]" in result.stdout
        assert "Subcommand compare:" in " ".join(result.stdout.split())
        assert "docs/paper.md §3" in " ".join(result.stdout.split())
        for option, default in (("--n", "256"), ("--temperature", "0.6"), ("--top-p", "0.95"),
                                ("--max-tokens", "4096"), ("--seed", "0"), ("--batch-size", "16")):  # fmt: skip
            assert f"(default {default}" in blocks[option], blocks[option]


@pytest.mark.parametrize(
    "module,options", [("prepare_data", 6), ("memory", 3), ("mini", 12), ("reward", 0), ("reward_worker", 0)]
)
def test_the_packages_other_commands_state_each_options_default_and_do_nothing(module, options, tmp_path):
    result, seconds = run_in_empty_dir(
        [sys.executable, "-m", f"openrlhf_nsr.{module}", "--help"], tmp_path, clean_env(HF_HUB_OFFLINE="1"), 120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"usage: python -m openrlhf_nsr.{module}") and seconds < 60
    assert_each_default_once(result.stdout, at_least=options)


def test_the_citations_name_the_document_the_repo_ships():
    """docs/paper.md's numbered sections, never the "paper-spec" the repo does not carry."""
    files = [p for p in BENCHMARKS.iterdir() if p.suffix in (".sh", ".py", ".md")]
    files += [REPO / "openrlhf_nsr" / "eval.py", REPO / "openrlhf_nsr" / "generation.py"]
    sections = re.findall(r"^## (\d+)\. ", (REPO / "docs" / "paper.md").read_text(), re.M)
    for path in files:
        text = path.read_text()
        assert "paper-spec" not in text, path
        for section in re.findall(r"docs/paper\.md §(\d+)", text):
            assert section in sections, (path, section)
