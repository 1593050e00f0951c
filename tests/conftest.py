"""Test setup: the real OpenRLHF 0.11.2 and vLLM 0.29.0 (its CPU build) on CPU, with flash-attn's
padding helpers as the one stub (gpu_stubs/: flash-attn has no CPU build).

The openrlhf wheel installs a top-level ``tests`` package into site-packages, so nothing here
imports ``tests.*``; helpers live in modules next to this file (this folder is on sys.path).
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GPU_STUBS = HERE / "gpu_stubs"
REPO = HERE.parent
# The paper's evaluation sets and a slice of its training set, carried by the repo (data/paper/README.md)
PAPER_DATA = HERE / "data" / "paper"

sys.path.insert(0, str(GPU_STUBS))
# Subprocesses and Ray workers started by the tests find the stub and this checkout the same way.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(GPU_STUBS), str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "e2e: OpenRLHF's real training loop on CPU (tests/e2e, about 30 minutes); -m 'not e2e' skips"
    )


# Where the time of a session went: the e2e tests (their first one makes the runs) and the rest, which is
# what `pytest -m "not e2e"` takes; printed at the end of every session that ran tests.
_SPENT = {"e2e": 0.0, "other": 0.0}


def pytest_runtest_logreport(report):
    _SPENT["e2e" if "e2e" in report.keywords else "other"] += report.duration


def pytest_terminal_summary(terminalreporter):
    if any(_SPENT.values()):
        what = {"e2e": "e2e tests ({} min; the runs are made in the first one's setup)",
                "other": "the other tests ({} min, what -m 'not e2e' runs)"}  # fmt: skip
        spent = [what[kind].format(f"{seconds / 60:.1f}") for kind, seconds in _SPENT.items() if seconds]
        terminalreporter.write_line("time spent: " + ", ".join(spent))


def terminal_lines(config):
    """A function that writes a line on the terminal now, past pytest's output capture (progress of a
    long fixture); the first line starts on a line of its own."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    started = []

    def say(line: str) -> None:
        with capture.global_and_fixture_disabled():
            terminal.write(("" if started else "\n") + line + "\n")
        started.append(True)

    return say
