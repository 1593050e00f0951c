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

Time: math-verify's own timeouts use ``signal.alarm``, which does not work in the worker threads
OpenRLHF calls reward functions from, and without them some inputs (``10^{10^{10}}``) run for
minutes. So grading runs in a pool of worker processes (plain subprocesses, safe inside Ray
actors and threads); a worker that has not answered within ``timeout`` seconds (default 5,
``OPENRLHF_NSR_REWARD_TIMEOUT``) is killed and replaced, and the sample scores 0 with
``timed_out``. Workers exit with their parent (stdin EOF, and PR_SET_PDEATHSIG on Linux).
Verdicts are cached per (answer, gold) pair: pass@k sampling repeats the same answers many times.

This module imports only the standard library at the top (torch lazily in ``reward_func``), so it
also runs as the worker script itself.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import queue
import re
import select
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple

DEFAULT_TIMEOUT = float(os.environ.get("OPENRLHF_NSR_REWARD_TIMEOUT", "5"))
DEFAULT_WORKERS = int(os.environ.get("OPENRLHF_NSR_REWARD_WORKERS", "0")) or min(4, os.cpu_count() or 1)
# The longest gold answer in the paper's MATH / AIME 2025 / AMC23 sets is 77 characters.
MAX_ANSWER_CHARS = 1000
MAX_BRACE_DEPTH = 32
CACHE_SIZE = 200_000
STARTUP_TIMEOUT = 60.0  # a fresh worker imports math-verify / sympy (about 1 s)
# Graded by every worker before it reports ready: sympy and latex2sympy build much of their
# machinery lazily, at first use of each kind of expression (up to ~0.4 s a kind).
WARMUP = [
    ("6", "40"),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}"),
    ("\\left( \\frac{5}{3}, -1 \\right)", "(\\frac{5}{3},-1)"),
    ("\\left[ -\\frac{\\pi}{2}, 1 \\right)", "[-\\frac{\\pi}{2},1)"),
    ("\\{1, 2\\}", "\\{2,1\\}"),
    ("x^2+2x+1", "(x+1)^2"),
    ("30^\\circ", "30"),
    ("50\\%", "0.5"),
    ("x = 3", "3"),
    ("\\text{even}", "{even}"),
    ("152A_{11}", "152A_{11}"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("\\infty", "-\\infty"),
    ("7p+4e", "40"),
    ("1,000", "1000"),
    ("3.5", "\\frac{7}{2}"),
    ("i", "\\sqrt{-1}"),
]
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
    return None


def last_boxed(text) -> Optional[str]:
    """Content of the last ``\\boxed{...}`` in ``text`` (nested braces handled), else None."""
    text = _as_text(text)
    if not text:
        return None
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


# ── Worker process ──


def verify_answer(answer: str, gold: str) -> Tuple[bool, bool]:
    """math-verify on one extracted answer and one gold answer: (correct, gold_parsed).

    Unbounded in time (math-verify's signal timeouts are off): call it through a GraderPool.
    ``gold_parsed`` is False when math-verify finds no mathematical meaning in the gold answer;
    it then compares strings, its own fallback (so ``\\frac{12}{5,525}``, which its LaTeX parser
    rejects, still matches the same answer written the same way).
    """
    from math_verify import LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig()]
    gold_parsed = parse("\\boxed{" + gold + "}", config, parsing_timeout=None)
    if not gold_parsed:
        return False, False
    answer_parsed = parse("\\boxed{" + answer + "}", config, parsing_timeout=None)
    correct = bool(answer_parsed) and bool(verify(gold_parsed, answer_parsed, timeout_seconds=None))
    return correct, any(not isinstance(value, str) for value in gold_parsed)


def _worker_main() -> None:  # pragma: no cover - runs in the worker subprocess
    """Grade (answer, gold) pairs from stdin, one JSON line each, until stdin closes."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the parent
    here = os.path.dirname(os.path.abspath(__file__))  # run as a script: don't import siblings by accident
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints from sympy & co. go to stderr, not into the protocol
    for answer, gold in WARMUP:  # import math-verify / sympy and build their lazy parts first
        verify_answer(answer, gold)
    if os.getppid() == 1:
        return
    protocol.write("ready\n")
    for line in sys.stdin:
        key, answer, gold = json.loads(line)
        protocol.write(json.dumps([key, *verify_answer(answer, gold)]) + "\n")


class _Worker:
    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--grader-worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=False,
            close_fds=True,
        )
        self._buffer = b""
        self._ready = False
        self._requests = 0

    def _read_line(self, deadline: float) -> Optional[bytes]:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None  # the worker died
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def grade(self, answer: str, gold: str, timeout: float) -> Optional[Tuple[bool, bool]]:
        """(correct, gold_ok), or None if the worker gave no answer within ``timeout`` seconds."""
        if not self._ready:
            if self._read_line(time.monotonic() + STARTUP_TIMEOUT) != b"ready":
                return None
            self._ready = True
        self._requests += 1
        try:
            self.proc.stdin.write((json.dumps([self._requests, answer, gold]) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            return None
        line = self._read_line(time.monotonic() + timeout)
        if line is None:
            return None
        key, correct, gold_ok = json.loads(line)
        return (bool(correct), bool(gold_ok)) if key == self._requests else None

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except Exception:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except Exception:
                pass


class GraderPool:
    """Worker processes that run math-verify with a hard per-sample wall-clock limit.

    Thread-safe: any number of threads may call ``grade`` at once; each call takes an idle
    worker. A worker that exceeds ``timeout`` (or dies) is killed and replaced.
    """

    def __init__(self, workers: int = DEFAULT_WORKERS, timeout: float = DEFAULT_TIMEOUT, cache_size: int = CACHE_SIZE):
        if workers < 1 or not timeout > 0:
            raise ValueError(f"need workers >= 1 and timeout > 0, got workers={workers}, timeout={timeout}")
        self.timeout = float(timeout)
        self.workers = workers
        self._idle: "queue.Queue[_Worker]" = queue.Queue()
        self._all: List[_Worker] = []
        self._lock = threading.Lock()
        self._cache: "collections.OrderedDict[Tuple[str, str], Tuple[bool, bool, bool]]" = collections.OrderedDict()
        self._cache_size = cache_size
        self._closed = False
        for _ in range(workers):
            self._add_worker()

    def _add_worker(self) -> None:
        worker = _Worker()
        with self._lock:
            self._all.append(worker)
        self._idle.put(worker)

    def grade(self, answer: str, gold: str) -> Tuple[bool, bool, bool]:
        """(correct, timed_out, gold_ok) for a boxed answer and a gold answer."""
        key = (answer, gold)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            if self._closed:
                raise RuntimeError("GraderPool is closed")
        worker = self._idle.get()
        result = worker.grade(answer, gold, self.timeout)
        if result is None:  # too slow or dead: kill it, start a replacement (not waited for)
            worker.kill()
            with self._lock:
                if worker in self._all:
                    self._all.remove(worker)
                closed = self._closed
            if not closed:
                self._add_worker()
            verdict = (False, True, True)
        else:
            self._idle.put(worker)
            verdict = (result[0], False, result[1])
        with self._lock:
            self._cache[key] = verdict
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return verdict

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = self._all, []
        for worker in workers:
            worker.kill()


_pool: Optional[GraderPool] = None
_pool_lock = threading.Lock()


def default_pool() -> GraderPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = GraderPool()
            atexit.register(_pool.close)
        return _pool


def _grade_extracted(answer: Optional[str], gold, pool: GraderPool) -> Verdict:
    gold_text = _as_text(gold)
    if gold_text is None or not gold_text.strip() or len(gold_text) > MAX_ANSWER_CHARS or _too_nested(gold_text):
        return Verdict(False, answer, gold_invalid=True)
    if answer is None or _too_nested(answer):
        return Verdict(False, answer)
    correct, timed_out, gold_ok = pool.grade(answer, gold_text.strip())
    return Verdict(correct, answer, timed_out=timed_out, gold_invalid=not gold_ok)


def grade(response, gold, pool: Optional[GraderPool] = None) -> Verdict:
    """Grade one response against one gold answer. Never raises; bounded by the pool's timeout."""
    try:
        return _grade_extracted(last_boxed(response), gold, pool or default_pool())
    except Exception:
        return Verdict(False)


def grade_batch(responses: Sequence, golds: Sequence, pool: Optional[GraderPool] = None) -> List[Verdict]:
    """Grade many (response, gold) pairs: distinct pairs are graded once, in parallel."""
    if len(responses) != len(golds):
        raise ValueError(f"{len(responses)} responses but {len(golds)} gold answers")
    pool = pool or default_pool()
    answers = [last_boxed(r) for r in responses]
    distinct = list(dict.fromkeys((a, _as_text(g)) for a, g in zip(answers, golds)))
    with ThreadPoolExecutor(max_workers=pool.workers) as executor:
        verdicts = dict(zip(distinct, executor.map(lambda key: _safe_grade(key[0], key[1], pool), distinct)))
    return [verdicts[(a, _as_text(g))] for a, g in zip(answers, golds)]


def _safe_grade(answer, gold, pool) -> Verdict:
    try:
        return _grade_extracted(answer, gold, pool)
    except Exception:
        return Verdict(False, answer)


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
    if sys.argv[1:] == ["--grader-worker"]:
        _worker_main()
    else:  # python -m openrlhf_nsr.reward: the path to give plain OpenRLHF's --reward.remote_url
        print(os.path.abspath(__file__))
