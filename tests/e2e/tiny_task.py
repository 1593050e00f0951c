"""The end-to-end run's model and data, built on the spot (no hub download is possible here).

- A byte-level tokenizer with no merges (256 byte tokens + 3 specials): transformers 5 rebuilds
  a ``qwen2`` model's tokenizer as its own byte-level class, which keeps such a vocabulary intact
  (a character-level one would lose its spaces); ``build`` checks the round trip.
- A tiny Qwen3 (2 layers, width 64, 4 attention heads of size 64) briefly trained to answer ``a+b`` (a, b in 0..9) in
  ``\\boxed{}``, so that sampled at temperature 1 it is right on some samples and wrong on others
  (every objective gets gradient), and to answer ``say 1`` with 1, which it gets right almost
  always (a batch in which every sample is correct).
- Prompt sets as OpenRLHF reads them (``--data.input_key prompt --data.label_key answer``), with
  the paper's ``qwen`` template already applied (as ``openrlhf_nsr.prepare_data`` writes them), and
  evaluation sets for ``openrlhf_nsr.eval`` and ``benchmarks/eval_checkpoints.sh``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from openrlhf_nsr import data

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
BUILD_VERSION = 6  # bump when anything below changes what is built
STEPS, BATCH, LR, SEED = 400, 32, 5e-3, 0


def prompt_text(question: str) -> str:
    """The paper's ``qwen`` template, as recipes/ and ``openrlhf_nsr.eval --template qwen`` apply it."""
    return data.apply_template("qwen", question)


def add_problems():
    return [(f"{a}+{b}", str(a + b)) for a in range(10) for b in range(10)]


def easy_problems():
    return [("say 1", "1")]


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate(alphabet)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(SPECIAL)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )


def _check_round_trip(tokenizer, texts):
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        back = tokenizer.decode(ids, skip_special_tokens=False)
        if back != text:
            raise RuntimeError(f"tokenizer round trip changed {text!r} into {back!r}")


def is_built(folder: Path) -> bool:
    stamp = Path(folder) / "build.json"
    return stamp.exists() and json.loads(stamp.read_text()).get("version") == BUILD_VERSION


def write_latex_golds(folder: Path) -> Path:
    """``train.jsonl`` with every gold written ``\\sqrt{N^2}``: math-verify still equals it to N, but
    it is neither a number nor written as the model writes it, so the reward's fast path cannot
    decide it and every sample goes to a grading worker (what the grading-fault run needs)."""
    rows = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    path = folder / "train_latex_golds.jsonl"
    _write_jsonl(path, [dict(row, answer=f"\\sqrt{{{int(row['answer']) ** 2}}}") for row in rows])
    return path


def build(folder: Path) -> Path:
    """Build (or reuse) the model, the tokenizer and the prompt sets under ``folder``."""
    folder = Path(folder)
    if is_built(folder):
        write_latex_golds(folder)
        return folder
    import pandas as pd
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    model_dir = folder / "model"
    tokenizer = _tokenizer()
    torch.manual_seed(SEED)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, head_dim=64,
        # heads of size 64: vLLM's CPU attention takes 32, 64, 80, ... (not 16); Qwen3, not Qwen2, since vLLM's
        # Qwen2 derives the head size from the width (64 / 4 = 16) while Qwen3 reads head_dim
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )  # fmt: skip
    model = Qwen3ForCausalLM(config)
    problems = add_problems() + easy_problems() * 20
    texts = [(prompt_text(q), f"\\boxed{{{a}}}<|im_end|>") for q, a in problems]
    _check_round_trip(tokenizer, [p + r for p, r in texts])
    _train(model, tokenizer, texts)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    reloaded = AutoTokenizer.from_pretrained(model_dir)  # what OpenRLHF and the engine will load
    _check_round_trip(reloaded, [p + r for p, r in texts])

    rows = lambda items: [{"prompt": prompt_text(q), "answer": a} for q, a in items]  # noqa: E731
    rng = random.Random(SEED)
    _write_jsonl(folder / "train.jsonl", rows(rng.sample(add_problems(), 100)))  # OpenRLHF reads the first N
    _write_jsonl(folder / "easy.jsonl", rows(easy_problems() * 8))
    # openrlhf_nsr.eval reads flat rows (problem / answer); the benchmark launcher reads its three
    # datasets from DATA_DIR/<name>_test.parquet: the same few problems stand in for each
    evaluation = pd.DataFrame([{"problem": q, "answer": a} for q, a in rng.sample(add_problems(), 6)])
    for name in ("math", "aime2025", "amc23"):
        evaluation.to_parquet(folder / f"{name}_test.parquet")
    write_latex_golds(folder)
    (folder / "build.json").write_text(json.dumps({"version": BUILD_VERSION, "model": str(model_dir)}))
    return folder


def _train(model, tokenizer, texts):
    """Next-token loss on the responses only, 400 AdamW steps of 32 sequences (about 1 minute on 2 cores, once: the
    build is cached)."""
    encoded = []
    for prompt, response in texts:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r = tokenizer(response, add_special_tokens=False)["input_ids"]
        encoded.append((p + r, len(p)))
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), tokenizer.pad_token_id)
    labels = torch.full((len(encoded), width), -100)
    for row, (tokens, start) in enumerate(encoded):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        labels[row, start : len(tokens)] = torch.tensor(tokens[start:])
    attention = (torch.arange(width)[None] < torch.tensor([len(t) for t, _ in encoded])[:, None]).long()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(STEPS):
        batch = torch.randint(0, len(encoded), (BATCH,), generator=generator)
        loss = model(input_ids=ids[batch], attention_mask=attention[batch], labels=labels[batch]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def _write_jsonl(path: Path, rows) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
