"""Rule-based math reward on math-verify: correct, bounded in time and input, never raises.

OpenRLHF (``--reward.remote_url math_verify`` with the wrapper CLI, or this file's path)::

    reward_func(queries, prompts, labels) -> {"rewards": (B,) tensor, "scores": (B,) tensor, "extra_logs": {...}}

Python, for evaluation::

    from openrlhf_nsr.reward import grade, grade_batch
    grade(response, gold).correct                  # one sample
    [v.score for v in grade_batch(responses, golds)]   # many (deduplicated, cached, parallel)

Grading: the answer is the content of the LAST ``\\boxed{...}`` of the response (nested braces
handled; special tokens such as ``<|im_end|>`` removed first), compared with the gold answer by
math-verify (both parsed as LaTeX, ``verify(gold, answer)``). No boxed answer, an answer over
``MAX_ANSWER_CHARS`` or nested deeper than ``MAX_BRACE_DEPTH``: score 0. An empty gold answer
scores 0; one that math-verify cannot give a mathematical meaning is compared as a string (its
own fallback); both are counted in ``extra_logs["gold_invalid"]``. Only LaTeX extraction is used:
math-verify's expression extraction goes through ``sympy.parse_expr``, which evaluates Python, and
model output must never be executed.

This file holds the extraction and the API; OpenRLHF loads it by path, so it imports the rest of
the reward by absolute imports:

- openrlhf_nsr.reward_pool: GraderPool, math-verify in worker processes with a hard time limit
  per pair (default 5 s, ``OPENRLHF_NSR_REWARD_TIMEOUT``; a pair past it scores 0 with
  ``timed_out``), verdicts cached per (answer, gold) pair; one default pool per process.
- openrlhf_nsr.reward_fast: pairs decided in the caller with math-verify's verdicts, no worker
  needed (plain numbers, an answer written exactly as its gold, a plain number against a gold a
  worker has already seen).
- openrlhf_nsr.reward_worker: the worker process (``python -m openrlhf_nsr.reward_worker``).

``python -m openrlhf_nsr.reward`` prints this file's path, for plain OpenRLHF's ``--reward.remote_url``.
"""

from __future__ import annotations

import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple

from openrlhf_nsr.reward_fast import _facts_may_decide
from openrlhf_nsr.reward_pool import GraderPool, default_pool

# The longest gold answer in the paper's MATH / AIME 2025 / AMC23 sets is 77 characters.
MAX_ANSWER_CHARS = 1000
MAX_BRACE_DEPTH = 32
_SPECIAL_TOKEN = re.compile(r"<\|[^<>|\s]{1,64}\|>|</?s>")
_BOXED = re.compile(r"\\boxed\s*\{")


class Verdict(NamedTuple):  # not a dataclass: OpenRLHF loads this file without registering it in sys.modules
    correct: bool
    answer: Optional[str] = None  # the extracted boxed answer, None if there is none
    timed_out: bool = False  # no verdict within the time limit (worker killed): scored 0
    gold_invalid: bool = False  # empty or unparsable gold answer: scored 0

    @property
    def score(self) -> float:
        return 1.0 if self.correct else 0.0


# ── Extraction (in the caller's process: linear time, any input) ──


def _as_text(value) -> Optional[str]:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)  # a dataset whose answers are numbers (a JSON column of ints)
    return None


def last_boxed(text) -> Optional[str]:
    """Content of the last ``\\boxed{...}`` in ``text`` (nested braces handled), else None."""
    text = _as_text(text)
    if not text:
        return None
    if "<" in text:  # the only character special tokens start with: skip the regex pass over most responses
        text = _SPECIAL_TOKEN.sub("", text)
    start = text.rfind("\\boxed")
    while start != -1:
        match = _BOXED.match(text, start)
        if match:
            depth, i = 1, match.end()
            end = min(len(text), i + MAX_ANSWER_CHARS + 1)
            while i < end:
                char = text[i]
                if char == "{":
                    depth += 1
                elif char == "}":
                    depth -= 1
                    if depth == 0:
                        return text[match.end() : i].strip() or None
                i += 1
            return None  # unclosed, or longer than MAX_ANSWER_CHARS: no parsable final answer
        start = text.rfind("\\boxed", 0, start)
    return None


def response_text(query, prompt) -> str:
    """The response part of OpenRLHF's ``query`` (prompt + response, decoded with special tokens).

    The prompt must never supply the answer. If ``query`` does not start with ``prompt`` (a
    tokenizer round trip changed it), everything up to the last occurrence of the prompt's last
    64, 32 or 16 characters (the chat template's assistant header) is cut; failing that, the
    response is taken as empty unless the prompt is.
    """
    query, prompt = _as_text(query) or "", _as_text(prompt) or ""
    if query.startswith(prompt):
        return query[len(prompt) :]
    for size in (64, 32, 16):
        tail = prompt[-size:]
        if len(tail) == size and tail in query:
            return query[query.rfind(tail) + size :]
    return query if not prompt.strip() else ""


def _too_nested(answer: str) -> bool:
    depth = 0
    for char in answer:
        depth += char == "{"
        depth -= char == "}"
        if depth > MAX_BRACE_DEPTH:
            return True
    return False


def _grade_extracted(answer: Optional[str], gold, pool: GraderPool, wait: bool = True) -> Optional[Verdict]:
    """The verdict on an extracted answer; with ``wait=False``, None where it needs a worker."""
    gold_text = _as_text(gold)
    if gold_text is None or not gold_text.strip() or len(gold_text) > MAX_ANSWER_CHARS or _too_nested(gold_text):
        return Verdict(False, answer, gold_invalid=True)
    if answer is None or _too_nested(answer):
        return Verdict(False, answer)
    result = pool.grade(answer, gold_text.strip()) if wait else pool.lookup(answer, gold_text.strip())
    if result is None:
        return None
    correct, timed_out, gold_ok = result
    return Verdict(correct, answer, timed_out=timed_out, gold_invalid=not gold_ok)


def _safe_grade(answer, gold, pool, wait: bool = True) -> Optional[Verdict]:
    try:
        return _grade_extracted(answer, gold, pool, wait)
    except Exception:
        return Verdict(False, answer)


def grade(response, gold, pool: Optional[GraderPool] = None) -> Verdict:
    """Grade one response against one gold answer. Never raises; bounded by the pool's timeout."""
    try:
        return _grade_extracted(last_boxed(response), gold, pool or default_pool())
    except Exception:
        return Verdict(False)


def grade_batch(responses: Sequence, golds: Sequence, pool: Optional[GraderPool] = None) -> List[Verdict]:
    """Grade many (response, gold) pairs: distinct pairs are graded once, in parallel.

    Pairs the cache or the fast path settles are done first, in this thread. The others go to
    the workers gold by gold (one worker parses a gold once and grades its pairs; with fewer
    golds than workers, pair by pair), each gold's first pair one the fast path could never
    decide: what the worker learns about its gold may let the fast path settle the rest.
    """
    if len(responses) != len(golds):
        raise ValueError(f"{len(responses)} responses but {len(golds)} gold answers")
    pool = pool or default_pool()
    keys = [(last_boxed(r), _as_text(g)) for r, g in zip(responses, golds)]
    verdicts = {key: _safe_grade(*key, pool, wait=False) for key in dict.fromkeys(keys)}
    pending = [key for key, verdict in verdicts.items() if verdict is None]
    if len(pending) == 1:  # OpenRLHF grades one sample per call: no thread pool for it
        verdicts[pending[0]] = _safe_grade(*pending[0], pool)
    elif pending:
        tasks = _worker_tasks(pending, pool.workers)
        with ThreadPoolExecutor(max_workers=min(pool.workers, len(tasks))) as executor:
            for task, graded in zip(tasks, executor.map(lambda task: [_safe_grade(*key, pool) for key in task], tasks)):
                verdicts.update(zip(task, graded))
    return [verdicts[key] for key in keys]


def _worker_tasks(pending: List[Tuple[str, str]], workers: int) -> List[List[Tuple[str, str]]]:
    """``pending`` as tasks graded one after another: a gold's pairs, largest first, or single pairs.

    A gold's pairs start with those the fast path cannot decide. With fewer golds than workers,
    each pair is its own task, one pair of each gold first, so that all workers have work.
    """
    by_gold: "dict[str, List[Tuple[str, str]]]" = {}
    for key in sorted(pending, key=lambda key: _facts_may_decide(*key)):  # stable: undecidable first
        by_gold.setdefault(key[1], []).append(key)
    groups = sorted(by_gold.values(), key=len, reverse=True)
    if len(groups) >= workers:
        return groups
    return [[group[0]] for group in groups] + [[key] for group in groups for key in group[1:]]


def reward_func(queries, prompts, labels, **kwargs):
    """OpenRLHF's remote reward function: 1.0 for a correct boxed answer, else 0.0. Never raises."""
    import torch

    try:
        queries, prompts, labels = list(queries), list(prompts), list(labels)
        count = len(queries)
        responses = [response_text(q, p) for q, p in zip(queries, prompts + [""] * (count - len(prompts)))]
        verdicts = grade_batch(responses, labels + [None] * (count - len(labels)))
    except Exception:
        count = _safe_len(queries)
        verdicts = [Verdict(False)] * count
    rewards = torch.tensor([v.score for v in verdicts], dtype=torch.float32)
    return {
        "rewards": rewards,
        "scores": rewards.clone(),
        "extra_logs": {
            "answer_found": torch.tensor([float(v.answer is not None) for v in verdicts]),
            "grading_timeout": torch.tensor([float(v.timed_out) for v in verdicts]),
            "gold_invalid": torch.tensor([float(v.gold_invalid) for v in verdicts]),
        },
    }


def _safe_len(values: Iterable) -> int:
    try:
        return len(values)
    except Exception:
        return 1


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(
        prog="python -m openrlhf_nsr.reward",
        description="The math reward OpenRLHF loads with --reward.remote_url math_verify (the wrapper "
        "python -m openrlhf_nsr.train_ppo_ray resolves that name to this file): 1.0 for a response whose last "
        "\\boxed{...} answer math-verify finds equal to the gold label, else 0.0. Run without arguments, it "
        "prints the path of this file, to give plain OpenRLHF's --reward.remote_url.",
    ).parse_args()
    print(os.path.abspath(__file__))
