"""What a run costs on a GPU and on disk, from the model's shape: the estimates ``--dry_run`` prints.

The largest single cost of training with OpenRLHF 0.11.2 is not the model but the vocabulary:
``Actor.forward`` casts the logits of the whole (packed) micro-batch to fp32 (``models/actor.py``,
"PR 634"), and with ``--actor.entropy_coef`` set (the recipes: 1e-4) it computes and backpropagates
the full-vocabulary entropy (``models/utils.py: compute_entropy``). For a micro-batch of N tokens
and a vocabulary of V, the training step holds at its peak about ``LOGIT_BYTES_TRAIN`` bytes per
token and vocabulary entry (the fp32 logits, their softmax and the gradient through both, measured
by benchmarks/gpu_memory_check.py); the no-grad forward of the experience maker (old log-probs,
``--rollout.max_tokens_per_gpu`` tokens) holds ``LOGIT_BYTES_FORWARD``. Everything else, per GPU:

- model states, ZeRO-3 over the actor's G GPUs: bf16 weights (2 bytes / parameter), fp32 master
  weights and gradients (4 + 4), Adam's two moments (8) = ``STATE_BYTES`` per parameter / G;
- the layer DeepSpeed gathers to compute (its full bf16 weights, twice: one computing, one prefetched)
  and the output layer, gathered whole with its bf16 gradient;
- activations with gradient checkpointing: each layer's input (N x hidden x 2 bytes x layers), and
  one layer recomputed in the backward pass (``LAYER_ACTIVATIONS`` x hidden + 4 x MLP width, bf16).

recipes/README.md ("Memory per GPU") writes the same sums out for the recipes' models. The numbers
are estimates for planning and refusing what cannot fit, not a guarantee: CUDA's allocator
fragments, NCCL and the sleeping vLLM engine keep a few GB (``RESERVED_GB``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

GB = 1e9  # GB as GPU makers count them (an "80 GB" H100 holds 85.5e9 bytes: the estimate keeps the difference)
STATE_BYTES = 2 + 4 + 4 + 8  # bf16 weight, fp32 master weight, fp32 gradient, Adam m and v
# Peak bytes per token x vocabulary entry of the logits path, measured through OpenRLHF's Actor by
# benchmarks/gpu_memory_check.py (CPU, bf16, its log-prob path without flash-attn's fused cross
# entropy: 28.1 and 12.0). Training: the fp32 logits (4) and the entropy's softmax (4) held for the
# backward pass, in which up to five more fp32 vocabulary-sized tensors (the gradients of the
# entropy's terms and of the log-probs' gather and logsumexp, and their sums) are alive at once.
LOGIT_BYTES_TRAIN = 28
# Forward only (no gradient): the fp32 logits (4), the entropy's softmax (4) and its product (4).
LOGIT_BYTES_FORWARD = 12
LAYER_ACTIVATIONS = 10  # hidden-sized bf16 tensors one decoder layer keeps for its backward pass
RESERVED_GB = 6.0  # CUDA context, NCCL buffers, the sleeping vLLM engine, allocator fragmentation


@dataclass(frozen=True)
class ModelShape:
    vocab: int
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    tied_embeddings: bool

    @property
    def layer_parameters(self) -> int:
        attention = self.hidden * self.head_dim * (2 * self.heads + 2 * self.kv_heads)  # q, o; k, v
        return attention + 3 * self.hidden * self.intermediate + 2 * self.hidden  # gate, up, down; norms

    @property
    def parameters(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return embeddings + self.layers * self.layer_parameters + self.hidden

    @classmethod
    def from_config(cls, config: dict) -> "ModelShape":
        heads = config["num_attention_heads"]
        return cls(
            vocab=config["vocab_size"],
            hidden=config["hidden_size"],
            layers=config["num_hidden_layers"],
            intermediate=config["intermediate_size"],
            heads=heads,
            kv_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        )


# The recipes' models (their config.json on the hub), for a --dry_run that cannot read the hub.
KNOWN_MODELS: Dict[str, ModelShape] = {
    "Qwen/Qwen2.5-Math-7B": ModelShape(152064, 3584, 28, 18944, 28, 4, 128, False),
    "Qwen/Qwen3-4B": ModelShape(151936, 2560, 36, 9728, 32, 8, 128, True),
    "meta-llama/Llama-3.1-8B-Instruct": ModelShape(128256, 4096, 32, 14336, 32, 8, 128, False),
}


def model_shape(name_or_path: str) -> Optional[ModelShape]:
    """The shape of a local model folder (its config.json) or of a recipe's hub model; None if unknown."""
    config = Path(name_or_path) / "config.json"
    if config.is_file():
        data = json.loads(config.read_text())
        return ModelShape.from_config(data.get("text_config", data))
    return KNOWN_MODELS.get(name_or_path)


def training_bytes(shape: ModelShape, tokens: int, gpus: int) -> Dict[str, float]:
    """Peak bytes on one GPU of one training micro-batch of ``tokens`` tokens (ZeRO-3 over ``gpus``)."""
    output_layer = shape.vocab * shape.hidden
    return {
        "model states (ZeRO-3)": STATE_BYTES * shape.parameters / gpus,
        "gathered weights": 2 * 2 * shape.layer_parameters + 2 * 2 * output_layer,
        "activations (checkpointed)": tokens * shape.hidden * 2 * shape.layers
        + tokens * (LAYER_ACTIVATIONS * shape.hidden + 4 * shape.intermediate) * 2,
        "logits, entropy and their gradient": tokens * shape.vocab * LOGIT_BYTES_TRAIN,
        "reserved": RESERVED_GB * GB,
    }


def forward_bytes(shape: ModelShape, tokens: int, gpus: int) -> Dict[str, float]:
    """Peak bytes on one GPU of the no-grad log-prob forward of ``tokens`` tokens."""
    return {
        "model states (ZeRO-3)": STATE_BYTES * shape.parameters / gpus,
        "gathered weights": 2 * 2 * shape.layer_parameters + 2 * shape.vocab * shape.hidden,
        "activations": tokens * (LAYER_ACTIVATIONS * shape.hidden + 4 * shape.intermediate) * 2,
        "logits and entropy": tokens * shape.vocab * LOGIT_BYTES_FORWARD,
        "reserved": RESERVED_GB * GB,
    }


def largest_fitting(shape: ModelShape, gpus: int, gpu_gb: float, forward: bool = False, step: int = 1000) -> int:
    """The largest token budget (a multiple of ``step``) whose estimate fits ``gpu_gb``; 0 if none."""
    cost = forward_bytes if forward else training_bytes
    fixed = sum(cost(shape, 0, gpus).values())
    per_token = sum(cost(shape, 1, gpus).values()) - fixed
    room = gpu_gb * GB - fixed
    return max(0, int(room / per_token) // step * step) if room > 0 else 0


def checkpoint_bytes(shape: ModelShape, with_optimizer: bool = True) -> float:
    """One DeepSpeed checkpoint (all ranks together): weights, and fp32 master copy + Adam when kept."""
    return shape.parameters * ((2 + 4 + 8) if with_optimizer else 2)


def hf_model_bytes(shape: ModelShape) -> float:
    return 2 * shape.parameters  # bf16 safetensors


def fmt_gb(value: float) -> str:
    return f"{value / GB:.1f} GB" if value < 1e12 else f"{value / 1e12:.2f} TB"


# The reference's budgets (run_qwen2.5-math-7b_psr_nsr.sh: ppo_max_token_len_per_gpu=48000,
# log_prob_max_token_len_per_gpu=64000, on H200s with verl): never more than these.
REFERENCE_TRAIN_TOKENS, REFERENCE_ROLLOUT_TOKENS = 48000, 64000


def budgets(shape: ModelShape, gpus: int, gpu_gb: float) -> tuple:
    """(training, rollout forward) tokens per GPU for ``--train`` / ``--rollout.max_tokens_per_gpu``:
    the largest the estimate fits in ``gpu_gb``, at most the reference's."""
    return (
        min(REFERENCE_TRAIN_TOKENS, largest_fitting(shape, gpus, gpu_gb)),
        min(REFERENCE_ROLLOUT_TOKENS, largest_fitting(shape, gpus, gpu_gb, forward=True)),
    )


def main(argv=None) -> int:
    """``python -m openrlhf_nsr.memory --model M --gpus N --gpu-memory-gb G``: the two token budgets
    (what recipes/launch.sh sets), or exit 2 for a model whose shape is unknown."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m openrlhf_nsr.memory",
        description="Print two numbers: the training and the log-prob (rollout) token budgets per GPU, the largest "
        "that fit the GPU's memory by the estimate of recipes/README.md ('Memory per GPU'), at most the reference's "
        "48000 / 64000 (what recipes/launch.sh sets). 0 when not even one token fits.",
    )
    parser.add_argument(
        "--model", required=True, help="local model folder (its config.json) or a recipe's hub id (required)"
    )
    parser.add_argument(
        "--gpus", type=int, required=True, help="GPUs the actor's ZeRO-3 states are split over (required)"
    )
    parser.add_argument("--gpu-memory-gb", type=float, default=80.0, help="memory of one GPU in GB of 10^9 bytes "
                        "(default 80)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.model.startswith(("/", "./", "../")) and not Path(args.model).is_dir():
        parser.error(f"--model {args.model}: no such folder")
    shape = model_shape(args.model)
    if shape is None:
        print(
            f"openrlhf_nsr.memory: unknown model {args.model!r}: give a local folder with a config.json, or one of "
            f"{', '.join(KNOWN_MODELS)}; or set TRAIN_TOKENS_PER_GPU and ROLLOUT_TOKENS_PER_GPU yourself",
            file=sys.stderr,
        )
        return 2
    if args.gpus < 1 or args.gpu_memory_gb <= 0:
        parser.error(f"need --gpus >= 1 and --gpu-memory-gb > 0, got {args.gpus} and {args.gpu_memory_gb:g}")
    train, rollout = budgets(shape, args.gpus, args.gpu_memory_gb)
    if not train or not rollout:
        print(f"openrlhf_nsr.memory: the model's states alone do not fit {args.gpu_memory_gb:g} GB per GPU over "
              f"{args.gpus} GPUs", file=sys.stderr)  # fmt: skip
    print(train, rollout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
