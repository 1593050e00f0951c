"""What the wrapper checks and estimates before Ray starts (``--dry_run`` prints it all).

- ``check_sources``: a local model path and local datasets exist; ``--reward.remote_url`` is
  ``math_verify``, an http(s) URL or an existing ``.py`` file.
- ``plan``: rollout batches per pass and the steps the run will take (OpenRLHF's partial-batch
  rule, or ``--rollout.drop_last_batch``), the memory of one training micro-batch and of one
  log-prob forward on a GPU (memory.py), and the disk its checkpoints take. With
  ``--gpu_memory_gb`` a run whose estimate exceeds it is refused, naming what to change.
- ``check_dataset_labels``: the label column of the prompt and eval datasets (labels.py).

Each problem is a ``Refusal``: one paragraph, what is wrong and how to fix it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import List, Optional, Tuple

from openrlhf_nsr import labels, memory

# --reward.remote_url names resolved to the reward files this package installs (train_ppo_ray resolves them).
BUILTIN_REWARDS = {"math_verify": "openrlhf_nsr.reward"}
# What one micro-batch of each phase is, in the printout and the refusals.
PHASES = {"train": "training micro-batch", "rollout": "log-prob forward"}


class Refusal(ValueError):
    """A run that must not start; the message says what is wrong and how to fix it."""


def looks_local(name: str) -> bool:
    """A path the user means as local (not a hub id): absolute, ./ ../ ~, or a data file's name."""
    return name.startswith(("/", "./", "../", "~")) or name.endswith(labels.DATA_SUFFIXES)


def _dataset_paths(spec: Optional[str]) -> List[str]:
    """The paths of OpenRLHF's comma-separated dataset list (``PATH`` or ``PATH@DATA_DIR``)."""
    return [part.strip().split("@")[0] for part in (spec or "").split(",") if part.strip()]


def check_sources(model: str, datasets: List[Tuple[str, Optional[str]]], remote_urls: Optional[str]) -> None:
    """Refuse a local model or dataset path that does not exist, and a reward URL that is neither
    ``math_verify``, an http(s) URL nor an existing ``.py`` file (``datasets``: (flag, value) pairs)."""
    if model and looks_local(model) and not Path(model).expanduser().exists():
        raise Refusal(f"--actor.model_name_or_path {model}: no such folder (a hub id has no leading / ./ ../)")
    for flag, spec in datasets:
        for path in _dataset_paths(spec):
            if looks_local(path) and not Path(path).expanduser().exists():
                raise Refusal(
                    f"{flag} {path}: no such file (write the paper's data with python -m openrlhf_nsr.prepare_data)"
                )
    for url in (remote_urls or "").split(","):
        url = url.strip()
        if not url or url in BUILTIN_REWARDS or re.match(r"^https?://[^\s/]+", url):
            continue
        if url.endswith(".py"):
            if not Path(url).is_file():
                raise Refusal(f"--reward.remote_url {url}: no such reward file")
            if "def reward_func" not in Path(url).read_text(errors="replace"):
                raise Refusal(f"--reward.remote_url {url}: the file defines no reward_func(queries, prompts, labels)")
            continue
        raise Refusal(
            f"--reward.remote_url {url}: not a reward OpenRLHF can call; give {' or '.join(BUILTIN_REWARDS)} (the package's "
            f"math reward), an http(s):// URL of a reward server, or the path of a .py file defining reward_func"
        )


def resume_step(config) -> Optional[Tuple[str, int]]:
    """(checkpoint folder, its step) that ``--ckpt.load_enable`` resumes from: DeepSpeed's ``latest`` tag."""
    latest = Path(config.ckpt.path) / "_actor" / "latest"
    if not latest.is_file():
        return None
    tag = latest.read_text().strip()
    match = re.search(r"(\d+)$", tag)
    return (str(latest.parent / tag), int(match.group(1))) if match else None


def count_rows(path: str) -> Optional[int]:
    """Rows of a local .jsonl / .json / .parquet dataset; None where that cannot be read cheaply."""
    where = Path(path).expanduser()
    try:
        if where.suffix == ".jsonl":
            with open(where, "rb") as handle:
                return sum(1 for line in handle if line.strip())
        if where.suffix == ".json":
            data = json.loads(where.read_text())
            return len(data) if isinstance(data, list) else None
        if where.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(where).metadata.num_rows
    except (OSError, ValueError):
        return None
    return None


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "es" if noun.endswith(("s", "h")) else "s")


def _get(config, dotted: str, default=None):
    value = config
    for part in dotted.split("."):
        value = getattr(value, part, None)
        if value is None:
            return default
    return value


def steps_plan(prompts: int, config) -> Tuple[int, int, int]:
    """(rollout batches per pass, prompts a pass trains on, total steps) for ``prompts`` prompts."""
    batch = config.rollout.batch_size
    if _get(config, "rollout.drop_last_batch", False) and prompts >= batch:
        per_pass = prompts // batch
        used = per_pass * batch
    else:
        per_pass = math.ceil(prompts / batch)
        used = prompts
    return per_pass, used, per_pass * config.train.num_episodes


def micro_batch_tokens(config, phase: str) -> int:
    """Tokens of the largest micro-batch on one GPU: ``phase`` "train" or "rollout"."""
    split = max(1, _get(config, "ds.ring_attn_size", 1)) * max(1, _get(config, "ds.tensor_parallel_size", 1))
    longest = math.ceil(config.data.max_len / split)
    if _get(config, "train.dynamic_batch_enable", False):
        budget = _get(config, f"{phase}.max_tokens_per_gpu") or _get(config, "train.max_tokens_per_gpu") or longest
        return max(budget, longest)  # a sequence longer than the budget is a micro-batch of its own
    return max(1, _get(config, f"{phase}.micro_batch_size", 1)) * longest


def plan(config, gpu_memory_gb: Optional[float]) -> List[str]:
    """Lines describing the run's length, memory and disk; Refusal if the memory estimate exceeds
    ``gpu_memory_gb`` (None: not checked)."""
    lines = []
    resume = resume_step(config) if _get(config, "ckpt.load_enable", False) else None  # OpenRLHF resumes only then
    if _get(config, "ckpt.load_enable", False):
        lines.append(
            f"resume: from {resume[0]} at step {resume[1]} (the step-0 evaluation is not repeated)"
            if resume
            else f"resume: no checkpoint in {config.ckpt.path}/_actor yet: the run starts from step 0"
        )
    prompt_paths = _dataset_paths(config.data.prompt_dataset)
    counts = [count_rows(p) for p in prompt_paths]
    shape = memory.model_shape(config.actor.model_name_or_path)
    total_steps = None
    if counts and None not in counts:
        prompts = min(sum(counts), config.data.max_samples)
        per_pass, used, total_steps = steps_plan(prompts, config)
        drop = _get(config, "rollout.drop_last_batch", False)
        rule = (
            f"the last {prompts - used} prompts of each shuffled pass dropped by --rollout.drop_last_batch"
            if used < prompts
            else "fewer prompts than one batch: that partial batch is trained, --rollout.drop_last_batch or not"
            if prompts < config.rollout.batch_size
            else "OpenRLHF trains the partial last batch; --rollout.drop_last_batch drops it"
            if prompts % config.rollout.batch_size and not drop
            else "every batch whole"
        )
        evals = total_steps // config.eval.steps if config.eval.dataset and config.eval.steps > 0 else 0
        before = 1 if _get(config, "eval.before_training", False) and config.eval.dataset and not resume else 0
        lines.append(
            f"steps: {prompts} prompts / {config.rollout.batch_size} per rollout batch = {_n(per_pass, 'batch')} per "
            f"pass ({rule}) x {_n(config.train.num_episodes, 'pass')} = {_n(total_steps, 'step')}; evaluations: "
            f"{evals + before}{' (step 0 included)' if before else ''}"
        )
    else:
        lines.append("steps: unknown (the prompt dataset is not a local .jsonl / .json / .parquet file)")

    if shape is None:
        unchecked = f"; --gpu_memory_gb {gpu_memory_gb:g} NOT checked" if gpu_memory_gb else ""
        lines.append(
            f"memory and disk: not estimated, unknown shape of {config.actor.model_name_or_path} (a local folder "
            f"with a config.json, or one of {', '.join(memory.KNOWN_MODELS)}){unchecked}"
        )
        return lines
    gpus = config.actor.num_nodes * config.actor.num_gpus_per_node
    estimates = {
        "train": (micro_batch_tokens(config, "train"), memory.training_bytes),
        "rollout": (micro_batch_tokens(config, "rollout"), memory.forward_bytes),
    }
    for phase, (tokens, cost) in estimates.items():
        terms = cost(shape, tokens, gpus)
        total = sum(terms.values())
        checked = f" (of {gpu_memory_gb:g} GB)" if gpu_memory_gb else " (not checked against a GPU: --gpu_memory_gb)"
        lines.append(
            f"memory per GPU, one {PHASES[phase]} of {tokens} tokens: {memory.fmt_gb(total)}{checked} = "
            + " + ".join(f"{name} {memory.fmt_gb(value)}" for name, value in terms.items())
        )
        if gpu_memory_gb is not None and total > gpu_memory_gb * memory.GB:
            raise Refusal(_memory_advice(config, shape, gpus, gpu_memory_gb, phase, tokens, total))

    lines.append(_disk_line(config, shape, total_steps))
    return lines


def _memory_advice(config, shape, gpus, gpu_gb, phase, tokens, total) -> str:
    fits = memory.largest_fitting(shape, gpus, gpu_gb, forward=(phase == "rollout"))
    flag = f"--{phase}.max_tokens_per_gpu"
    ring = max(1, _get(config, "ds.ring_attn_size", 1))
    longest = math.ceil(config.data.max_len / ring)
    budget = "TRAIN_TOKENS_PER_GPU" if phase == "train" else "ROLLOUT_TOKENS_PER_GPU"
    advice = f"set {flag} {fits} or less (recipes: {budget}={fits}, or GPU_MEMORY_GB to the GPU's memory)"
    if fits < longest:  # one sequence alone is too much: split it over GPUs, or shorten it
        rings = [r for r in (2, 4, 8) if r > ring and gpus % r == 0 and fits >= math.ceil(config.data.max_len / r)]
        advice = (
            f"one sequence of {config.data.max_len} tokens (--data.max_len) does not fit on one GPU of this size: "
            + (
                f"split each over {rings[0]} GPUs with ring attention (--ds.ring_attn_size {rings[0]}; recipes: "
                f'EXTRA_ARGS="--ds.ring_attn_size {rings[0]}"; pip install ring_flash_attn), or '
                if rings
                else ""
            )
            + "train shorter sequences (--data.max_len and --rollout.max_new_tokens: a departure from the paper)"
        )
    return (
        f"--gpu_memory_gb {gpu_gb:g}: one {PHASES[phase]} of "
        f"{tokens} tokens needs about {memory.fmt_gb(total)} per GPU by the estimate of recipes/README.md "
        f"('Memory per GPU', GB = 10^9 bytes), more than the GPU has: {advice}. To skip this check: --gpu_memory_gb 0 "
        f'(recipes: EXTRA_ARGS="--gpu_memory_gb 0"; GPU_MEMORY_GB=0 also sets the reference\'s budgets, which need '
        f"about 250 GB)"
    )


def _disk_line(config, shape, total_steps: Optional[int]) -> str:
    save_steps = config.ckpt.save_steps
    saves = total_steps // save_steps if total_steps is not None and save_steps and save_steps > 0 else 0
    models = 2 if config.algo.advantage.estimator == "gae" else 1  # PPO: the critic's checkpoints too
    kept = min(saves, config.ckpt.max_num) if not _get(config, "ckpt.disable_ds", False) else 0
    best_metric = _get(config, "ckpt.best_metric_key", "")
    best = 1 if config.eval.dataset and save_steps and best_metric != "none" else 0
    deepspeed = (kept + best) * models * memory.checkpoint_bytes(shape)
    hf_copies = saves * memory.hf_model_bytes(shape) if _get(config, "ckpt.save_hf", False) else 0
    final = memory.hf_model_bytes(shape)
    parts = [
        f"{kept} DeepSpeed checkpoint(s) kept (--ckpt.max_num {config.ckpt.max_num}) of "
        f"{memory.fmt_gb(models * memory.checkpoint_bytes(shape))}"
    ]
    if best:
        parts.append(f"a 'best' checkpoint by {best_metric or 'a metric OpenRLHF picks'} (--ckpt.best_metric_key)")
    if hf_copies:
        parts.append(f"{saves} Hugging Face copies never rotated (--ckpt.save_hf) {memory.fmt_gb(hf_copies)}")
    parts.append(f"the final model {memory.fmt_gb(final)}")
    total = deepspeed + hf_copies + final
    return (
        f"disk: {memory.fmt_gb(total)} = "
        + " + ".join(parts)
        + f" (in {config.ckpt.path} and {config.ckpt.output_dir})"
    )


def check_dataset_labels(config) -> List[str]:
    """Refusal if the prompt or eval datasets' labels would make the run train (or evaluate) on garbage."""
    lines = []
    for flag, spec, split in (
        ("--data.prompt_dataset", config.data.prompt_dataset, _get(config, "data.prompt_split", "train")),
        ("--eval.dataset", _get(config, "eval.dataset"), _get(config, "eval.split", "train")),
    ):
        if not spec:
            continue
        try:
            summary = labels.check_labels(spec, config.data.label_key, split=split)
        except labels.LabelError as err:
            raise Refusal(f"{flag}: {err}") from None
        if summary.get("checked"):
            lines.append(
                f"labels of {flag}: {summary['rows']} of {summary['total_rows']} checked, {summary['invalid']} the "
                f"reward cannot grade"
            )
        else:
            lines.append(f"labels of {flag}: not checked ({summary.get('reason', 'not a local file')})")
    return lines
