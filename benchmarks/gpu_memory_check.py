"""Peak memory of one training micro-batch through OpenRLHF's Actor, beside openrlhf_nsr.memory's estimate.

    python benchmarks/gpu_memory_check.py --model qwen2.5-math-7b [--tokens 48000] [--layers 2]
    python benchmarks/gpu_memory_check.py --toy            # CPU-sized (what tests/test_preflight.py runs)

What is measured: the recipes' training step on one GPU, as ``ActorPPOTrainer.training_step``
runs it: ``Actor.forward`` of one micro-batch of ``--tokens`` tokens (one packed row) with
``return_output=True, return_entropy=True`` (``--actor.entropy_coef`` is set in every recipe), so
OpenRLHF's fp32 cast of the logits and its full-vocabulary entropy; a REINFORCE loss on the
log-probs (advantage -1, the token-mean) minus 1e-4 x the entropy; ``backward()``. Then the same
forward under ``torch.no_grad()`` (the experience maker's old log-probs). The model is a randomly
initialised copy of the recipe's model with its real vocabulary, hidden size and MLP width but
``--layers`` decoder layers (bf16 weights, gradient checkpointing as the recipes set it), so the
logits path is full size and the per-layer terms scale by layers. No DeepSpeed: the model states
(``memory.STATE_BYTES`` per parameter over the GPUs) are the estimate's only term not measured.

Without OpenRLHF (a bare GPU machine) the script replicates ``Actor.forward``'s steps (``ActorForward``,
the same tensors at the same sizes; at toy size both give the same peaks, tests/test_preflight.py).

Printed: the measured peak above what was allocated before the step (weights and, for training,
their gradients), next to the estimate's activations + logits terms for the same shape, and their
ratio. On CUDA the peak is ``torch.cuda.max_memory_allocated``; elsewhere the peak of the bytes of
live tensor storages, followed operator by operator (a ``TorchDispatchMode``). Needs torch,
transformers (openrlhf optional); a minute or two on one GPU at the recipes' sizes (2 layers).
"""

from __future__ import annotations

import argparse
import sys
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from openrlhf_nsr import memory

MODELS = {
    "qwen2.5-math-7b": "Qwen/Qwen2.5-Math-7B",
    "qwen3-4b": "Qwen/Qwen3-4B",
    "llama3.1-8b-instruct": "meta-llama/Llama-3.1-8B-Instruct",
}
TOY = memory.ModelShape(
    vocab=16384, hidden=64, layers=2, intermediate=128, heads=4, kv_heads=2, head_dim=16, tied_embeddings=False
)


class ActorForward(torch.nn.Module):
    """Where OpenRLHF is not installed (a bare GPU machine: torch and transformers only): the steps of
    OpenRLHF 0.11.2's ``Actor.forward`` (models/actor.py, lines 265-300) for one unpacked row, with
    ``return_output=True, return_entropy=True``: fp32 logits, ``compute_entropy``, and the log-probs of
    ``log_probs_from_logits`` (flash-attn's fused cross entropy where installed, else gather minus the
    chunked logsumexp). ``--require-openrlhf`` refuses to run without the real one."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def gradient_checkpointing_enable(self):
        self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def forward(self, sequences, action_mask, attention_mask=None, return_output=True, return_entropy=True):
        position_ids = attention_mask.long().cumsum(-1) - 1
        output = self.model(sequences, attention_mask=attention_mask, position_ids=position_ids)
        output["logits"] = output["logits"].to(torch.float32)
        logits = output["logits"]
        probabilities = torch.nn.functional.softmax(logits, dim=-1)
        output.entropy = (torch.logsumexp(logits, dim=-1) - torch.sum(probabilities * logits, dim=-1))[:, :-1]
        labels = torch.roll(sequences, shifts=-1, dims=1)
        try:
            from flash_attn.ops.triton.cross_entropy import cross_entropy_loss

            log_probs = -cross_entropy_loss(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))[0].view(
                *labels.shape
            )
        except ImportError:
            picked = torch.gather(logits, dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)
            flat = logits.reshape(-1, logits.shape[-1])
            lse = torch.zeros(flat.shape[0], device=logits.device, dtype=logits.dtype)
            for start in range(0, flat.shape[0], 1024):
                lse[start : start + 1024] = torch.logsumexp(flat[start : start + 1024], dim=-1)
            log_probs = picked - lse.view(*labels.shape)
        action_log_probs = log_probs[:, :-1][:, -action_mask.shape[1] :] * action_mask.float()
        return action_log_probs, output


def openrlhf_actor():
    """OpenRLHF's Actor class, or None where OpenRLHF is not installed."""
    from openrlhf_nsr import gpu_imports

    try:
        with gpu_imports.placeholders(gpu_imports.missing()):  # OpenRLHF imports flash-attn's padding helpers
            from openrlhf.models import Actor
    except ImportError:
        return None
    return Actor


def build_actor(shape: memory.ModelShape, layers: int, device, dtype, use_openrlhf: bool = True):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    Actor = openrlhf_actor() if use_openrlhf else None

    config = Qwen2Config(
        vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
        num_hidden_layers=layers, num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
        head_dim=shape.head_dim, tie_word_embeddings=shape.tied_embeddings, max_position_embeddings=1 << 17,
        use_cache=False,
    )  # fmt: skip
    config._attn_implementation = "sdpa"
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(dtype)
    if Actor is None:
        actor = ActorForward(model)
    else:
        actor = Actor(model)
        actor.packing_samples = False  # one row: a packed micro-batch's layout, without flash-attn's helpers
    actor.gradient_checkpointing_enable()
    model.train()
    return actor


class _LiveTensorBytes(TorchDispatchMode):
    """Bytes of the tensor storages alive, and their peak: every storage an operator returns while
    the mode is on (forward and backward) counts until it is freed. Off CUDA this is what
    ``max_memory_allocated`` measures there (a kernel's internal scratch space aside)."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.storages = set()

    def _freed(self, key, size):
        self.storages.discard(key)
        self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                storage = value.untyped_storage()
                key, size = storage.data_ptr(), storage.nbytes()
                if size and key not in self.storages:
                    self.storages.add(key)
                    self.live += size
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._freed, key, size)  # torch keeps one Python object per storage
        return out


def peak_bytes(fn, device) -> float:
    """Peak bytes allocated by torch while ``fn()`` runs, above what was allocated before it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    meter = _LiveTensorBytes()
    with meter:
        fn()
    return meter.peak


def measured_terms(estimate: dict) -> float:
    """The estimate's terms this script measures: activations and the logits path."""
    return sum(value for name, value in estimate.items() if name.startswith(("activations", "logits")))


def measure(
    shape: memory.ModelShape, tokens: int, layers: int, device: str, dtype=torch.bfloat16, use_openrlhf: bool = True
) -> dict:
    torch.manual_seed(0)
    actor = build_actor(shape, layers, device, dtype, use_openrlhf)
    sequences = torch.randint(0, shape.vocab, (1, tokens), device=device)
    attention_mask = torch.ones_like(sequences)
    action_mask = torch.ones(1, tokens - 1, dtype=torch.bool, device=device)
    kwargs = dict(attention_mask=attention_mask, return_output=True, return_entropy=True)

    def train_step():
        log_probs, output = actor(sequences, action_mask, **kwargs)
        loss = log_probs.mean() - 1e-4 * output.entropy.mean()  # advantage -1, token-mean; entropy bonus
        del output
        loss.backward()

    def forward_step():
        with torch.no_grad():
            actor(sequences, action_mask, **kwargs)

    train_step()  # gradients allocated once: resident from then on, as in training
    small = memory.ModelShape(**{**vars(shape), "layers": layers})
    return {
        "actor": type(actor).__module__ + "." + type(actor).__name__,
        "train": peak_bytes(train_step, device),
        "forward": peak_bytes(forward_step, device),
        "estimate_train": measured_terms(memory.training_bytes(small, tokens, 1)),
        "estimate_forward": measured_terms(memory.forward_bytes(small, tokens, 1)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS),
                        help="a recipe's model, its real vocabulary and widths (default: none; give --model or "
                        "--toy)")  # fmt: skip
    parser.add_argument("--toy", action="store_true",
                        help="a CPU-sized shape instead, vocabulary 16,384, hidden 64 (default: off)")  # fmt: skip
    parser.add_argument("--tokens", type=int, default=None,
                        help="tokens in the micro-batch (default: the recipe's training budget on 8 GPUs of 80 GB, "
                             "as python -m openrlhf_nsr.memory gives it; --toy: 2048)")  # fmt: skip
    parser.add_argument("--layers", type=int, default=2,
                        help="decoder layers of the random model (default %(default)s)")  # fmt: skip
    parser.add_argument("--device", default=None,
                        help="where to run (default: cuda where there is one, else cpu)")  # fmt: skip
    parser.add_argument("--require-openrlhf", action="store_true",
                        help="refuse to replicate Actor.forward where OpenRLHF is not installed (default: off, "
                        "replicate it)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if openrlhf_actor() is None:
        if args.require_openrlhf:
            parser.error("OpenRLHF is not installed here (pip install openrlhf==0.11.2 --no-deps)")
        print("OpenRLHF is not installed: its Actor.forward steps are replicated (ActorForward in this script)")
    if args.toy == bool(args.model):
        parser.error("give one of --model NAME or --toy")
    shape = TOY if args.toy else memory.KNOWN_MODELS[MODELS[args.model]]
    tokens = args.tokens or (2048 if args.toy else memory.budgets(shape, 8, 80)[0])
    if tokens < 2 or args.layers < 1:
        parser.error(f"need --tokens >= 2 and --layers >= 1, got --tokens {tokens} --layers {args.layers}")
    start = time.perf_counter()
    print(f"measuring {tokens} tokens on {args.device} (on CPU at a real vocabulary: many minutes) ...", flush=True)
    try:
        result = measure(shape, tokens, args.layers, args.device)
    except torch.OutOfMemoryError as err:
        print(f"out of memory at {tokens} tokens on {args.device} ({str(err).splitlines()[0]}): try fewer --tokens",
              file=sys.stderr)  # fmt: skip
        return 1
    print(
        f"{args.model or 'toy'}: {tokens} tokens, {args.layers} layers, vocabulary {shape.vocab}, "
        f"hidden {shape.hidden}, on {args.device}, through {result['actor']}"
    )
    print("  activations and the logits path only: the estimate's terms that grow with the tokens (the dry run")
    print("  adds the model states over the GPUs, the gathered weights and 6 GB reserved)")
    for phase in ("train", "forward"):
        measured, estimate = result[phase], result[f"estimate_{phase}"]
        print(
            f"  {phase:8s} measured {memory.fmt_gb(measured)}  estimate {memory.fmt_gb(estimate)}  "
            f"estimate / measured {estimate / measured:.2f}"
        )
    print(f"  ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
