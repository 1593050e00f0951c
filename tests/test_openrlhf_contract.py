"""The adapter's contract with OpenRLHF (openrlhf_contract.py): every name it relies on, checked."""

import importlib
import types

import pytest

from openrlhf_nsr import openrlhf_contract, openrlhf_patch, train_ppo_ray
from openrlhf_nsr.openrlhf_contract import CONTRACT, ContractError


@pytest.mark.parametrize("need", CONTRACT, ids=lambda n: f"{n.module}.{n.name}")
def test_the_installed_openrlhf_has_every_name_the_adapter_relies_on(need):
    module = importlib.import_module(need.module)
    assert openrlhf_contract._resolve(module, need.name) is not None
    assert not [p for p in openrlhf_contract.problems(module) if p.startswith(f"{need.module}.{need.name} ")]


def test_every_patched_module_is_covered_by_the_contract():
    assert set(openrlhf_patch._PATCHES) <= set(openrlhf_contract.modules())


def _openrlhf_parser():
    """OpenRLHF's own train_ppo_ray parser (built inside its ``__main__`` block), as the wrapper meets it."""
    import argparse
    import runpy
    import sys

    class Built(Exception):
        pass

    def capture(self, args=None, namespace=None):
        raise Built(self)

    original, argv = argparse.ArgumentParser.parse_args, sys.argv
    argparse.ArgumentParser.parse_args, sys.argv = capture, [train_ppo_ray.OPENRLHF_CLI]
    try:
        runpy.run_module(train_ppo_ray.OPENRLHF_CLI, run_name="__main__")
    except Built as built:
        return built.args[0]
    finally:
        argparse.ArgumentParser.parse_args, sys.argv = original, argv
    raise AssertionError("OpenRLHF's CLI never parsed its arguments")


def test_the_parser_has_every_flag_the_wrapper_reads_with_the_default_its_early_check_assumes():
    actions = {a.dest: a for a in _openrlhf_parser()._actions}
    openrlhf_contract.check_parser(actions)  # the installed OpenRLHF: every flag, every default as assumed
    with pytest.raises(ContractError, match="--algo.advantage.gamma"):
        openrlhf_contract.check_parser({d: a for d, a in actions.items() if d != "algo.advantage.gamma"})
    moved = dict(actions, **{"rollout.n_samples_per_prompt": types.SimpleNamespace(default=4)})
    with pytest.raises(ContractError, match="--rollout.n_samples_per_prompt 4 .expected 1."):
        openrlhf_contract.check_parser(moved)


def _moved(module_name, **changes):
    """A copy of an OpenRLHF module where some names moved (deleted) or changed."""
    real = importlib.import_module(module_name)
    fake = types.ModuleType(module_name)
    unpatched = {k: v for k, v in vars(real).items() if k not in changes and k != openrlhf_patch._PATCHED_FLAG}
    fake.__dict__.update(unpatched)
    fake.__dict__.update({k: v for k, v in changes.items() if v is not None})
    return fake


def test_a_release_that_moved_a_name_fails_at_patch_time_naming_it():
    fake = _moved(openrlhf_contract.ACTOR, iter_grad_accum_global_norm=None)
    with pytest.raises(ContractError) as err:
        openrlhf_patch._patch_module(fake)
    message = str(err.value)
    assert "openrlhf.trainer.ray.ppo_actor.iter_grad_accum_global_norm is missing" in message
    assert "pip install 'openrlhf[vllm]==0.11.2'" in message
    assert not getattr(fake, openrlhf_patch._PATCHED_FLAG, False)  # nothing half-applied


def test_a_changed_signature_or_dict_key_is_named():
    def training_step(self, experience, kl_ctl, loss_batch_info=None):  # `step` dropped
        return {"metrics": {}, "weights": {}, "num_samples": 1}  # the token count key is gone

    real = importlib.import_module(openrlhf_contract.ACTOR)
    trainer = type("ActorPPOTrainer", (), {"ppo_train": real.ActorPPOTrainer.ppo_train, "training_step": training_step})
    found = openrlhf_contract.problems(_moved(openrlhf_contract.ACTOR, ActorPPOTrainer=trainer))
    assert any("training_step takes" in p and "'step'" in p for p in found), found
    assert any("training_step no longer uses num_action_tokens" in p for p in found), found


def test_the_wrapper_reports_a_broken_contract_as_a_usage_error(monkeypatch, capsys):
    def broken(module):
        raise ContractError("openrlhf.utils.config.hierarchize is missing")

    monkeypatch.setattr(openrlhf_contract, "check", broken)
    assert train_ppo_ray.main(["--help"]) == 2
    assert "hierarchize is missing" in capsys.readouterr().err
