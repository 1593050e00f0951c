"""Runs at start-up of every Python process of an end-to-end run (this folder is on PYTHONPATH):
installs the test-only CPU layer (openrlhf_cpu.py) where OPENRLHF_NSR_CPU_COMPAT=1, with the
engine's record of its weights and requests (engine_record.py) and the trainer's record of its
steps' prompts, with its simulated preemption (trainer_record.py), where OPENRLHF_NSR_ENGINE_LOG_DIR
is set."""

import os

if os.environ.get("OPENRLHF_NSR_CPU_COMPAT") == "1":
    import openrlhf_cpu

    extra = {}
    if os.environ.get("OPENRLHF_NSR_ENGINE_LOG_DIR"):
        import engine_record
        import trainer_record

        extra = {**engine_record.PATCHES, **trainer_record.PATCHES}
    openrlhf_cpu.install(extra)
