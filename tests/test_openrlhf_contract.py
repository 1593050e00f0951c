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


def test_the_parser_has_every_flag_the_wrapper_reads():
    import argparse

    parser = argparse.ArgumentParser()
    for dest in openrlhf_contract.PARSER_DESTS:
        parser.add_argument("--" + dest)
    openrlhf_contract.check_parser({a.dest for a in parser._actions})
    with pytest.raises(ContractError, match="--algo.advantage.gamma"):
        openrlhf_contract.check_parser(set(openrlhf_contract.PARSER_DESTS) - {"algo.advantage.gamma"})


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
