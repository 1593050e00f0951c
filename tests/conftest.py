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
        "markers", "e2e: OpenRLHF's real training loop on CPU (tests/e2e, about 25 minutes); -m 'not e2e' skips"
    )
