"""The benchmark scripts run as documented (tiny sizes here: their figures are for their own runs)."""

import re
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
