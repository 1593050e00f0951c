"""Thin adapter that installs the objectives of ``objectives.py`` into OpenRLHF 0.11.x.

OpenRLHF has no estimator registry, so three of its classes get a wrapped method. Each wrapper
passes straight through to OpenRLHF's own code unless ``--algo.advantage.estimator`` names one
of our objectives, so the built-in estimators are untouched (they only gain metrics):

- ``RemoteExperienceMaker.compute_advantages_and_returns`` (PPOTrainer / async TrainingActor
  process): the rollout's diversity (diversity.py) for every estimator; for ours, constant
  per-sample advantages with the arguments the run's parameters object gives for this step
  (objectives.objective_run: schedules, the entropy controller); in ``drop`` mode the samples that carry no gradient
  are turned into padding (action mask 0), so OpenRLHF's own token-mean normaliser counts only
  the kept tokens: the update equals the one on a batch from which those samples were removed.
- ``BasePPOTrainer.train_step``: hands OpenRLHF's global step to the experience maker (same
  process, same call); ``BasePPOTrainer._compute_rollout_stats``: adds the diversity metrics,
  lambda and the paper's Figure 4 diagnostics to the ``rollout/`` metrics;
  ``compute_eval_metrics`` (imported by name in both trainer modules): pass@k for every k = 2, 4,
  ... between OpenRLHF's pass@1 and pass@n.
- ``ActorPPOTrainer`` (``PolicyModelActor`` process): an optimiser step or micro-batch with no
  kept token (e.g. every sample correct under nsr) gives a zero loss and finite metrics instead
  of 0 / 0.

The patches reach Ray workers through ``setup_worker`` (a ``worker_process_setup_hook``). It only
registers an import hook: modules are patched when the worker imports them, so a vLLM worker
that never imports the training code never loads it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import os
import sys
import threading
from typing import Optional

import torch

from openrlhf_nsr import diversity, drop_mode, labels, objectives, openrlhf_contract
from openrlhf_nsr import reward as reward_lib

SETUP_HOOK = "openrlhf_nsr.openrlhf_patch.setup_worker"
# Logged as train/rollout/<key> next to OpenRLHF's own rollout/ metrics.
ROLLOUT_METRIC_PREFIX = "rollout/"
# Stand-in token count of a micro-batch with no kept token: keeps OpenRLHF's metric averaging
# finite while weighing that micro-batch's (zeroed) token metrics by ~nothing.
_EMPTY_MICRO_BATCH_TOKENS = 1e-6


def is_objective(args) -> bool:
    return args.algo.advantage.estimator in objectives.objective_names()


# ── RemoteExperienceMaker ──


def _in_rollout_order(experiences):
    """Per-sample (reward, response token ids) of ``experiences`` in rollout order.

    OpenRLHF numbers the rollout's samples (``Experience.index``) before splitting them into
    micro-batches (and dynamic batching reorders those); in rollout order the n samples of a
    prompt are contiguous.
    """
    rows = []
    for experience in experiences:
        rewards = experience.rewards if experience.rewards is not None else experience.info["reward"]
        # The action mask covers the last positions of the sequences (shifted by one: position t
        # is the token predicted from t - 1), as OpenRLHF's actor aligns its log-probs.
        width = experience.action_mask.shape[1]
        for row, index in enumerate(experience.index):
            tokens = experience.sequences[row, -width:]
            rows.append((index, float(rewards[row]), tokens[experience.action_mask[row].bool().to(tokens.device)]))
    rows.sort(key=lambda item: item[0])
    return [reward for _, reward, _ in rows], [response for _, _, response in rows]


def sample_metrics(experiences, tokenizer, n_samples_per_prompt: int) -> dict:
    """Diversity of one rollout batch from its samples (diversity.py), as ``rollout/`` metrics."""
    rewards, responses = _in_rollout_order(experiences)
    answers = [reward_lib.last_boxed(text) for text in tokenizer.batch_decode(responses, skip_special_tokens=False)]
    stats = diversity.pass_at_1_and_n(torch.tensor(rewards), n_samples_per_prompt)
    stats["distinct_answers_frac"] = diversity.distinct_answers_frac(answers, n_samples_per_prompt)
    return {ROLLOUT_METRIC_PREFIX + k: v for k, v in stats.items()}


def objective_run(maker) -> Optional[objectives.ObjectiveRun]:
    """The run's parameters object (objectives.objective_run), built once per process from OpenRLHF's
    args on first use and kept on the experience maker; None for OpenRLHF's own estimators."""
    args = maker.strategy.args
    if not is_objective(args):
        return None
    run = getattr(maker, "nsr_objective_run", None)
    if run is None:
        name = args.algo.advantage.estimator
        given = {
            p.name: getattr(args.algo.advantage, p.name, None) for p in objectives.get_objective(name).hyperparameters
        }
        run = maker.nsr_objective_run = objectives.objective_run(name, given, args.rollout.n_samples_per_prompt)
    return run


# ── The plugin's state in OpenRLHF's checkpoints ──

# Key of the plugin's state in the client states OpenRLHF saves with each DeepSpeed checkpoint.
CHECKPOINT_KEY = "openrlhf_nsr"


def plugin_state(maker) -> dict:
    """What the plugin must carry across a restart: the objective run's state (the entropy controller's
    lambda and reference entropy; schedules are functions of OpenRLHF's global step, which OpenRLHF
    restores itself)."""
    run = objective_run(maker)
    return {} if run is None else run.state()


def restore_plugin_state(maker, state: dict) -> Optional[str]:
    """Put ``plugin_state``'s output back; returns a line for the log (None when there was nothing)."""
    run = objective_run(maker)
    return None if run is None else run.restore(state)


@torch.no_grad()
def compute_objective_advantages(maker, experiences, arguments: dict):
    """Our branch of ``RemoteExperienceMaker.compute_advantages_and_returns``."""
    from openrlhf.models.utils import compute_reward

    args = maker.strategy.args
    adv_args = args.algo.advantage
    name = adv_args.estimator
    mode = drop_mode.ignored_samples_mode(name, getattr(adv_args, "ignored_samples", None))  # None: every sample
    if adv_args.gamma != 1.0:
        raise ValueError(f"{name} needs --algo.advantage.gamma 1 (constant advantages), got {adv_args.gamma}")

    # The advantages of the whole rollout batch at once, in rollout order (Experience.index), where a
    # prompt's n samples are contiguous: a group objective (maxrl, passk) sees whole prompts however
    # the samples were split into micro-batches and actor ranks, as OpenRLHF's own group_norm does.
    n = args.rollout.n_samples_per_prompt
    per_experience = []
    for experience in experiences:
        experience.rewards = experience.rewards.to(torch.promote_types(experience.rewards.dtype, torch.float32))
        per_experience.append(objectives.is_correct(experience.rewards))
    all_indices = [index for experience in experiences for index in experience.index]
    order = torch.empty(len(all_indices), dtype=torch.long)
    order[torch.tensor(all_indices)] = torch.arange(len(all_indices))  # rollout position -> position here
    in_rollout_order = torch.cat(per_experience)[order]
    advantages_all, carries_all = objectives.compute_advantages(name, in_rollout_order, n, **arguments)
    sizes = [len(correct) for correct in per_experience]
    back = torch.tensor(all_indices)  # position here -> rollout position
    split_advantages = advantages_all[back].split(sizes)
    split_carries = carries_all[back].split(sizes)

    for experience, advantages, carries_grad in zip(experiences, split_advantages, split_carries):
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
            drop_mode.mask_samples(experience, ~carries_grad)

    if drop_mode.state_of(maker).removing:
        return {}  # the kept samples are no longer whole prompts: train_step took the diagnostics before
    stats = objectives.rollout_stats(in_rollout_order, carries_all, n)  # per prompt: in rollout order
    return {ROLLOUT_METRIC_PREFIX + k: v for k, v in stats.items()}


def _patch_experience_maker(module) -> None:
    cls = module.RemoteExperienceMaker
    original = cls.compute_advantages_and_returns

    @functools.wraps(original)
    def compute_advantages_and_returns(self, experiences):
        # Diversity first, for every estimator: the samples are all here, unmasked, with rewards.
        args = self.strategy.args
        entropy = diversity.token_entropy(
            (e.action_log_probs for e in experiences), (e.action_mask for e in experiences)
        )
        if drop_mode.state_of(self).removing:
            # Only the kept samples went through the forward pass: their entropy, under its own
            # name; the whole batch's other metrics were taken before removal (train_step).
            stats = {ROLLOUT_METRIC_PREFIX + "entropy_kept": entropy}
        else:
            stats = {ROLLOUT_METRIC_PREFIX + "entropy": entropy}
            stats.update(sample_metrics(experiences, self.tokenizer, args.rollout.n_samples_per_prompt))
        run = objective_run(self)
        if run is not None:
            # this step's arguments: schedules at OpenRLHF's global step, a controller fed this step's entropy
            arguments = run.arguments(getattr(self, "nsr_step", 1), entropy)
            stats.update(compute_objective_advantages(self, experiences, arguments))
            stats.update({ROLLOUT_METRIC_PREFIX + k: v for k, v in run.metrics(arguments).items()})
        else:
            experiences = original(self, experiences)
        self.nsr_rollout_stats = stats
        return experiences

    cls.compute_advantages_and_returns = compute_advantages_and_returns

    split_original = cls.split_rollout_samples

    @functools.wraps(split_original)
    def split_rollout_samples(self, rollout_samples):
        if not drop_mode.state_of(self).removing:
            return split_original(self, rollout_samples)
        return drop_mode.split_kept_samples(self, rollout_samples, split_original)

    cls.split_rollout_samples = split_rollout_samples


# ── PPOTrainer / TrainingActor: metrics ──


def _patch_eval_metrics(module) -> None:
    original = module.compute_eval_metrics
    if getattr(original, "_openrlhf_nsr_wrapped", False):  # imported by name after ppo_trainer was patched
        return

    @functools.wraps(original)
    def compute_eval_metrics(eval_dataloader, samples_list, n_samples_per_prompt):
        logs = original(eval_dataloader, samples_list, n_samples_per_prompt)
        if samples_list and n_samples_per_prompt >= 4:
            sources = {}
            for datasources, prompts, _labels, _images in eval_dataloader:
                for prompt, datasource in zip(prompts, datasources):
                    sources[prompt] = datasource
            logs.update(eval_pass_at_k_logs(samples_list, n_samples_per_prompt, sources))
        return logs

    compute_eval_metrics._openrlhf_nsr_wrapped = True
    module.compute_eval_metrics = compute_eval_metrics


def eval_pass_at_k_logs(samples_list, n_samples_per_prompt: int, sources: dict) -> dict:
    """``eval_<source>_pass<k>`` for k = 2, 4, ... below n, next to OpenRLHF's pass1 and pass<n>.

    OpenRLHF's ``compute_eval_metrics`` logs only pass@1 (mean reward) and pass@n (max); for 0/1
    rewards those are the unbiased pass@1 and pass@n, and the k in between use the same estimator
    (diversity.pass_at_ks) on the same prompt groups (a prompt's n samples are contiguous).
    """
    n = int(n_samples_per_prompt)
    prompts = [prompt for s in samples_list for prompt in s.prompts]
    rewards = [float(r) for s in samples_list for r in torch.as_tensor(s.rewards).flatten()]
    by_source = {}
    for start in range(0, len(prompts) - n + 1, n):
        by_source.setdefault(sources.get(prompts[start], "unknown"), []).extend(rewards[start : start + n])
    logs = {}
    for source, values in by_source.items():
        ks = diversity.pass_at_ks(torch.tensor(values), n)
        for k, value in (ks or {}).items():  # None: rewards not 0/1, pass@k undefined
            if 1 < k < n:
                logs[f"eval_{source}_pass{k}"] = value
    return logs


def _ray_copies(module, cls):
    """The copies of ``cls``'s methods Ray made on the actor classes of ``module``.

    ``@ray.remote class PPOTrainer(BasePPOTrainer)`` ran while the module executed, and Ray copied
    every method, inherited ones included, onto the actor's class: patching ``cls`` alone leaves
    the sync trainer actor with the unpatched method (the async TrainingActor is made later, from
    the patched class).
    """
    for value in vars(module).values():
        actor_class = getattr(getattr(value, "__ray_metadata__", None), "modified_class", None)
        if isinstance(actor_class, type) and issubclass(actor_class, cls):
            yield actor_class


def _patch_trainer(module) -> None:
    cls = module.BasePPOTrainer
    stats_original = cls._compute_rollout_stats
    step_original = cls.train_step

    @functools.wraps(stats_original)
    def _compute_rollout_stats(self, experiences):
        maker = self.experience_maker
        state = drop_mode.state_of(maker)
        stats = stats_original(self, experiences)
        stats.update(getattr(maker, "nsr_rollout_stats", None) or {})
        stats.update(state.batch_stats or {})  # drop mode: the whole batch's, taken before removal
        maker.nsr_rollout_stats = state.batch_stats = None
        return stats

    def whole_batch_stats(self, rollout_samples):
        """Every rollout/ metric of the whole batch, before its samples with no gradient are removed."""
        args = self.args
        for position, sample in enumerate(rollout_samples):
            sample.index = [position]
        stats = stats_original(self, rollout_samples)
        stats.update(sample_metrics(rollout_samples, self.tokenizer, args.rollout.n_samples_per_prompt))
        correct = objectives.is_correct(torch.cat([s.rewards.flatten().float() for s in rollout_samples]))
        _, carries_grad = objectives.compute_advantages(args.algo.advantage.estimator, correct)
        figure4 = objectives.rollout_stats(correct, carries_grad, args.rollout.n_samples_per_prompt)
        stats.update({ROLLOUT_METRIC_PREFIX + k: v for k, v in figure4.items()})
        return stats

    @functools.wraps(step_original)
    def train_step(self, rollout_samples, global_step):
        # OpenRLHF's step counter reaches the advantages: the experience maker runs in this process,
        # inside this call. Step numbers are the ones this batch is logged under (first batch: 1).
        self.experience_maker.nsr_step = global_step + 1
        warning = ungradable_warning(rollout_samples)
        if warning:
            print(f"[openrlhf_nsr] warning: step {global_step + 1}: {warning}", flush=True)
        # The reward is known when generation ends (OpenRLHF runs the reward function in the rollout):
        # drop mode removes the samples with no gradient before any forward pass.
        if not drop_mode.removes_samples(self.args) or any(s.rewards is None for s in rollout_samples):
            return step_original(self, rollout_samples, global_step)
        return drop_mode.train_step(self, rollout_samples, global_step, step_original, whole_batch_stats)

    save_original = cls.save_logs_and_checkpoints
    states_original = cls.init_checkpoint_states

    @functools.wraps(save_original)
    def save_logs_and_checkpoints(self, global_step, logs_dict=None, client_states=None):
        client_states = {} if client_states is None else client_states
        client_states[CHECKPOINT_KEY] = plugin_state(self.experience_maker)
        return save_original(self, global_step, logs_dict, client_states)

    @functools.wraps(states_original)
    def init_checkpoint_states(self):
        states = states_original(self)
        line = restore_plugin_state(self.experience_maker, states.get(CHECKPOINT_KEY))
        if line:
            print(f"[openrlhf_nsr] step {states.get('global_step')}: {line}", flush=True)
        return states

    _patch_eval_metrics(module)
    module.prepare_datasets = _prepare_datasets(module.prepare_datasets)
    for target in (cls, *_ray_copies(module, cls)):
        target._compute_rollout_stats = _compute_rollout_stats
        target.train_step = train_step
        target.save_logs_and_checkpoints = save_logs_and_checkpoints
        target.init_checkpoint_states = init_checkpoint_states
    for target in _ray_copies(module, cls):  # the sync trainer actor's fit (the async trainer has its own)
        if "fit" in vars(target) and not getattr(target.fit, "_openrlhf_nsr_wrapped", False):
            target.fit = _evaluating_first(target.fit)


# ── PPOTrainer: the prompt order, the partial last batch, an evaluation before training ──


def _prepare_datasets(original):
    """OpenRLHF's ``prepare_datasets`` with the prompt order seeded by ``--train.seed`` and, with
    ``--rollout.drop_last_batch``, each pass cut to whole rollout batches.

    OpenRLHF 0.11.2 builds the prompt dataloader in the PPOTrainer actor, which has no process
    group, so ``setup_dataloader`` makes no DistributedSampler (the one seeded with the seed) and
    torchdata's RandomSampler seeds itself from torch's unseeded global generator: the same
    ``--train.seed`` gives another prompt order in every run, and a resumed run cannot be compared
    with the first. Here that sampler's generator is seeded with ``--train.seed``; each pass is a
    new permutation drawn from it, and OpenRLHF's checkpoints keep its state (the dataloader's
    state_dict), so a resumed run continues the same order.
    """

    @functools.wraps(original)
    def prepare_datasets(strategy, tokenizer):
        prompts_dataloader, eval_dataloader, max_steps = original(strategy, tokenizer)
        args = strategy.args
        sampler = prompts_dataloader.sampler
        if type(sampler).__name__ == "RandomSampler" and hasattr(sampler, "generator"):
            sampler.generator.manual_seed(args.train.seed)
            if getattr(args.rollout, "drop_last_batch", False):
                prompts = len(sampler.data_source)
                kept = prompts // args.rollout.batch_size * args.rollout.batch_size
                if 0 < kept < prompts:
                    sampler._num_samples = kept  # each pass: the first `kept` of a fresh permutation
                    max_steps = (
                        kept * args.rollout.n_samples_per_prompt // args.train.batch_size
                        * args.train.num_episodes * args.train.max_epochs
                    )  # fmt: skip
        return prompts_dataloader, eval_dataloader, max_steps

    return prepare_datasets


def _evaluating_first(original):
    """``PPOTrainer.fit`` that, with ``--eval.before_training``, evaluates the starting model at step 0
    (as the reference does, verl's val_before_train), unless the run resumes from a checkpoint."""

    @functools.wraps(original)
    def fit(self, *args, **kwargs):
        config = self.args
        resuming = config.ckpt.load_enable and os.path.exists(os.path.join(config.ckpt.path, "_actor"))
        if getattr(config.eval, "before_training", False) and self.eval_dataloader and not resuming:
            generate_kwargs = dict(self.generate_kwargs)
            generate_kwargs["temperature"] = config.eval.temperature
            generate_kwargs["n_samples_per_prompt"] = config.eval.n_samples_per_prompt
            self.evaluate(0, **generate_kwargs)
        return original(self, *args, **kwargs)

    fit._openrlhf_nsr_wrapped = True
    return fit


def ungradable_warning(rollout_samples) -> Optional[str]:
    """labels.invalid_share_warning on the reward's per-sample flags of one rollout batch (every
    sample, before any is removed), or None when the reward logged none (another reward)."""
    flags = {}
    for key in (labels.GOLD_INVALID, labels.GRADING_TIMEOUT, labels.ANSWER_FOUND):
        values = [s.info[key].flatten().float() for s in rollout_samples if key in (s.info or {})]
        if len(values) == len(rollout_samples) and values:
            flags[key] = torch.cat(values)
    return labels.invalid_share_warning(flags) if flags else None


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
    train_original = module.ActorPPOTrainer.ppo_train

    @functools.wraps(train_original)
    def ppo_train(self, kl_ctl):
        if not drop_mode.removes_samples(self.args):
            return train_original(self, kl_ctl)
        return drop_mode.ppo_train(self, kl_ctl, train_original)

    @functools.wraps(iter_original)
    def iter_grad_accum_global_norm(data_iter, strategy, accumulated_gradient, mask_fn):
        kept = drop_mode.state_of(strategy).kept
        if kept is not None:
            yield from drop_mode.kept_micro_batches(
                strategy, *kept, accumulated_gradient, mask_fn, normalisers=_nonzero_normalisers
            )
            return
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
        boundary = drop_mode.state_of(self.strategy).boundary
        if boundary is not None:  # a planned step: DeepSpeed steps after its last micro-batch, not every gas
            self.actor.model.set_gradient_accumulation_boundary(boundary)
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
    module.ActorPPOTrainer.ppo_train = ppo_train


def _patch_replay_buffer(module) -> None:
    original = module.NaiveReplayBuffer.setup_dynamic_batch

    @functools.wraps(original)
    def setup_dynamic_batch(self, strategy):
        if not drop_mode.removes_samples(strategy.args):
            return original(self, strategy)
        return drop_mode.setup_kept_dynamic_batch(self, strategy)

    module.NaiveReplayBuffer.setup_dynamic_batch = setup_dynamic_batch


# ── Installation ──

_PATCHES = {
    "openrlhf.trainer.ppo_utils.experience_maker": _patch_experience_maker,
    "openrlhf.trainer.ppo_trainer": _patch_trainer,
    "openrlhf.trainer.ppo_trainer_async": _patch_eval_metrics,  # imports compute_eval_metrics by name
    "openrlhf.trainer.ray.ppo_actor": _patch_actor,
    "openrlhf.trainer.ppo_utils.replay_buffer": _patch_replay_buffer,
}
_PATCHED_FLAG = "_openrlhf_nsr_patched"
_lock = threading.RLock()


def _patch_module(module) -> None:
    with _lock:
        if getattr(module, _PATCHED_FLAG, False):
            return
        openrlhf_contract.check(module)  # a moved name fails here, naming it, not mid-run
        for dependency in openrlhf_contract.DEPENDENCIES.get(module.__name__, ()):
            openrlhf_contract.check(importlib.import_module(dependency))
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
    openrlhf_contract.check_version()
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
