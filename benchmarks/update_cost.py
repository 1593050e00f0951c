"""Actor compute of one psr / nsr rollout batch in drop mode: samples masked vs samples removed, one run.

    .venv/bin/python benchmarks/update_cost.py [--repeats 3] [--threads N] [--fixed-micro-batches] [--smoke]

What is measured: the seconds the actor spends on ONE rollout batch, i.e. the old-log-prob forward
pass of the experience maker plus ``ppo_train`` (training forward + backward + optimiser steps), and
the tokens each of the two goes through the model with, when nsr keeps 100%, 75%, 50%, 25% and 15%
of the samples (the others are correct, so carry no gradient):

- masking: the adapter's masking path (what it does where OpenRLHF lays out the batch across a
  ring-attention or tensor-parallel group): the dropped samples stay in the batch with action mask
  0, the forward pass and the training run over every sample and OpenRLHF takes its fixed number of
  optimiser steps. Selected by switching ``drop_mode.removes_samples`` off for the run, so that
  everything else (batch sizes, layout) is identical.
- removal: the adapter's removal path (``removes_samples`` True): the trainer-side ``train_step``
  wrapper removes the dropped samples before the forward pass, ``split_kept_samples`` lays out the
  kept ones, and the actor trains on optimiser steps of ``--train.batch_size`` kept samples.

In the recipes' configuration by default: packed samples (``--ds.packing_samples``) and dynamic
batching (``--train.dynamic_batch_enable``, micro-batches of at most ``--train.max_tokens_per_gpu``
tokens; the rollout's forward by ``--rollout.max_tokens_per_gpu``); ``--fixed-micro-batches``
measures the fixed-size layout instead (padded micro-batches of ``--train.micro_batch_size``).

How: one process, OpenRLHF 0.11.2's own code for everything the two paths differ in.
``BasePPOTrainer.train_step`` (patched by ``openrlhf_nsr.apply()``) runs the real
``RemoteExperienceMaker`` (split, ``make_experience``, advantages), whose actor-group calls go, in
this process, to the real ``PolicyModelActor`` methods (``execute_batch``, ``forward``, ``append``,
``fit``) and so to ``Actor.forward`` and ``ActorPPOTrainer.ppo_train`` / ``training_step``. The
configuration is OpenRLHF's own, resolved by ``openrlhf_nsr.train_ppo_ray --dry_run``. Stand-ins,
as little as one process on CPU needs: Ray (one actor rank called directly; ``ray.put`` / ``ray.get``
pass values through), DeepSpeed (plain torch: loss / gas backward, SGD step at the accumulation
boundary DeepSpeed would take, including the one the removal path sets with
``set_gradient_accumulation_boundary``; with dynamic batching gas 1 and a step where OpenRLHF's
layout says), a one-process gloo group (OpenRLHF's dynamic layout all-reduces), the CUDA calls
OpenRLHF makes unconditionally (answered on CPU) and the tokenizer (decoding is not part of the
actor's compute). The model is a randomly initialised Qwen2 (3 layers, hidden 256, 2M parameters,
fp32, sdpa attention; packed rows get block-diagonal attention from their restarting position ids,
tests/test_packing.py) on a rollout of 64 samples (8 prompts x 8) of 64-320 tokens, 13k in all;
``--train.batch_size`` 16 (4 optimiser steps when all are kept) in micro-batches of at most 1,024
tokens (fixed layout: 4 samples): large enough that the model's compute, not Python, dominates.

Tokens are counted by a hook on the model itself (the real tokens of every call: attention-mask
tokens, or the packed row; no-grad calls are the old-log-prob forward, the others training), so
"removal puts exactly the kept samples' tokens through the model" is measured, not assumed. Seconds: each configuration runs ``--repeats``
times, masking and removal back to back in alternating order (A/B, B/A, ...), after the untimed
agreement pair below (the warm-up); the table gives medians of the process's CPU time and of the
wall-clock, and ratios as the median over those pairs of removal / masking (a pair runs under one
load). One torch thread by default (``--threads``: why, in its help); then the CPU time is the
compute itself whatever share of the machine other jobs take, and the headline uses it (with more
threads, the wall-clock: CPU time would count the threads' waiting).

Before timing, the 100%-kept runs of both paths are checked to give the same update (every
sample kept: the removal path must reduce to OpenRLHF's own schedule): shuffling is switched off for
that check only (``torch.randperm`` -> identity) so that both train the same micro-batches in the
same order, and the weights after the rollout batch are compared.

Expected wall-clock: about 2.5 minutes on 2 cores under light load (1m50s of CPU time); 5-6
minutes on a 2-core machine other jobs keep at load ~10 (where wall-clock ratios scatter: hence the
CPU-time headline).
``--smoke``: a tiny model and rollout, about 20 seconds, for the tests (timings meaningless there).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import socket
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Dict

import torch

from openrlhf_nsr import drop_mode, gpu_imports, openrlhf_patch, train_ppo_ray

FRACTIONS = (1.0, 0.75, 0.5, 0.25, 0.15)
HEADLINE_FRACTION = 0.25
PAD_ID = 0


@dataclass(frozen=True)
class Size:
    prompts: int
    n: int
    prompt_len: tuple  # (min, max) tokens, one per prompt
    response_len: tuple  # (min, max) tokens, one per sample
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    train_batch: int
    micro: int  # --train.micro_batch_size and --rollout.micro_batch_size (fixed layout)
    train_tokens: int  # --train.max_tokens_per_gpu (dynamic batching)
    rollout_tokens: int  # --rollout.max_tokens_per_gpu


FULL = Size(8, 8, (32, 64), (32, 256), 3, 256, 512, 4, 2, 1024, 16, 4, 1024, 2048)
SMOKE = Size(4, 4, (4, 8), (4, 16), 1, 32, 64, 2, 1, 64, 8, 2, 48, 96)
LR = 0.05  # plain SGD: the update is the gradient itself, so the agreement check sees any normaliser change
SEED = 0


# ── OpenRLHF, configured and imported as a run would ──


def _namespace(value):
    return SimpleNamespace(**{k: _namespace(v) for k, v in value.items()}) if isinstance(value, dict) else value


def resolved_args(size: Size, dynamic: bool) -> SimpleNamespace:
    """OpenRLHF's full configuration for these batch sizes, as ``train_ppo_ray --dry_run`` resolves it;
    ``dynamic``: the recipes' packing and dynamic batching (recipes/launch.sh)."""
    flags = {
        "--algo.advantage.estimator": "nsr",
        "--algo.advantage.ignored_samples": "drop",
        "--algo.kl.init_coef": "0",
        "--actor.model_name_or_path": "random-qwen2",
        "--actor.num_gpus_per_node": "1",
        "--data.prompt_dataset": "unused",
        "--reward.remote_url": "math_verify",
        "--rollout.batch_size": str(size.prompts),
        "--rollout.n_samples_per_prompt": str(size.n),
        "--rollout.micro_batch_size": str(size.micro),
        "--train.micro_batch_size": str(size.micro),
        "--train.batch_size": str(size.train_batch),
        "--ds.attn_implementation": "sdpa",
    }
    if dynamic:  # OpenRLHF then asks for flash-attention (CUDA); the model below is built with sdpa
        flags.update({"--train.max_tokens_per_gpu": str(size.train_tokens), "--vllm.num_engines": "1",
                      "--rollout.max_tokens_per_gpu": str(size.rollout_tokens)})  # fmt: skip
    switches = ["--ds.packing_samples", "--train.dynamic_batch_enable"] if dynamic else []
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = train_ppo_ray.main([item for pair in flags.items() for item in pair] + switches + ["--dry_run"])
    text = out.getvalue()
    if code != 0 or "\n{" not in text:
        raise RuntimeError(f"train_ppo_ray --dry_run failed (exit {code}):\n{text}")
    return _namespace(json.loads(text[text.index("\n{") + 1 :]))


def import_openrlhf():
    """The OpenRLHF modules, patched. Without flash-attn (CPU), its padding helpers that packing uses come
    from the tests' stub (tests/gpu_stubs/flash_attn: flash-attn's functions, taken from transformers);
    vLLM, if absent, is a placeholder that raises if called (OpenRLHF imports it, nothing here calls it)."""
    if "flash_attn" in gpu_imports.missing():
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "gpu_stubs"))
    openrlhf_patch.apply()
    with gpu_imports.placeholders(gpu_imports.missing()):
        from openrlhf.models import Actor
        from openrlhf.trainer import ppo_trainer
        from openrlhf.trainer.ppo_utils import experience_maker
        from openrlhf.trainer.ppo_utils.experience import Experience
        from openrlhf.trainer.ray import ppo_actor
    for module in (ppo_trainer, experience_maker, ppo_actor):
        module.logger.setLevel(logging.WARNING)  # OpenRLHF logs every step to stdout
    return SimpleNamespace(
        Actor=Actor,
        Experience=Experience,
        ppo_trainer=ppo_trainer,
        experience_maker=experience_maker,
        ppo_actor=ppo_actor,
    )


class _Ray:
    """Ray for one actor rank in this process: results are the values themselves."""

    @staticmethod
    def put(value):
        return value

    @staticmethod
    def get(refs):
        return refs


@contextlib.contextmanager
def _replaced(owner, name, value):
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextlib.contextmanager
def cpu_process(openrlhf):
    """OpenRLHF's Ray and unconditional CUDA calls, answered in this one CPU process."""
    with contextlib.ExitStack() as stack:
        for module in (openrlhf.ppo_trainer, openrlhf.experience_maker):
            stack.enter_context(_replaced(module, "ray", _Ray))
        stack.enter_context(_replaced(torch.cuda, "current_device", lambda: "cpu"))
        stack.enter_context(_replaced(torch.cuda, "synchronize", lambda device=None: None))
        yield


def one_process_group() -> None:
    """A gloo group of this one process: OpenRLHF's dynamic layout all-reduces over the data-parallel group."""
    import torch.distributed as dist

    if not dist.is_initialized():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)


class DeepSpeedStandIn:
    """The DeepspeedStrategy / engine calls ppo_train and training_step make, in plain torch (1 rank).

    As DeepSpeed: every micro-batch loss is scaled by 1 / gas, and the optimiser steps at the
    accumulation boundary, every gas micro-batches unless ``set_gradient_accumulation_boundary``
    (an engine method, given to the model here) set it.
    """

    def __init__(self, args, actor):
        from torch.distributed.device_mesh import init_device_mesh

        self.args = args
        world = args.actor.num_nodes * args.actor.num_gpus_per_node
        # dynamic batching: DeepSpeed's gradient accumulation is 1, OpenRLHF steps where its layout says
        self.dynamic = args.train.dynamic_batch_enable
        self.accumulated_gradient = (
            1 if self.dynamic else args.train.batch_size // (args.train.micro_batch_size * world)
        )
        self.ds_device_mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("dp",))
        self.ring_attn_group = None
        self.optimizer_steps = 0
        self._micro_steps = 0
        self._boundary = None
        self._grad_norm = 0.0
        actor.model.set_gradient_accumulation_boundary = self.set_gradient_accumulation_boundary

    def set_gradient_accumulation_boundary(self, flag):
        self._boundary = flag

    def is_rank_0(self):
        return False  # OpenRLHF's progress bars are for rank 0: none in the benchmark's output

    def all_reduce(self, data, op="mean"):
        return data

    def backward(self, loss, model, optimizer):
        (loss / self.accumulated_gradient).backward()

    def optimizer_step(self, optimizer, model, scheduler, name=None):
        if self.dynamic:
            boundary = True  # called only at the step's last micro-batch
        elif self._boundary is None:
            boundary = (self._micro_steps + 1) % self.accumulated_gradient == 0
        else:
            boundary = self._boundary
        self._micro_steps += 1
        if boundary:
            grads = [p.grad.flatten() for p in model.parameters() if p.grad is not None]
            self._grad_norm = torch.cat(grads).norm().item() if grads else 0.0
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()
            self.optimizer_steps += 1

    def get_grad_norm(self, model):
        return self._grad_norm


class InProcessActorGroup:
    """RayActorGroup with one actor rank, called in this process; times what the actor does (wall and CPU)."""

    def __init__(self, worker):
        self.worker = worker
        self.wall = defaultdict(float)
        self.cpu = defaultdict(float)

    def _timed(self, method_name, call):
        wall, cpu = time.perf_counter(), time.process_time()
        result = call()
        self.wall[method_name] += time.perf_counter() - wall
        self.cpu[method_name] += time.process_time() - cpu
        return [result]

    def async_run_method_batch(self, method_name, **kwargs):
        count = len(next(iter(kwargs.values())))
        # what RayActorGroup sends its one rank: the whole batch
        return self._timed(method_name, lambda: self.worker.execute_batch(method_name, kwargs, 0, count))

    def async_run_method(self, method_name, *args, **kwargs):
        return self._timed(method_name, lambda: getattr(self.worker, method_name)(*args, **kwargs))


class Tokenizer:
    """What the trainer and experience maker ask of the tokenizer: padding id and decoding (for logs)."""

    pad_token_id = PAD_ID

    def decode(self, ids, skip_special_tokens=False):
        return " ".join(str(int(i)) for i in torch.as_tensor(ids).flatten())

    def batch_decode(self, sequences, skip_special_tokens=False):
        return [self.decode(seq) for seq in sequences]


class TokenMeter:
    """Counts what goes through the model: no-grad calls are the old-log-prob forward, the others training.

    A sample's first token is its id (build_rollout), so the meter also knows which samples went through.
    """

    def __init__(self, model):
        self.reset()
        model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def reset(self):
        self.tokens = {"forward": 0, "train": 0}
        self.calls = {"forward": [], "train": []}  # per model call, the ids of its samples

    def samples(self, phase) -> set:
        return {i for call in self.calls[phase] for i in call}

    def _hook(self, module, args, kwargs):
        sequences = args[0] if args else kwargs["input_ids"]
        phase = "train" if torch.is_grad_enabled() else "forward"
        if kwargs.get("attention_mask") is None:  # packed: one row, each sample where its position restarts
            self.tokens[phase] += sequences.numel()
            starts = sequences[kwargs["position_ids"] == 0]
        else:
            self.tokens[phase] += int(kwargs["attention_mask"].sum())
            starts = sequences[:, 0]
        self.calls[phase].append([int(i) - 1 for i in starts])


# ── The workload ──


def build_model(size: Size, actor_cls, packing: bool):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(SEED)
    config = Qwen2Config(
        vocab_size=size.vocab, hidden_size=size.hidden, intermediate_size=size.intermediate,
        num_hidden_layers=size.layers, num_attention_heads=size.heads, num_key_value_heads=size.kv_heads,
        max_position_embeddings=1024, tie_word_embeddings=True, pad_token_id=PAD_ID,
    )  # fmt: skip
    model = Qwen2ForCausalLM(config)
    model.config._attn_implementation = "sdpa"
    model.config.use_cache = False  # as Actor(path) sets it; packed rows need a forward without a cache
    actor = actor_cls(model)
    actor.packing_samples = packing  # Actor(nn.Module) leaves it unset in 0.11.2 (only Actor(path) sets it)
    return actor


def build_rollout(size: Size, kept: set, experience_cls):
    """The rollout as OpenRLHF's SamplesGenerator leaves it: one Experience per sample, reward known.

    Same token ids on every call (seeded); nsr keeps the incorrect samples, so those in ``kept`` get
    reward 0 and the others 1. Token 0 is padding, token i + 1 starts sample i (its id for the meter).
    """
    g = torch.Generator().manual_seed(SEED)
    total = size.prompts * size.n
    first_free = total + 1
    samples = []
    for p in range(size.prompts):
        prompt_len = int(torch.randint(size.prompt_len[0], size.prompt_len[1] + 1, (1,), generator=g))
        prompt = torch.randint(first_free, size.vocab, (prompt_len,), generator=g)
        for j in range(size.n):
            sid = p * size.n + j
            response_len = int(torch.randint(size.response_len[0], size.response_len[1] + 1, (1,), generator=g))
            response = torch.randint(first_free, size.vocab, (response_len,), generator=g)
            sequence = torch.cat([torch.tensor([sid + 1]), prompt[1:], response])
            action = torch.zeros(len(sequence), dtype=torch.long)
            action[prompt_len:] = 1
            reward = torch.tensor([0.0 if sid in kept else 1.0])
            samples.append(
                experience_cls(
                    sequences=sequence.unsqueeze(0),
                    attention_mask=torch.ones(1, len(sequence), dtype=torch.long),
                    action_mask=action[1:].unsqueeze(0),  # shifted by one, as SamplesGenerator aligns it
                    prompts=[f"prompt {p}"],
                    labels=["0"],
                    images=[None],
                    mm_train_inputs=[None],
                    rewards=reward,
                    scores=reward.clone(),
                    response_length=torch.tensor([response_len]),
                    truncated=torch.tensor([False]),
                    total_length=torch.tensor([float(len(sequence))]),
                    info={
                        "response_clip_ratio": torch.tensor([False]),
                        "reward": reward.clone(),
                        "score": reward.clone(),
                    },
                )
            )
    return samples


def kept_sets(size: Size) -> Dict[float, set]:
    """The samples kept at each fraction: nested (the 25% ones are among the 50% ones), spread over prompts."""
    total = size.prompts * size.n
    order = torch.randperm(total, generator=torch.Generator().manual_seed(SEED + 1)).tolist()
    return {f: set(order[: max(1, round(f * total))]) for f in FRACTIONS}


# ── One rollout batch through OpenRLHF ──


class Harness:
    def __init__(self, size: Size, dynamic: bool):
        self.size = size
        one_process_group()
        self.openrlhf = import_openrlhf()
        self.args = resolved_args(size, dynamic)
        self.actor = build_model(size, self.openrlhf.Actor, packing=dynamic)
        self.initial = {k: v.detach().clone() for k, v in self.actor.state_dict().items()}
        self.meter = TokenMeter(self.actor.model)
        lengths = [int(s.attention_mask.sum()) for s in build_rollout(size, set(), self.openrlhf.Experience)]
        self.sample_tokens = lengths  # per sample id

    def tokens_of(self, samples) -> int:
        return sum(self.sample_tokens[i] for i in samples)

    def run(self, mode: str, kept: set) -> dict:
        """One rollout batch: train_step from the initial weights, masking or removing what nsr drops."""
        openrlhf, args = self.openrlhf, self.args
        self.actor.load_state_dict(self.initial)
        self.actor.zero_grad(set_to_none=True)
        strategy = DeepSpeedStandIn(args, self.actor)
        optimizer = torch.optim.SGD(self.actor.parameters(), lr=LR)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        worker_cls = openrlhf.ppo_actor.PolicyModelActor.__ray_metadata__.modified_class
        worker = worker_cls.__new__(worker_cls)  # the Ray actor's class; its methods, not a Ray process
        worker.strategy, worker.actor = strategy, self.actor
        # The replay buffer names cuda:<current_device> as its target device at construction (unused
        # on CPU), and the constructor ends with a distributed barrier: one rank, nothing to wait for.
        with (
            _replaced(torch.cuda, "current_device", lambda: 0),
            _replaced(openrlhf.ppo_actor, "torch_dist_barrier_and_cuda_sync", lambda: None),
        ):
            worker.trainer = openrlhf.ppo_actor.ActorPPOTrainer(
                strategy, self.actor, ema_model=None, actor_optim=optimizer, actor_scheduler=scheduler,
                micro_train_batch_size=args.train.micro_batch_size, tokenizer=Tokenizer(),
                eps_clip=args.actor.eps_clip, ema_beta=args.train.ema_beta, vllm_engines=None,
                dataloader_pin_memory=False,  # nothing to pin for without an accelerator
            )  # fmt: skip
        group = InProcessActorGroup(worker)
        trainer = openrlhf.ppo_trainer.BasePPOTrainer(
            SimpleNamespace(args=args), group, None, None, None, None, Tokenizer()
        )
        rollout = build_rollout(self.size, kept, openrlhf.Experience)
        self.meter.reset()
        switch = (
            _replaced(drop_mode, "removes_samples", lambda args: False)
            if mode == "masking"
            else contextlib.nullcontext()
        )
        with cpu_process(openrlhf), switch:
            start = time.perf_counter()
            trainer.train_step(rollout, 0)
            step_seconds = time.perf_counter() - start
        return {
            # the actor's compute: old-log-prob forward + fit (ppo_train)
            "cpu": group.cpu["forward"] + group.cpu["fit"],
            "wall": group.wall["forward"] + group.wall["fit"],
            "cpu_forward": group.cpu["forward"],
            "cpu_train": group.cpu["fit"],
            "step_seconds": step_seconds,  # the whole train_step, trainer side included (wall)
            "tokens": dict(self.meter.tokens),
            "calls": {k: list(v) for k, v in self.meter.calls.items()},
            "samples": {phase: self.meter.samples(phase) for phase in ("forward", "train")},
            "optimizer_steps": strategy.optimizer_steps,
            "weights": {k: v.detach().clone() for k, v in self.actor.state_dict().items()},
        }


def agreement(harness: Harness, kept: set) -> str:
    """Both paths at 100% kept, same micro-batches in the same order: the weights after the batch agree."""
    with _replaced(torch, "randperm", lambda n, *args, **kwargs: torch.arange(n)):
        masked = harness.run("masking", kept)
        removed = harness.run("removal", kept)
    if masked["calls"]["train"] != removed["calls"]["train"]:
        return "NOT CHECKED: the two paths trained different micro-batches (the harness no longer matches OpenRLHF)"
    diff = max((masked["weights"][k] - removed["weights"][k]).abs().max().item() for k in masked["weights"])
    update = max((masked["weights"][k] - harness.initial[k]).abs().max().item() for k in masked["weights"])
    # fp32 rounding of identical arithmetic in another order stays far below 1e-4 of the update; a
    # different normaliser or step boundary changes it by a factor
    same = update > 0 and diff <= 1e-4 * update and masked["optimizer_steps"] == removed["optimizer_steps"]
    return (
        f"{'agree' if same else 'DIFFER'}: same {len(masked['calls']['train'])} micro-batches in the same order, "
        f"{masked['optimizer_steps']} vs {removed['optimizer_steps']} optimiser steps; weights after the batch: "
        f"max |masking - removal| = {diff:.1e}, largest weight update {update:.1e}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed masking / removal pairs per kept fraction (default %(default)s)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default %(default)s: on a machine other jobs share, torch's "
                        "threads wait at every op for the ones descheduled, 5-10x slower on 2 busy cores; pass the "
                        "core count on an idle machine)")  # fmt: skip
    parser.add_argument("--fixed-micro-batches", action="store_true",
                        help="padded micro-batches of a fixed number of samples instead of the recipes' packing and "
                        "dynamic batching (default: off, the recipes' layout)")  # fmt: skip
    parser.add_argument("--smoke", action="store_true",
                        help="tiny model and rollout (tests): checks, not timings (default: off)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")

    default_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    size = SMOKE if args.smoke else FULL
    dynamic = not args.fixed_micro_batches
    harness = Harness(size, dynamic)
    total = size.prompts * size.n
    params = sum(p.numel() for p in harness.actor.parameters())
    print("update cost of one psr / nsr rollout batch in drop mode: masking vs removal (OpenRLHF 0.11.2, CPU)")
    print(
        f"model: random Qwen2, {size.layers} layers, hidden {size.hidden}, intermediate {size.intermediate}, "
        f"vocab {size.vocab}, {params:,} parameters, fp32, sdpa"
    )
    print(
        f"rollout: {total} samples ({size.prompts} prompts x {size.n}), {harness.tokens_of(range(total))} tokens "
        f"(prompts {size.prompt_len[0]}-{size.prompt_len[1]}, responses {size.response_len[0]}-"
        f"{size.response_len[1]}); train.batch_size {size.train_batch}; nsr"
    )
    if dynamic:
        print(
            f"layout: the recipes' (recipes/launch.sh): packed samples, dynamic batching, micro-batches of at most "
            f"{size.train_tokens} tokens (training) and {size.rollout_tokens} (old-log-prob forward)"
        )
    else:
        print(
            f"layout: padded micro-batches of {size.micro} samples (train and rollout), gas {size.train_batch // size.micro}"
        )
    print(
        f"torch threads: {torch.get_num_threads()} (set by --threads, default 1; torch's default on this machine "
        f"{default_threads}, {os.cpu_count()} cores)"
    )

    kept = kept_sets(size)
    # Also the warm-up (allocator, first calls) of both paths: untimed.
    print(f"100% kept, masking vs removal update: {agreement(harness, kept[1.0])}")

    runs = {(f, mode): [] for f in FRACTIONS for mode in ("masking", "removal")}
    for repeat in range(args.repeats):
        for f in FRACTIONS:
            for mode in ("masking", "removal") if repeat % 2 == 0 else ("removal", "masking"):
                runs[(f, mode)].append(harness.run(mode, kept[f]))

    def median(f, mode, key):
        return statistics.median(r[key] for r in runs[(f, mode)])

    def ratio(f, key):  # over the back-to-back pairs: each pair ran under the same load
        return statistics.median(r[key] / m[key] for m, r in zip(runs[(f, "masking")], runs[(f, "removal")]))

    # One thread: the process's CPU time is the compute itself, whatever share of the machine other jobs
    # take (wall time on a busy machine mostly measures them). More threads: CPU time counts their
    # waiting too, so wall time is the measure (on an idle machine).
    clock = "cpu" if torch.get_num_threads() == 1 else "wall"
    print(
        f"\nseconds: the actor's old-log-prob forward + ppo_train, median of {args.repeats}, in process CPU time "
        f"and wall-clock; ratio: removal / masking, median over the back-to-back pairs. Headline clock: {clock}"
    )
    print(
        f"{'kept':>5} {'samples':>8} {'tokens':>7} | {'fwd tokens':>17} | {'train tokens':>17} | "
        f"{'CPU seconds':>15} {'ratio':>5} | {'wall seconds':>15} {'ratio':>5}"
    )
    both = f"{'masking':>8} {'removal':>8}"
    print(f"{'':>22} | {both} | {both} | {'masking':>7} {'removal':>7} {'':>5} | {'masking':>7} {'removal':>7}")
    problems = []
    all_tokens = harness.tokens_of(range(total))
    for f in FRACTIONS:
        masked, removed = runs[(f, "masking")], runs[(f, "removal")]
        kept_tokens = harness.tokens_of(kept[f])
        for mode, want_samples, want_tokens in (
            ("masking", set(range(total)), all_tokens),
            ("removal", kept[f], kept_tokens),
        ):
            for r in runs[(f, mode)]:
                for phase in ("forward", "train"):
                    if r["tokens"][phase] != want_tokens or r["samples"][phase] != want_samples:
                        problems.append(f"{mode} at {f:.0%} kept: {phase} went through other samples than expected")
        print(
            f"{f:>5.0%} {len(kept[f]):>3}/{total:<4} {kept_tokens:>7} | "
            f"{masked[0]['tokens']['forward']:>8} {removed[0]['tokens']['forward']:>8} | "
            f"{masked[0]['tokens']['train']:>8} {removed[0]['tokens']['train']:>8} | "
            f"{median(f, 'masking', 'cpu'):>7.2f} {median(f, 'removal', 'cpu'):>7.2f} {ratio(f, 'cpu'):>5.2f} | "
            f"{median(f, 'masking', 'wall'):>7.2f} {median(f, 'removal', 'wall'):>7.2f} {ratio(f, 'wall'):>5.2f}"
        )
    h = HEADLINE_FRACTION
    print(
        f"\nat {h:.0%} kept, CPU seconds: forward {median(h, 'masking', 'cpu_forward'):.2f} -> "
        f"{median(h, 'removal', 'cpu_forward'):.2f}, ppo_train {median(h, 'masking', 'cpu_train'):.2f} -> "
        f"{median(h, 'removal', 'cpu_train'):.2f}; optimiser steps {runs[(h, 'masking')][0]['optimizer_steps']} -> "
        f"{runs[(h, 'removal')][0]['optimizer_steps']}; whole train_step (wall) {median(h, 'masking', 'step_seconds'):.2f}"
        f" -> {median(h, 'removal', 'step_seconds'):.2f}"
    )
    print(f"token accounting (removal = exactly the kept samples' tokens, masking = all): {problems or 'as expected'}")
    layout = "packing + dynamic batching" if dynamic else "fixed micro-batches"
    print(f"update cost with {h:.0%} of samples kept ({layout}): {ratio(h, clock):.2f} of the masked cost")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
