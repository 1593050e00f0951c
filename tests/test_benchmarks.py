"""The benchmark scripts run as documented (tiny sizes here: their figures are for their own runs)."""

import os
import re
import shlex
import subprocess
import sys

import pytest
from conftest import REPO


def test_reward_throughput_runs_and_finds_the_same_verdicts_as_plain_math_verify():
    command = [sys.executable, str(REPO / "benchmarks" / "reward_throughput.py"), "--problems", "5", "--samples", "2,3"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd="/")
    assert result.returncode == 0, result.stderr[-3000:]  # 1: a verdict differs from plain math-verify
    rows = [
        line.split()
        for line in result.stdout.splitlines()
        if re.match(r"\s*[23] (baseline|math-verify|grade_batch|OpenRLHF)", line)
    ]
    assert [row[1] for row in rows] == [
        "baseline",
        "math-verify",
        "grade_batch",
        "grade_batch",
        "OpenRLHF",
        "OpenRLHF",
    ] * 2
    graders = [row for row in rows if row[1] in ("grade_batch", "OpenRLHF") and not any("bound" in t for t in row)]
    assert len(graders) == 4 and all(row[-2:] == ["0", "0"] for row in graders)  # verdicts that differ, timeouts
    assert re.fullmatch(
        r"reward throughput at 2 samples per problem: [\d.]+ times sequential math-verify, [\d.]+ times "
        r"math-verify as documented \(OpenRLHF's calling pattern: [\d.]+ times; with no grading at all: [\d.]+ "
        r"times\)",
        result.stdout.strip().splitlines()[-1],
    )


@pytest.mark.parametrize(
    "flags,layout", [([], "packing + dynamic batching"), (["--fixed-micro-batches"], "fixed micro-batches")]
)
def test_update_cost_runs_and_removal_puts_exactly_the_kept_samples_through_the_model(flags, layout):
    """Behaviour only (tiny model, one repeat): format, the 100%-kept agreement and the token counts, in the
    recipes' layout (packing, dynamic batching: the default) and with fixed micro-batches."""
    command = [sys.executable, str(REPO / "benchmarks" / "update_cost.py"), "--smoke", "--repeats", "1", *flags]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd="/")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    headline = rf"update cost with 25% of samples kept \({re.escape(layout)}\): \d+\.\d\d of the masked cost"
    assert re.fullmatch(headline, lines[-1]), lines[-1]
    assert "100% kept, masking vs removal update: agree:" in result.stdout
    assert "torch threads: 1 (set by --threads" in result.stdout
    assert "token accounting (removal = exactly the kept samples' tokens, masking = all): as expected" in lines
    rollout = re.search(r"rollout: (\d+) samples .*?, (\d+) tokens", result.stdout)
    total_samples, total_tokens = map(int, rollout.groups())
    numbers = r"\s*(\d+)%\s+(\d+)/(\d+)\s+(\d+) \|\s+(\d+)\s+(\d+) \|\s+(\d+)\s+(\d+) \|"
    row = re.compile(numbers + r"(?:\s+[\d.]+){3} \|(?:\s+[\d.]+){3}")  # then seconds and ratios: timings, unchecked
    rows = [m.groups() for m in map(row.fullmatch, lines) if m]
    assert [int(r[0]) for r in rows] == [100, 75, 50, 25, 15]
    previous = total_tokens + 1
    for percent, kept, total, kept_tokens, fwd_m, fwd_r, train_m, train_r in (map(int, r) for r in rows):
        assert total == total_samples and kept == max(1, round(percent / 100 * total))
        assert 0 < kept_tokens < previous and (kept_tokens == total_tokens) == (percent == 100)
        assert fwd_m == train_m == total_tokens  # masking: every sample through the model, twice
        assert fwd_r == train_r == kept_tokens  # removal: exactly the kept samples' tokens
        previous = kept_tokens


def test_a_dry_run_marks_the_runs_a_real_run_would_skip(tmp_path):
    """A run is evaluated when its recipe's final model folder exists (recipes/paths.sh: final_model); a dry
    run prints the others as comments naming the missing folder and the recipe, with no GPU, and compares
    what a real run would."""
    root, out = tmp_path / "ckpts", tmp_path / "out"
    (root / "qwen2.5-math-7b" / "nsr" / "final").mkdir(parents=True)  # trained
    (root / "qwen2.5-math-7b" / "psr" / "ckpt").mkdir(parents=True)  # started, no final model yet
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_BASE", "BACKEND", "EVAL_EXTRA_ARGS", "DATA_DIR")}
    env.update(DRY_RUN="1", CHECKPOINT_ROOT=str(root), OUT_DIR=str(out), PYTHON=sys.executable)
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "reproduce_table1.sh")], capture_output=True,
                            text=True, env=env, timeout=60)  # fmt: skip
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert not out.exists()
    lines = result.stdout.splitlines()
    skipped = {line.split()[2].rstrip(":"): line for line in lines if line.startswith("# skip ")}
    assert sorted(skipped) == ["grpo", "ppo", "psr", "w_reinforce"]
    final = root / "qwen2.5-math-7b" / "psr" / "final"
    assert skipped["psr"].startswith(
        f"# skip psr: no final model at {final} (train it: bash recipes/qwen2.5-math-7b/psr.sh)"
    )
    assert "CUDA_VISIBLE_DEVICES" not in skipped["psr"] and f"--out {out}/psr" in skipped["psr"]
    evaluations = [shlex.split(line) for line in lines if not line.startswith("#") and " compare " not in line]
    assert [(words[0], words[words.index("--model") + 1]) for words in evaluations] == [
        ("CUDA_VISIBLE_DEVICES=0", "Qwen/Qwen2.5-Math-7B"),
        ("CUDA_VISIBLE_DEVICES=1", str(root / "qwen2.5-math-7b" / "nsr" / "final")),
    ]
    compare = shlex.split(lines[-1])
    assert compare[compare.index("compare") + 1 : compare.index("--labels") + 2] == [
        str(out / "base"), str(out / "nsr"), "--labels", "base,nsr"
    ]  # fmt: skip

    real = subprocess.run(["bash", str(REPO / "benchmarks" / "reproduce_table1.sh")], capture_output=True, text=True,
                          env={**env, "DRY_RUN": "0", "PYTHON": "true"}, timeout=60)  # fmt: skip
    assert real.returncode == 0, real.stderr  # "true" stands in for every evaluation and the comparison
    assert sorted(line.split()[1].rstrip(":") for line in real.stderr.splitlines()) == sorted(skipped)
    assert all(f"# {line}; once trained: " in result.stdout for line in real.stderr.splitlines())
