"""Every OpenRLHF name the adapter relies on, in one place, checked before anything is patched.

OpenRLHF has no plugin API, so the adapter (openrlhf_patch.py, train_ppo_ray.py) depends on
names that OpenRLHF may move in any release, several of them private. Each module is checked
right before it is patched (the driver imports them all while it parses the command), so an
OpenRLHF release that moved one fails at start, naming what changed, instead of mid-run.
``tests/test_openrlhf_contract.py`` walks the whole list against the installed OpenRLHF.

A ``Need`` says where a name lives and what of it is used: the parameters passed to it (by
name, in order), the fields read or written on a dataclass, or the string keys of a dict it
returns or receives (found in its source: the keys are not otherwise visible).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from dataclasses import dataclass
from typing import List, Tuple

EXPERIENCE_MAKER = "openrlhf.trainer.ppo_utils.experience_maker"
TRAINER = "openrlhf.trainer.ppo_trainer"
TRAINER_ASYNC = "openrlhf.trainer.ppo_trainer_async"
# Used by the patched modules without being patched: checked with the module that uses them.
DEPENDENCIES = {
    EXPERIENCE_MAKER: ("openrlhf.models.utils", "openrlhf.trainer.ppo_utils.experience"),
    "openrlhf.trainer.ray.ppo_actor": ("openrlhf.utils.loss_utils", "openrlhf.trainer.ppo_utils.replay_buffer"),
}
ACTOR = "openrlhf.trainer.ray.ppo_actor"


class ContractError(RuntimeError):
    """The installed OpenRLHF lacks a name the adapter relies on."""


@dataclass(frozen=True)
class Need:
    module: str
    name: str  # dotted attribute path inside the module
    why: str
    params: Tuple[str, ...] = ()  # leading parameter names the adapter passes or wraps
    fields: Tuple[str, ...] = ()  # dataclass fields read or written
    keys: Tuple[str, ...] = ()  # dict keys read or written, found in the source


CONTRACT: List[Need] = [
    # RemoteExperienceMaker (PPOTrainer / async TrainingActor process)
    Need(EXPERIENCE_MAKER, "RemoteExperienceMaker.compute_advantages_and_returns", "wrapped: our advantages",
         params=("self", "experiences")),
    Need(EXPERIENCE_MAKER, "RemoteExperienceMaker.get_cumulative_returns", "OpenRLHF's own returns (gamma 1)",
         params=("self", "rewards", "action_mask", "gamma")),
    Need(EXPERIENCE_MAKER, "Experience", "advantages and the drop mode's padding are written on it; the "
         "diversity metrics read the responses, rewards and log-probs",
         fields=("index", "rewards", "action_mask", "kl", "returns", "advantages", "info", "action_log_probs",
                 "base_action_log_probs", "rollout_log_probs", "sequences", "prompts")),
    Need(EXPERIENCE_MAKER, "RemoteExperienceMaker.__init__", "its tokenizer decodes the responses (answers)",
         params=("self", "actor_model_group", "critic_model_group", "reward_model_group", "initial_model_group",
                 "kl_controller", "strategy", "tokenizer"), keys=("self.tokenizer",)),
    Need(EXPERIENCE_MAKER, "RemoteExperienceMaker.split_rollout_samples", "wrapped: drop mode lays out the kept "
         "samples across the actor ranks", params=("self", "rollout_samples")),
    Need("openrlhf.trainer.ppo_utils.experience", "Experience.concat_experiences", "the kept samples' micro-batches",
         params=("experiences_list", "pad_token_id")),
    Need("openrlhf.models.utils", "compute_reward", "OpenRLHF's own per-token reward with optional in-reward KL",
         params=("r", "kl_coef", "kl", "action_mask", "reward_clip_range")),
    # PPOTrainer / TrainingActor: metrics
    Need(TRAINER, "BasePPOTrainer._compute_rollout_stats", "wrapped: the paper's Figure 4 diagnostics",
         params=("self", "experiences")),
    Need(TRAINER, "BasePPOTrainer.train_step", "wrapped: hands the global step to the experience maker, which it "
         "calls, then _compute_rollout_stats, once per rollout batch",
         params=("self", "rollout_samples", "global_step"),
         keys=("make_experience_batch", "_compute_rollout_stats", "global_step + 1")),
    Need(TRAINER, "compute_eval_metrics", "wrapped: pass@k for k between 1 and n",
         params=("eval_dataloader", "samples_list", "n_samples_per_prompt"), keys=("pass1", "datasources")),
    Need(TRAINER_ASYNC, "compute_eval_metrics", "wrapped where the async trainer imports it by name",
         params=("eval_dataloader", "samples_list", "n_samples_per_prompt")),
    Need(TRAINER, "PPOTrainer.__ray_metadata__.modified_class", "Ray's copy of the methods on the sync trainer actor"),
    # PolicyModelActor: optimiser steps with no kept token
    Need(ACTOR, "iter_grad_accum_global_norm", "wrapped where ppo_actor re-binds it: per-step loss normalisers",
         params=("data_iter", "strategy", "accumulated_gradient", "mask_fn")),
    Need(ACTOR, "get_loss_batch_info", "wrapped where ppo_actor re-binds it: dynamic-batch normalisers",
         params=("strategy",), keys=("batch_num_tokens", "global_batch_size")),
    Need(ACTOR, "ActorPPOTrainer.ppo_train", "wrapped (drop mode: optimiser steps of kept samples); feeds "
         "micro-batches through iter_grad_accum_global_norm", params=("self", "kl_ctl"),
         keys=("iter_grad_accum_global_norm", "num_action_tokens", "weights", "metrics", "self.strategy")),
    Need(ACTOR, "ActorPPOTrainer.__init__", "drop mode reads the replay buffer and the micro-batch size",
         keys=("self.replay_buffer", "self.micro_train_batch_size")),
    Need("openrlhf.trainer.ppo_utils.replay_buffer", "NaiveReplayBuffer", "drop mode collates its kept samples",
         keys=("self.items", "def collate_fn")),
    Need("openrlhf.utils.loss_utils", "_get_dp_group", "drop mode: the data-parallel group", params=("strategy",)),
    Need("openrlhf.utils.loss_utils", "_optimizer_step_loss_norm", "drop mode: OpenRLHF's normalisers of one "
         "optimiser step", params=("masks", "dp_group", "dp_size", "gas")),
    Need(ACTOR, "ActorPPOTrainer.training_step", "wrapped: its returned metrics of a micro-batch with no token",
         params=("self", "experience", "kl_ctl", "step", "loss_batch_info"),
         keys=("metrics", "weights", "num_action_tokens", "num_samples")),
    # The wrapper CLI (train_ppo_ray.py), which also checks PARSER_DESTS on OpenRLHF's parser
    Need("openrlhf.utils.config", "hierarchize", "hooked: the resolved config for --dry_run", params=("args",)),
]  # fmt: skip

# Flags the wrapper reads or changes on OpenRLHF's parser (argparse dests), checked when it extends it.
PARSER_DESTS = (
    "algo.advantage.estimator",
    "algo.advantage.gamma",
    "algo.kl.init_coef",
    "algo.dynamic_filtering_enable",
    "reward.remote_url",
    "reward.overlong_buffer_len",
    "reward.stop_properly_penalty_coef",
    "rollout.n_samples_per_prompt",
)


def _resolve(module, dotted: str):
    value = module
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def problems(module) -> List[str]:
    """What of the contract ``module`` (an imported OpenRLHF module) breaks; empty if nothing."""
    found = []
    for need in (n for n in CONTRACT if n.module == module.__name__):
        where = f"{need.module}.{need.name}"
        try:
            value = _resolve(module, need.name)
        except AttributeError:
            found.append(f"{where} is missing (used for: {need.why})")
            continue
        if need.params:
            try:
                names = tuple(inspect.signature(value).parameters)[: len(need.params)]
            except (TypeError, ValueError):
                names = ()
            if names != need.params:
                found.append(f"{where} takes {names}, expected {need.params} (used for: {need.why})")
        if need.fields:
            have = {f.name for f in dataclasses.fields(value)} if dataclasses.is_dataclass(value) else set()
            lost = [f for f in need.fields if f not in have]
            if lost:
                found.append(f"{where} has no field {', '.join(lost)} (used for: {need.why})")
        if need.keys:
            try:
                source = inspect.getsource(value)
            except (OSError, TypeError):
                source = ""
            lost = [k for k in need.keys if k not in source]
            if lost:
                found.append(f"{where} no longer uses {', '.join(lost)} (used for: {need.why})")
    return found


def check(module) -> None:
    """Raise ContractError naming every broken name of ``module`` before the adapter touches it."""
    found = problems(module)
    if found:
        from openrlhf_nsr.openrlhf_patch import SUPPORTED_OPENRLHF, TESTED_OPENRLHF

        version = getattr(importlib.import_module("openrlhf"), "__version__", "unknown")
        raise ContractError(
            f"openrlhf_nsr cannot patch this OpenRLHF ({version}); it supports {SUPPORTED_OPENRLHF}.x, tested with "
            f"{TESTED_OPENRLHF} (pip install 'openrlhf[vllm]=={TESTED_OPENRLHF}'). What changed:\n  - "
            + "\n  - ".join(found)
        )


def check_parser(dests) -> None:
    lost = [d for d in PARSER_DESTS if d not in dests]
    if lost:
        raise ContractError(
            f"OpenRLHF's train_ppo_ray parser has no flag {', '.join('--' + d for d in lost)}, which openrlhf_nsr "
            "reads: install the supported OpenRLHF 0.11.x"
        )


def modules() -> Tuple[str, ...]:
    return tuple(dict.fromkeys(n.module for n in CONTRACT))
