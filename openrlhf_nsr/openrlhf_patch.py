"""Thin adapter that installs the objectives of ``objectives.py`` into OpenRLHF 0.11.x.

OpenRLHF has no estimator registry, so three of its classes get a wrapped method. Each wrapper
passes straight through to OpenRLHF's own code unless ``--algo.advantage.estimator`` names one
of our objectives, so the built-in estimators are untouched:

- ``RemoteExperienceMaker.compute_advantages_and_returns`` (PPOTrainer / async TrainingActor
  process): constant per-sample advantages; in ``drop`` mode the samples that carry no gradient
  are turned into padding (action mask 0), so OpenRLHF's own token-mean normaliser counts only
  the kept tokens: the update equals the one on a batch from which those samples were removed.
- ``BasePPOTrainer._compute_rollout_stats``: adds the paper's Figure 4 diagnostics to the
  ``rollout/`` metrics.
- ``ActorPPOTrainer`` (``PolicyModelActor`` process): an optimiser step or micro-batch with no
  kept token (e.g. every sample correct under nsr) gives a zero loss and finite metrics instead
  of 0 / 0.

The patches reach Ray workers through ``setup_worker`` (a ``worker_process_setup_hook``). It only
registers an import hook: modules are patched when the worker imports them, so a vLLM worker
that never imports the training code never loads it.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.metadata
import sys
import threading

import torch

from openrlhf_nsr import objectives, openrlhf_contract

SUPPORTED_OPENRLHF = "0.11"
TESTED_OPENRLHF = "0.11.2"
SETUP_HOOK = "openrlhf_nsr.openrlhf_patch.setup_worker"
# Logged as train/rollout/<key> next to OpenRLHF's own rollout/ metrics.
ROLLOUT_METRIC_PREFIX = "rollout/"
# Stand-in token count of a micro-batch with no kept token: keeps OpenRLHF's metric averaging
# finite while weighing that micro-batch's (zeroed) token metrics by ~nothing.
_EMPTY_MICRO_BATCH_TOKENS = 1e-6


def check_openrlhf_version() -> str:
    try:
        version = importlib.metadata.version("openrlhf")
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(
            f"OpenRLHF is not installed. openrlhf_nsr supports OpenRLHF {SUPPORTED_OPENRLHF}.x "
            f"(tested with {TESTED_OPENRLHF}): pip install 'openrlhf[vllm]=={TESTED_OPENRLHF}'"
        ) from None
    if version.split(".")[:2] != SUPPORTED_OPENRLHF.split("."):
        raise RuntimeError(
            f"openrlhf_nsr supports OpenRLHF {SUPPORTED_OPENRLHF}.x (tested with {TESTED_OPENRLHF}), "
            f"found {version}: pip install 'openrlhf[vllm]=={TESTED_OPENRLHF}'"
        )
    return version


def is_objective(args) -> bool:
    return args.algo.advantage.estimator in objectives.objective_names()


# ── RemoteExperienceMaker ──


@torch.no_grad()
def compute_objective_advantages(maker, experiences):
    """Our branch of ``RemoteExperienceMaker.compute_advantages_and_returns``."""
    from openrlhf.models.utils import compute_reward

    args = maker.strategy.args
    adv_args = args.algo.advantage
    name = adv_args.estimator
    lam = getattr(adv_args, "w_reinforce_lambda", None) if objectives.get_objective(name).uses_lambda else None
    mode = getattr(adv_args, "ignored_samples", None) or objectives.DEFAULT_IGNORED_SAMPLES
    if adv_args.gamma != 1.0:
        raise ValueError(f"{name} needs --algo.advantage.gamma 1 (constant advantages), got {adv_args.gamma}")

    all_correct, all_carries, all_indices = [], [], []
    for experience in experiences:
        experience.rewards = experience.rewards.to(torch.promote_types(experience.rewards.dtype, torch.float32))
        correct = objectives.is_correct(experience.rewards)
        advantages, carries_grad = objectives.compute_advantages(name, correct, lam)

        # OpenRLHF's own REINFORCE path: the sample's advantage at its last token, minus the
        # in-reward KL if one was explicitly asked for, summed back over the response (gamma = 1).
        # kl is cast to fp32 so lambda = 0.1 is not rounded to the log-prob dtype (bf16).
        reward = compute_reward(
            advantages,
            maker.kl_ctl.value,
            experience.kl.float(),
            action_mask=experience.action_mask,
            reward_clip_range=args.reward.clip_range,
        )
        experience.returns = maker.get_cumulative_returns(reward, experience.action_mask, 1.0)
        experience.advantages = experience.returns.clone()
        experience.info["return"] = reward.sum(dim=-1)
        experience.kl = None
        if mode == "drop":
            drop_samples(experience, ~carries_grad)

        all_correct.append(correct)
        all_carries.append(carries_grad)
        all_indices.extend(experience.index)

    # Diagnostics per prompt: restore the rollout order, where a prompt's n samples are contiguous.
    order = torch.empty(len(all_indices), dtype=torch.long)
    order[torch.tensor(all_indices)] = torch.arange(len(all_indices))
    stats = objectives.rollout_stats(
        torch.cat(all_correct)[order], torch.cat(all_carries)[order], args.rollout.n_samples_per_prompt
    )
    maker.objective_rollout_stats = {ROLLOUT_METRIC_PREFIX + k: v for k, v in stats.items()}
    return experiences


def drop_samples(experience, dropped: torch.Tensor) -> None:
    """Turn the ``dropped`` samples of ``experience`` into padding.

    OpenRLHF treats action-mask-0 positions as padding everywhere (actor log-probs, policy,
    entropy and KL losses, the optimiser-step token count, dynamic batching), so the update is
    the one computed on the batch without them. Their per-token tensors are zeroed like padding.
    """
    if not dropped.any():
        return
    pad = dropped.unsqueeze(-1).to(experience.action_mask.device)
    experience.action_mask = experience.action_mask.masked_fill(pad, 0)
    for field in ("action_log_probs", "base_action_log_probs", "rollout_log_probs", "advantages", "returns"):
        value = getattr(experience, field)
        if isinstance(value, torch.Tensor):
            setattr(experience, field, value.masked_fill(pad.to(value.device), 0))


def _patch_experience_maker(module) -> None:
    cls = module.RemoteExperienceMaker
    original = cls.compute_advantages_and_returns

    @functools.wraps(original)
    def compute_advantages_and_returns(self, experiences):
        if is_objective(self.strategy.args):
            return compute_objective_advantages(self, experiences)
        return original(self, experiences)

    cls.compute_advantages_and_returns = compute_advantages_and_returns


# ── PPOTrainer / TrainingActor: metrics ──


def _patch_trainer(module) -> None:
    cls = module.BasePPOTrainer
    original = cls._compute_rollout_stats

    @functools.wraps(original)
    def _compute_rollout_stats(self, experiences):
        stats = original(self, experiences)
        stats.update(getattr(self.experience_maker, "objective_rollout_stats", None) or {})
        self.experience_maker.objective_rollout_stats = None
        return stats

    cls._compute_rollout_stats = _compute_rollout_stats
    # `@ray.remote class PPOTrainer(BasePPOTrainer)` ran while this module executed, and Ray copied
    # every method, inherited ones included, onto the actor's class: patch those copies too, or
    # the sync trainer actor keeps the unpatched method (the async TrainingActor is made later).
    for value in vars(module).values():
        actor_class = getattr(getattr(value, "__ray_metadata__", None), "modified_class", None)
        if isinstance(actor_class, type) and issubclass(actor_class, cls):
            actor_class._compute_rollout_stats = _compute_rollout_stats


# ── PolicyModelActor: steps with no kept token ──


def _nonzero_normalisers(loss_batch_info):
    """0 kept tokens / samples in the whole optimiser step -> divide the (zero) loss by 1, not 0."""
    info = dict(loss_batch_info)
    for key in ("batch_num_tokens", "global_batch_size"):
        value = info.get(key)
        if isinstance(value, torch.Tensor):
            info[key] = torch.where(value > 0, value, torch.ones_like(value))
    return info


def _patch_actor(module) -> None:
    iter_original = module.iter_grad_accum_global_norm
    info_original = module.get_loss_batch_info
    step_original = module.ActorPPOTrainer.training_step

    @functools.wraps(iter_original)
    def iter_grad_accum_global_norm(data_iter, strategy, accumulated_gradient, mask_fn):
        batches = iter_original(data_iter, strategy, accumulated_gradient, mask_fn)
        if not is_objective(strategy.args):
            yield from batches
            return
        for item, info in batches:
            yield item, _nonzero_normalisers(info)

    @functools.wraps(info_original)
    def get_loss_batch_info(strategy, *args, **kwargs):
        info = info_original(strategy, *args, **kwargs)
        return _nonzero_normalisers(info) if is_objective(strategy.args) else info

    @functools.wraps(step_original)
    def training_step(self, experience, *args, **kwargs):
        status = step_original(self, experience, *args, **kwargs)
        if is_objective(self.args) and status["num_action_tokens"] == 0:
            # All of this micro-batch was dropped: its loss is exactly 0, but masked means such
            # as ppo_kl are 0 / 0. ppo_train weighs token metrics by the token count, so zero them
            # and report a vanishing count instead of dividing by zero.
            for key, weight in status["weights"].items():
                if weight == "token":
                    status["metrics"][key] = torch.zeros_like(torch.as_tensor(status["metrics"][key]))
            status["num_action_tokens"] = _EMPTY_MICRO_BATCH_TOKENS
        return status

    module.iter_grad_accum_global_norm = iter_grad_accum_global_norm
    module.get_loss_batch_info = get_loss_batch_info
    module.ActorPPOTrainer.training_step = training_step


# ── Installation ──

_PATCHES = {
    "openrlhf.trainer.ppo_utils.experience_maker": _patch_experience_maker,
    "openrlhf.trainer.ppo_trainer": _patch_trainer,
    "openrlhf.trainer.ray.ppo_actor": _patch_actor,
}
_PATCHED_FLAG = "_openrlhf_nsr_patched"
_lock = threading.RLock()


def _patch_module(module) -> None:
    with _lock:
        if getattr(module, _PATCHED_FLAG, False):
            return
        openrlhf_contract.check(module)  # a moved name fails here, naming it, not mid-run
        _PATCHES[module.__name__](module)
        setattr(module, _PATCHED_FLAG, True)


class _PatchingLoader(importlib.abc.Loader):
    """Runs the real loader, then patches the freshly executed module."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        _patch_module(module)

    def __getattr__(self, name):  # get_source, get_filename, ... of the real loader
        return getattr(self.loader, name)


class _PostImportPatcher(importlib.abc.MetaPathFinder):
    """Patches the modules of ``_PATCHES`` right after they are imported, whenever that is.

    The spec comes from the finders after this one in ``sys.meta_path``, so other import hooks
    on the same modules (coverage tools, other plugins) keep working.
    """

    def find_spec(self, fullname, path, target=None):
        if fullname not in _PATCHES:
            return None
        later = sys.meta_path[next(i for i, f in enumerate(sys.meta_path) if f is self) + 1 :]
        for finder in later:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


def apply() -> None:
    """Install the objectives into OpenRLHF in this process. Idempotent; cheap in any process.

    Modules already imported are patched now; the others when (if ever) they are imported.
    Raises RuntimeError if the installed OpenRLHF is not 0.11.x.
    """
    check_openrlhf_version()
    with _lock:
        if not any(isinstance(finder, _PostImportPatcher) for finder in sys.meta_path):
            sys.meta_path.insert(0, _PostImportPatcher())
        for name in _PATCHES:
            if name in sys.modules:
                _patch_module(sys.modules[name])


def setup_worker() -> None:
    """Ray ``worker_process_setup_hook``: runs in every worker process of the job."""
    apply()


def with_setup_hook(runtime_env):
    """Return ``runtime_env`` (dict or None) with our worker setup hook added."""
    runtime_env = dict(runtime_env or {})
    hook = runtime_env.get("worker_process_setup_hook")
    if hook not in (None, SETUP_HOOK):
        raise ValueError(
            f"the Ray runtime_env already sets worker_process_setup_hook={hook!r}, but openrlhf_nsr needs "
            f"{SETUP_HOOK!r} to patch the workers: remove yours (call openrlhf_nsr.apply() wherever you need it)"
        )
    runtime_env["worker_process_setup_hook"] = SETUP_HOOK
    return runtime_env
