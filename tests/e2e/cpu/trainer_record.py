"""Test evidence from the trainer process, and a preemption: installed with the CPU layer where
``OPENRLHF_NSR_ENGINE_LOG_DIR`` is set (sitecustomize.py).

- Each rollout batch OpenRLHF trains appends ``{"step", "prompts"}`` to ``trainer-steps.jsonl`` in
  that folder (``BasePPOTrainer.train_step``, before the plugin or OpenRLHF touch the batch): which
  prompts each step trained on, in rollout order.
- With ``OPENRLHF_NSR_E2E_PREEMPT_AFTER_STEP=N`` the trainer process dies (``os._exit``) right after
  OpenRLHF's ``save_logs_and_checkpoints`` of step N has returned, i.e. after that step's checkpoint
  is on disk, as a preempted job would; the run is then resumed with ``--ckpt.load_enable``.

Both wrap the methods of ``BasePPOTrainer`` before openrlhf_nsr does (the CPU layer's import hook
patches first), so the plugin's wrappers run around these.
"""

from __future__ import annotations

import functools
import json
import os

LOG_DIR_ENV = "OPENRLHF_NSR_ENGINE_LOG_DIR"
PREEMPT_ENV = "OPENRLHF_NSR_E2E_PREEMPT_AFTER_STEP"
PREEMPTED_EXIT = 75


def _patch_trainer(module) -> None:
    cls = module.BasePPOTrainer
    step_original, save_original = cls.train_step, cls.save_logs_and_checkpoints
    log_path = os.path.join(os.environ[LOG_DIR_ENV], "trainer-steps.jsonl")

    @functools.wraps(step_original)
    def train_step(self, rollout_samples, global_step):
        prompts = [prompt for sample in rollout_samples for prompt in sample.prompts]
        with open(log_path, "a") as log:
            log.write(json.dumps({"step": global_step + 1, "prompts": prompts}) + "\n")
        return step_original(self, rollout_samples, global_step)

    @functools.wraps(save_original)
    def save_logs_and_checkpoints(self, global_step, logs_dict=None, client_states=None):
        result = save_original(self, global_step, logs_dict, client_states)
        if os.environ.get(PREEMPT_ENV) and global_step == int(os.environ[PREEMPT_ENV]):
            print(f"[e2e] preempted after step {global_step}'s checkpoint", flush=True)
            os._exit(PREEMPTED_EXIT)
        return result

    cls.train_step = train_step
    cls.save_logs_and_checkpoints = save_logs_and_checkpoints


PATCHES = {"openrlhf.trainer.ppo_trainer": _patch_trainer}
