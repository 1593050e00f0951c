"""openrlhf_nsr.apply(): idempotent, lazy (patches on import), pass-through for built-in estimators."""

import subprocess
import sys
from types import SimpleNamespace

import torch
from experience_builders import make_args, make_maker, make_rollout
from openrlhf.trainer.ppo_trainer import BasePPOTrainer
from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker
from openrlhf.trainer.ray import ppo_actor

import openrlhf_nsr


def test_apply_is_idempotent():
    before = RemoteExperienceMaker.compute_advantages_and_returns
    openrlhf_nsr.apply()
    openrlhf_nsr.apply()
    assert RemoteExperienceMaker.compute_advantages_and_returns is before
    assert before.__wrapped__.__code__ is not before.__code__  # wrapped exactly once


def test_apply_patches_modules_when_they_are_imported_and_imports_nothing_itself():
    code = (
        "import sys, openrlhf_nsr\n"
        "openrlhf_nsr.apply()\n"
        "assert not [m for m in sys.modules if m.startswith(('openrlhf.', 'deepspeed'))], 'eager import'\n"
        "from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker as M\n"
        "from openrlhf.trainer.ray.ppo_actor import ActorPPOTrainer as A\n"
        "assert hasattr(M.compute_advantages_and_returns, '__wrapped__')\n"
        "assert hasattr(A.training_step, '__wrapped__')\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_rollout_metrics_carry_the_figure_4_diagnostics_next_to_openrlhfs_own():
    args = make_args("nsr", 4)
    maker = make_maker(args)
    experiences = maker.compute_advantages_and_returns(make_rollout([1, 0, 1, 0, 1, 1, 1, 1]))
    trainer = BasePPOTrainer.__new__(BasePPOTrainer)
    trainer.experience_maker = maker
    stats = trainer._compute_rollout_stats(experiences)
    assert stats["rollout/reward_mean"] == 0.75  # OpenRLHF's own
    assert stats["rollout/correct_frac"] == 0.75
    assert stats["rollout/prompts_all_correct_frac"] == 0.5
    assert stats["rollout/prompts_none_correct_frac"] == 0.0
    assert stats["rollout/grad_samples_frac"] == 0.25
    assert "rollout/correct_frac" not in trainer._compute_rollout_stats(experiences)  # consumed once


def test_actor_side_wrappers_pass_builtin_estimators_through_unchanged():
    strategy = SimpleNamespace(args=make_args("group_norm", 4))
    masks = [torch.zeros(2, 3, dtype=torch.bool)] * 2  # an empty step: OpenRLHF's own 0 normaliser
    ours = list(ppo_actor.iter_grad_accum_global_norm(iter(masks), strategy, 2, lambda m: m))
    theirs = list(ppo_actor.iter_grad_accum_global_norm.__wrapped__(iter(masks), strategy, 2, lambda m: m))
    for (_, a), (_, b) in zip(ours, theirs):
        assert a["batch_num_tokens"].item() == b["batch_num_tokens"].item() == 0.0
    info = ppo_actor.get_loss_batch_info(strategy, torch.zeros(2, 3))
    assert info["batch_num_tokens"].item() == 0.0
    nsr = SimpleNamespace(args=make_args("nsr", 4))
    assert ppo_actor.get_loss_batch_info(nsr, torch.zeros(2, 3))["batch_num_tokens"].item() == 1.0
