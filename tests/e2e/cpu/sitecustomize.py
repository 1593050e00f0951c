"""Runs at start-up of every Python process of an end-to-end run (this folder is on PYTHONPATH):
installs the test-only CPU layer (openrlhf_cpu.py) where OPENRLHF_NSR_CPU_COMPAT=1."""

import os

if os.environ.get("OPENRLHF_NSR_CPU_COMPAT") == "1":
    import openrlhf_cpu

    openrlhf_cpu.install()
