"""The paper's datasets and prompt templates (docs/paper.md §2, §3).

Datasets are named (``math``, ``aime2025``, ``amc23``, ``math500``, ``math_train``) and loaded
from their Hugging Face hub id, or from a local parquet / jsonl file given as ``name=path`` (or a
bare path). Rows in the paper's verl layout (``prompt`` = [{"role": "user", "content": problem}],
``reward_model.ground_truth.target``) and flat rows (``problem`` / ``question`` and ``answer`` /
``target``, or a ``solution`` ending in ``\\boxed{}``) are both read.

Labels (``label="auto"``, the default): when a row carries a reference solution (MATH), the
content of its last ``\\boxed{}``, else its target / answer. The paper's ``target`` column is a
string-normalised copy of that answer (spaces, ``\\text{}`` and units removed, and the ``\\\\``
row separators of matrices collapsed to ``\\``, which no LaTeX parser reads): fine for the
reference code's string comparison, wrong for math-verify on about 2% of MATH (see
tests/test_reward.py). ``label="target"`` keeps the column as it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

from openrlhf_nsr.reward import last_boxed

# name -> (hub id, split)
HUB_DATASETS: Dict[str, Tuple[str, str]] = {
    "math": ("TianHongZXY/MATH", "test"),  # the full 5,000-problem MATH test set (docs/paper.md §3)
    "aime2025": ("TianHongZXY/AIME2025", "test"),
    "amc23": ("TianHongZXY/amc23", "test"),
    "math500": ("HuggingFaceH4/MATH-500", "test"),
    "math_train": ("TianHongZXY/MATH", "train"),  # 7,500 training problems (docs/paper.md §2)
}

_INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."
# Raw prompt strings of the paper's reference code (docs/paper.md §2); {input} = the problem.
TEMPLATES: Dict[str, str] = {
    "qwen": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{input}"
    + _INSTRUCTION
    + "<|im_end|>\n<|im_start|>assistant\n",
    "llama": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{input}" + _INSTRUCTION + "<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n",
}
TEMPLATES["qwen3_no_thinking"] = TEMPLATES["qwen"] + "<think>\n\n</think>\n"
CHAT_TEMPLATE = "chat"  # the model's own chat template, applied by its tokenizer
TEMPLATE_NAMES = tuple(TEMPLATES) + (CHAT_TEMPLATE,)


class Problem(NamedTuple):
    id: str
    problem: str
    answer: str  # the gold label (see ``label``)
    solution: Optional[str] = None  # the reference solution, where the dataset has one (MATH)
    target: Optional[str] = None  # the dataset's own answer column, as it is


def check_template(name: str) -> str:
    if name not in TEMPLATE_NAMES:
        raise ValueError(f"unknown template {name!r}; choose one of: {', '.join(TEMPLATE_NAMES)}")
    return name


def apply_template(name: str, problem: str, tokenizer=None) -> str:
    """The prompt string for ``problem``: one of the paper's raw templates, or ``chat``."""
    check_template(name)
    if name != CHAT_TEMPLATE:
        return TEMPLATES[name].replace("{input}", problem)
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("template 'chat' needs a tokenizer with a chat template; use qwen, qwen3_no_thinking or llama")
    messages = [{"role": "user", "content": problem + _INSTRUCTION}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def parse_dataset_spec(spec: str) -> Tuple[str, Optional[Path]]:
    """``math`` -> ("math", None); ``math=/d/test.parquet`` or ``/d/aime.jsonl`` -> (name, path)."""
    spec = spec.strip()
    if "=" in spec:
        name, path = spec.split("=", 1)
        return name.strip(), Path(path.strip()).expanduser()
    if spec in HUB_DATASETS:
        return spec, None
    if spec.endswith((".parquet", ".jsonl", ".json")) or "/" in spec:
        return Path(spec).stem, Path(spec).expanduser()
    raise ValueError(
        f"unknown dataset {spec!r}: use one of {', '.join(HUB_DATASETS)}, or NAME=PATH to a local .parquet / .jsonl"
    )


LABEL_SOURCES = ("auto", "target")


def load_problems(spec: str, label: str = "auto") -> Tuple[str, List[Problem]]:
    """Load a dataset by name (hub) or from a local file; returns (name, problems)."""
    if label not in LABEL_SOURCES:
        raise ValueError(f"unknown label source {label!r}; choose one of: {', '.join(LABEL_SOURCES)}")
    name, path = parse_dataset_spec(spec)
    if path is None:
        rows = _load_hub(name)
    elif not path.exists():
        raise FileNotFoundError(f"dataset file {path} does not exist (from --datasets {spec!r})")
    elif path.suffix == ".parquet":
        import pandas as pd

        rows = pd.read_parquet(path).to_dict("records")
    elif path.suffix in (".jsonl", ".json"):
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    else:
        raise ValueError(f"dataset file {path}: expected .parquet or .jsonl")
    problems = [_to_problem(row, i, name, label) for i, row in enumerate(rows)]
    if not problems:
        raise ValueError(f"dataset {spec!r} has no rows")
    return name, problems


def _load_hub(name: str) -> List[dict]:
    hub_id, split = HUB_DATASETS[name]
    try:
        import datasets

        return list(datasets.load_dataset(hub_id, split=split))
    except Exception as err:
        raise RuntimeError(
            f"could not load {hub_id} (split {split}) from the Hugging Face hub for dataset {name!r}: {err}. "
            f"Offline? Pass a local copy as {name}=/path/to/file.parquet"
        ) from err


def _to_problem(row: dict, index: int, dataset: str, label: str) -> Problem:
    truth = (row.get("reward_model") or {}).get("ground_truth") or {}
    prompt = row.get("prompt")
    if isinstance(prompt, (list, tuple)) or hasattr(prompt, "tolist"):  # verl layout: chat messages
        messages = list(prompt)
        problem = messages[-1]["content"] if messages else None
    else:
        problem = prompt if isinstance(prompt, str) else None
    problem = problem or row.get("problem") or row.get("question") or truth.get("question")
    target = answer = truth.get("target", row.get("answer", row.get("target")))
    solution = row.get("solution") or truth.get("solution")
    if solution and (label == "auto" or answer is None):
        answer = last_boxed(solution) or answer
    if not isinstance(problem, str) or not problem.strip():
        raise ValueError(f"dataset {dataset!r} row {index}: no problem text (expected prompt / problem / question)")
    if answer is None:
        raise ValueError(f"dataset {dataset!r} row {index}: no answer (expected answer / target / a boxed solution)")
    extra = row.get("extra_info") or {}
    problem_id = row.get("unique_id") or row.get("id") or extra.get("index", index)
    return Problem(str(problem_id), problem, str(answer), solution, None if target is None else str(target))
