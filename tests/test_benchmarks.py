"""The benchmark scripts run as documented (tiny sizes here: their figures are for their own runs)."""

import subprocess
import sys

from conftest import REPO


def test_reward_throughput_runs_and_finds_the_same_verdicts_as_plain_math_verify():
    command = [sys.executable, str(REPO / "benchmarks" / "reward_throughput.py"), "--problems", "5", "--samples", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd="/")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "throughput ratio ours / baseline" in result.stdout
    assert "verdicts that differ (timeouts excepted): 0;" in result.stdout
