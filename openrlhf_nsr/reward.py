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

Speed: pass@k sampling repeats the same answers many times, so verdicts are cached per (answer,
gold) pair. Pairs of plain numbers, an answer written exactly as its gold, and a plain number
against a gold a worker has already seen are decided in the caller by ``fast_verdict``, with
math-verify's verdicts (its rules below; tests/test_reward_fast_path.py checks them on the MATH
test set), and never reach a worker. Workers parse LaTeX with ANTLR's SLL prediction first
(``two_stage_latex_parsing``: the same parses, about half the parse time), and a batch sends each
gold's pairs to one worker, which parses the gold once.

This module imports only the standard library at the top (torch lazily in ``reward_func``), so it
also runs as the worker script itself.
"""

from __future__ import annotations

import atexit
import collections
import decimal
import functools
import json
import math
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on (taskset, cgroup cpusets, Slurm)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


DEFAULT_TIMEOUT = float(os.environ.get("OPENRLHF_NSR_REWARD_TIMEOUT", "5"))
# Up to one worker per usable core, shared among the rollout actors of the node: grading is
# CPU-bound, so fewer leave cores idle in batch grading and more only compete for them (README,
# "The math reward"). Each rollout actor holds a pool; the training wrapper tells the actors how
# many of them share a node (ACTORS_PER_NODE_ENV, in the Ray job's environment). Workers start only
# when a pair finds all busy; the cap bounds the memory (about 70 MB a worker) of one pool.
MAX_DEFAULT_WORKERS = 32
WORKERS_ENV = "OPENRLHF_NSR_REWARD_WORKERS"
ACTORS_PER_NODE_ENV = "OPENRLHF_NSR_REWARD_ACTORS_PER_NODE"


def default_workers() -> int:
    """``OPENRLHF_NSR_REWARD_WORKERS`` if set, else this actor's share of the usable cores (at most 32)."""
    told = int(os.environ.get(WORKERS_ENV, "0") or 0)
    if told > 0:
        return told
    sharing = max(1, int(os.environ.get(ACTORS_PER_NODE_ENV, "1") or 1))
    return max(1, min(MAX_DEFAULT_WORKERS, _usable_cpus() // sharing))


DEFAULT_WORKERS = default_workers()
# The longest gold answer in the paper's MATH / AIME 2025 / AMC23 sets is 77 characters.
MAX_ANSWER_CHARS = 1000
MAX_BRACE_DEPTH = 32
CACHE_SIZE = 200_000
STARTUP_TIMEOUT = 60.0  # a fresh worker imports math-verify / sympy (about 1 s)
PARSE_CACHE_SIZE = 4096  # per worker: parses of recent answers and golds (a gold is parsed once, not per answer)
FACTS_TIME_LIMIT = 0.5  # seconds a worker spends at most learning what the fast path may use about a gold
GOLDS_REMEMBERED = 256  # per worker, in the caller: recent golds it parsed (a gold's next pairs go there if idle)
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


# ── Fast path (in the caller): pairs whose math-verify verdict is known without running it ──
#
# Each rule follows from math-verify 0.9's code: parse() (latex2sympy2_extended's normalize_latex,
# then its LaTeX parser) and verify() (grader.sympy_expr_eq). tests/test_reward_fast_path.py
# compares every pair of the MATH test set and of model-like variants that the rules decide with
# math-verify itself; anything outside them goes to a worker.

CONSTANT, CONTAINER = "constant", "container"
# Outside this range, or with more digits, math-verify's 15-digit Floats could round two different
# decimals together: such pairs go to a worker. Closer than NUMERIC_MARGIN, its 6-decimal
# rounding (sympy_numeric_eq) may call a decimal equal to a different value: a worker again.
NUMERIC_RANGE = 10**6
FLOAT_DIGITS = 15
NUMERIC_MARGIN = Fraction(1, 10**5)
# normalize_latex rewrites a trailing \text{...} holding one of these words into a percent sign
# or a comma instead of dropping it as a unit.
_NOT_UNITS = {"and", "or", "percent", "percentage", "pct"}
_ASSIGNMENT = re.compile(r"[A-Za-z]\s*=\s*")
_NUMBER = re.compile(
    r"""
    (?P<sign>[-+]?)(?:\\\$)?                                  # normalize_latex drops "\$"
    (?:(?P<int>0|[1-9]\d*|[1-9]\d{0,2}(?:,\d{3})+)(?P<decimals>\.\d+)?  # 1,000 (see _number)
      |(?P<point>\.\d+)                                       # .5: normalize_latex makes it 0.5
      |\\[dt]?frac(?:\{(?P<num>0|[1-9]\d*)\}\{(?P<den>[1-9]\d*)\}|\ ?(?P<num1>\d)(?P<den1>[1-9]))
      |(?P<snum>0|[1-9]\d*)/(?P<sden>[1-9]\d*))               # integer / integer: a Rational
    (?:(?P<degrees>\^\\circ|\^\{\\circ\})                       # degrees: the number itself
      |(?P<space>(?:\s|\\[\ ,;])*)\\(?:text|mbox)\{\s*(?P<unit>[A-Za-z]+(?:\ [A-Za-z]+)*)\s*\}(?:\^\d|\^\{\d\})?)?
    """,
    re.VERBOSE,
)


class _Number(NamedTuple):
    value: Fraction
    exact: bool  # an Integer or Rational for math-verify; False: a Float


class GoldFacts(NamedTuple):
    """What a worker learned about a gold answer from math-verify's parse of it."""

    identical: bool  # math-verify's verdict on an answer written exactly as this gold
    meaning: bool  # it has a mathematical meaning (else: compared as a string, gold_invalid)
    kind: str = ""  # CONSTANT: a number-valued expression; CONTAINER: never equal to a number
    real: Optional[Fraction] = None  # a CONSTANT's value (30 digits)
    imag: Optional[Fraction] = None


def _number(text: str, assignment: bool = False) -> Optional[_Number]:
    """The value math-verify parses ``text`` to, if it is a plain number (see _NUMBER); else None.

    ``\\!`` is dropped and one ``$...$`` around the whole unwrapped, as normalize_latex does.
    ``assignment`` also accepts ``x = 3``: verify() compares a gold that is no equation with the
    right side of an answer that is one.
    """
    text = re.sub(r"\\!\s*", "", text)
    if len(text) > 2 and text[0] == "$" and text[-1] == "$":
        text = text[1:-1].strip()
    assigned = assignment and _ASSIGNMENT.match(text)
    if assigned:
        text = text[assigned.end() :]
    match = _NUMBER.fullmatch(text)
    if not match or (match["unit"] and _NOT_UNITS.intersection(match["unit"].split())):
        return None
    # latex2sympy reads 1,000 as 1000 only when normalize_latex leaves nothing else but a "-" (else: a set)
    spaced = match["space"] and re.search(r"\\[,;]", match["space"])
    if "," in (match["int"] or "") and (assigned or match["sign"] == "+" or match["degrees"] or spaced):
        return None
    for num, den in (("num", "den"), ("num1", "den1"), ("snum", "sden")):
        if match[num]:
            number = _Number(Fraction(int(match[num]), int(match[den])), exact=True)
            break
    else:
        digits = match["point"] or match["int"].replace(",", "") + (match["decimals"] or "")
        if "." not in digits:
            number = _Number(Fraction(int(digits)), exact=True)
        elif sum(char.isdigit() for char in digits) > FLOAT_DIGITS:
            return None
        else:
            number = _Number(Fraction(digits), exact=False)
    return _Number(-number.value, number.exact) if match["sign"] == "-" else number


def _far_apart(answer: _Number, real: Fraction, imag: Fraction = Fraction(0)) -> bool:
    """Whether math-verify certainly tells a plain-number answer from a gold of this value.

    Within NUMERIC_RANGE, values further apart than NUMERIC_MARGIN differ after its 6-decimal
    rounding (sympy_numeric_eq) and their difference does not simplify to zero.
    """
    in_range = abs(answer.value) < NUMERIC_RANGE and abs(real) < NUMERIC_RANGE
    return in_range and (abs(answer.value - real) > NUMERIC_MARGIN or abs(imag) > NUMERIC_MARGIN)


def _same_number(answer: _Number, gold: _Number) -> Optional[bool]:
    """math-verify's verdict on two plain numbers, if certain.

    Two exact numbers (Integer, Rational) are equal exactly (sympy_str_eq) or not at all. With a
    Float, equal values match (numerically) and far apart ones do not; close ones go to a worker.
    """
    if answer.exact and gold.exact:
        return answer.value == gold.value
    if answer.value == gold.value and abs(gold.value) < NUMERIC_RANGE:
        return True
    return False if _far_apart(answer, gold.value) else None


def fast_verdict(answer: str, gold: str, facts: Optional[GoldFacts] = None) -> Optional[Tuple[bool, bool]]:
    """math-verify's ``(correct, gold has a meaning)`` on a boxed answer and a gold, or None if unsure.

    - An answer written exactly as the gold, once a worker parsed the gold: ``facts.identical``
      (math-verify compares two equal parses; an unparsable gold scores 0).
    - A plain number against a plain number (_number): compared by value (_same_number).
    - A plain number against a gold a worker parsed to a number-valued expression (facts.kind
      CONSTANT, like ``\\frac{\\sqrt3}{2}``): different when their values differ by more than the
      margin; or to a CONTAINER (interval, union, tuple or matrix, or a set of several distinct
      numbers), which math-verify never equates with a number (sympy_compare_sets, or no numeric
      comparison of a matrix with a number).
    """
    if facts is not None and answer == gold:
        return facts.identical, facts.meaning
    number = _number(answer, assignment=True)
    if number is None:
        return None
    gold_number = _number(gold)
    if gold_number is not None:
        verdict = _same_number(number, gold_number)
    elif facts is not None and facts.kind == CONTAINER:
        verdict = False
    elif facts is not None and facts.kind == CONSTANT:  # its value is rounded: never "equal" from it
        verdict = False if _far_apart(number, facts.real, facts.imag) else None
    else:
        return None
    return None if verdict is None else (verdict, True)


def _facts_may_decide(answer: str, gold: str) -> bool:
    """Whether fast_verdict may decide the pair once a worker has parsed the gold."""
    return answer == gold or _number(answer, assignment=True) is not None


# ── Worker process ──


def _parse(text: str) -> list:
    """math-verify's parse of a boxed answer, LaTeX extraction only, no signal timeout."""
    from math_verify import LatexExtractionConfig, parse

    return parse("\\boxed{" + text + "}", [LatexExtractionConfig()], parsing_timeout=None)


def two_stage_latex_parsing() -> bool:
    """Make latex2sympy's ANTLR parser try SLL prediction first and LL only if that fails.

    ANTLR's documented contract (antlr4 PredictionMode.SLL): an SLL parse either returns the same
    parse tree the LL mode returns, or reports a syntax error. latex2sympy raises on any syntax
    error, so on one the input is parsed again from scratch exactly as latex2sympy does (LL, error
    included). Same parses, without the full-context LL simulation that dominates math-verify's
    parse of tuples, intervals and expressions (about half its parse time on MATH answers);
    tests/test_reward_fast_path.py compares both parsers on the MATH test set. Installed in the
    grader workers only. False (nothing changed) if this latex2sympy has no such parser.
    """
    try:
        from antlr4.atn.PredictionMode import PredictionMode
        from latex2sympy2_extended.latex2sympy2 import PSParser, _Latex2Sympy
    except ImportError:
        return False
    create = getattr(_Latex2Sympy, "create_parser", None)
    if create is None or not hasattr(PSParser, "math"):
        return False
    if getattr(create, "two_stage", False):
        return True

    def create_parser(self, *args, **kwargs):
        parser = create(self, *args, **kwargs)
        try:
            parser._interp.predictionMode = PredictionMode.SLL
        except Exception:  # not the parser this was written for: keep latex2sympy's own
            return parser

        def math():
            try:
                return PSParser.math(parser)
            except Exception:  # a syntax error under SLL: a fresh LL parser, as latex2sympy builds it
                return create(self, *args, **kwargs).math()

        parser.math = math
        return parser

    create_parser.two_stage = True
    _Latex2Sympy.create_parser = create_parser
    return True


def verify_answer(answer: str, gold: str, parse=_parse) -> Tuple[bool, bool]:
    """math-verify on one extracted answer and one gold answer: (correct, gold_parsed).

    Unbounded in time (math-verify's signal timeouts are off): call it through a GraderPool.
    ``gold_parsed`` is False when math-verify finds no mathematical meaning in the gold answer;
    it then compares strings, its own fallback (so ``\\frac{12}{5,525}``, which its LaTeX parser
    rejects, still matches the same answer written the same way).
    """
    from math_verify import verify

    gold_parsed = parse(gold)
    if not gold_parsed:
        return False, False
    answer_parsed = parse(answer)
    correct = bool(answer_parsed) and bool(verify(gold_parsed, answer_parsed, timeout_seconds=None))
    return correct, any(not isinstance(value, str) for value in gold_parsed)


class _TimeLimit(BaseException):  # not an Exception: math-verify and sympy catch those
    pass


def gold_facts(gold: str, parse=_parse, time_limit: float = FACTS_TIME_LIMIT) -> GoldFacts:
    """What the fast path may use about ``gold`` (GoldFacts), from math-verify's parse of it.

    The kind and value take at most ``time_limit`` seconds (a signal timer, so only when called
    from the main thread, as in a worker), past which the gold has no kind.
    """
    from math_verify import verify

    parsed = parse(gold)
    identical = bool(parsed) and bool(verify(parsed, parsed, timeout_seconds=None))
    meaning = any(not isinstance(value, str) for value in parsed)
    armed = threading.current_thread() is threading.main_thread()

    def on_alarm(signum, frame):
        if armed:  # a late alarm, once the kind is known, changes nothing
            raise _TimeLimit

    if armed:
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, time_limit)
    timed = armed
    try:
        try:
            kind = _gold_kind(parsed)
        finally:
            armed = False
    except (_TimeLimit, Exception):
        kind = ()
    if timed:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return GoldFacts(identical, meaning, *kind)


def _gold_kind(parsed: list) -> tuple:
    """(CONSTANT, real, imag), (CONTAINER,) or () for math-verify's parse of a gold answer."""
    import sympy

    values = [value for value in parsed if not isinstance(value, str)]
    if len(values) != 1:
        return ()
    value = values[0]
    if isinstance(value, sympy.MatrixBase):
        return (CONTAINER,) if len(value) > 1 else ()
    if isinstance(value, (sympy.Interval, sympy.Union)) or (isinstance(value, sympy.Tuple) and len(value) > 1):
        return (CONTAINER,)
    if isinstance(value, sympy.FiniteSet) and len(value) > 1:
        # a set of several distinct numbers: one number can match at most one of them
        points = [_complex_value(element) for element in value.args]
        distinct = all(
            p is not None and q is not None and max(abs(p[0] - q[0]), abs(p[1] - q[1])) > NUMERIC_MARGIN
            for i, p in enumerate(points)
            for q in points[i + 1 :]
        )
        return (CONTAINER,) if distinct else ()
    if isinstance(value, sympy.Expr) and not isinstance(value, sympy.MatrixExpr):
        # a percentage (x * UnevaluatedExpr(1/100)) is compared by its digits, not its value: no kind
        point = None if value.has(sympy.UnevaluatedExpr) else _complex_value(value)
        return () if point is None else (CONSTANT, *point)
    return ()


def _complex_value(expr) -> Optional[Tuple[Fraction, Fraction]]:
    """(real, imag) of a number-valued sympy expression to 30 decimals, if within NUMERIC_RANGE."""
    if not getattr(expr, "is_number", False):
        return None
    real, imag = expr.evalf(30).as_real_imag()
    if not (real.is_Number and imag.is_Number and real.is_finite and imag.is_finite):
        return None
    with decimal.localcontext(prec=60):  # str(), not Fraction(Float): 1/2004! has a 5,700-digit denominator
        parts = [decimal.Decimal(str(part)) for part in (real, imag)]
        if any(abs(part) >= NUMERIC_RANGE for part in parts):
            return None
        real, imag = (Fraction(part.quantize(decimal.Decimal("1e-30"))) for part in parts)
    return real, imag


def _worker_main() -> None:  # pragma: no cover - runs in the worker subprocess
    """Grade (answer, gold) pairs from stdin, one JSON line each, until stdin closes.

    Each reply carries the verdict and the gold's GoldFacts, which the caller keeps for its fast path.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the parent (its spawning thread)
    here = os.path.dirname(os.path.abspath(__file__))  # run as a script: don't import siblings by accident
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints from sympy & co. go to stderr, not into the protocol
    two_stage_latex_parsing()
    for answer, gold in WARMUP:  # import math-verify / sympy and build their lazy parts first
        verify_answer(answer, gold)
    if os.getppid() == 1:
        return
    parse = functools.lru_cache(maxsize=PARSE_CACHE_SIZE)(_parse)
    facts = functools.lru_cache(maxsize=PARSE_CACHE_SIZE)(functools.partial(gold_facts, parse=parse))
    protocol.write("ready\n")
    for line in sys.stdin:
        key, answer, gold = json.loads(line)
        correct, gold_ok = verify_answer(answer, gold, parse)
        try:  # what the fast path learns is a bonus: a failure here must not cost the verdict
            known = facts(gold)
            known = [*known[:3], *(None if value is None else str(value) for value in known[3:])]
        except Exception:
            known = None
        protocol.write(json.dumps([key, correct, gold_ok, known]) + "\n")


# Linux sends PR_SET_PDEATHSIG when the *thread* that started the worker exits, not the process:
# workers are started from one thread, which lives as long as the process, never from a caller's
# thread (grade_batch's and OpenRLHF's threads come and go). A forked child gets its own.
_spawner: Optional[ThreadPoolExecutor] = None
_spawner_lock = threading.Lock()


def _spawn(command: List[str]) -> subprocess.Popen:
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openrlhf-nsr-grader-spawner")
        spawner = _spawner
    pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return spawner.submit(subprocess.Popen, command, text=False, close_fds=True, **pipes).result()


class _Worker:
    def __init__(self):
        self.proc = _spawn([sys.executable, os.path.abspath(__file__), "--grader-worker"])
        self._buffer = b""
        self._ready = False
        self._requests = 0
        self.golds: "collections.OrderedDict[str, None]" = collections.OrderedDict()  # parsed recently

    def remember(self, gold: str) -> None:
        self.golds[gold] = None
        self.golds.move_to_end(gold)
        if len(self.golds) > GOLDS_REMEMBERED:
            self.golds.popitem(last=False)

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

    def grade(self, answer: str, gold: str, timeout: float) -> Optional[Tuple[bool, bool, Optional[GoldFacts]]]:
        """(correct, gold_ok, the gold's facts), or None if the worker gave no answer within ``timeout`` seconds."""
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
        key, correct, gold_ok, known = json.loads(line)
        if key != self._requests:
            return None
        if known is not None:
            identical, meaning, kind, real, imag = known
            known = GoldFacts(identical, meaning, kind, *(None if v is None else Fraction(v) for v in (real, imag)))
        return bool(correct), bool(gold_ok), known

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

    Thread-safe: any number of threads may call ``grade`` at once; a pair the cache or the fast
    path cannot settle takes an idle worker, one that has parsed its gold if there is one. Workers
    start when needed: a pair that finds every worker busy starts one more, up to ``workers``
    (OpenRLHF loads the reward in every rollout actor, each with its own pool: most samples never
    need a worker, and an idle one would hold about 70 MB). A worker that exceeds ``timeout`` (or
    dies) is killed and replaced. What workers learn about each gold (GoldFacts) is kept for the
    fast path.
    """

    def __init__(self, workers: int = DEFAULT_WORKERS, timeout: float = DEFAULT_TIMEOUT, cache_size: int = CACHE_SIZE):
        if workers < 1 or not timeout > 0:
            raise ValueError(f"need workers >= 1 and timeout > 0, got workers={workers}, timeout={timeout}")
        self.timeout = float(timeout)
        self.workers = workers
        self._idle: List[_Worker] = []
        self._started = 0  # workers started and not killed
        self._available = threading.Condition()  # guards _idle and _started
        self._all: List[_Worker] = []
        self._lock = threading.Lock()
        self._cache: "collections.OrderedDict[Tuple[str, str], Tuple[bool, bool, bool]]" = collections.OrderedDict()
        self._facts: "collections.OrderedDict[str, GoldFacts]" = collections.OrderedDict()
        self._in_flight: "dict[Tuple[str, str], threading.Event]" = {}  # pairs a worker is grading
        self._learning: "dict[str, threading.Event]" = {}  # golds whose first pair a worker is grading
        self._cache_size = cache_size
        self._closed = False
        self.worker_requests = 0  # pairs sent to a worker: the rest were cached or decided by the fast path
        self._pid = os.getpid()  # the workers belong to this process (not to a forked child)

    def _start_worker(self) -> _Worker:
        """A new worker (its process starts now; its first request waits until it is ready)."""
        try:
            worker = _Worker()
        except BaseException:
            with self._available:
                self._started -= 1
                self._available.notify()
            raise
        with self._lock:
            self._all.append(worker)
            closed = self._closed
        if closed:
            worker.kill()
            raise RuntimeError("GraderPool is closed")
        return worker

    def _release(self, worker: _Worker) -> None:
        with self._available:
            self._idle.append(worker)
            self._available.notify()

    def _acquire(self, gold: str) -> _Worker:
        """An idle worker, preferably one that has parsed ``gold`` lately; a new one if all are
        busy and fewer than ``workers`` run; else the next one to be idle."""
        with self._available:
            while not self._idle:
                if self._closed:
                    raise RuntimeError("GraderPool is closed")
                if self._started < self.workers:
                    self._started += 1
                    break
                self._available.wait()
            else:
                worker = next((w for w in self._idle if gold in w.golds), self._idle[0])
                self._idle.remove(worker)
                return worker
        return self._start_worker()

    def lookup(self, answer: str, gold: str) -> Optional[Tuple[bool, bool, bool]]:
        """``grade``'s verdict if the cache or the fast path has it (no worker needed), else None."""
        return self._lookup(answer, gold)[0]

    def _lookup(self, answer: str, gold: str) -> Tuple[Optional[Tuple[bool, bool, bool]], Optional[GoldFacts]]:
        with self._lock:
            verdict = self._cache.get((answer, gold))
            if verdict is not None:
                self._cache.move_to_end((answer, gold))
                return verdict, None
            facts = self._facts.get(gold)
        fast = fast_verdict(answer, gold, facts)
        return (None if fast is None else (fast[0], False, fast[1])), facts

    def grade(self, answer: str, gold: str) -> Tuple[bool, bool, bool]:
        """(correct, timed_out, gold_ok) for a boxed answer and a gold answer.

        Concurrent callers (OpenRLHF grades each sample from its own thread) do not send a worker
        what another caller's request already in flight will settle: the same pair, or, while
        the first request on a new gold is out, a pair the gold's facts may decide.
        """
        key, waited = (answer, gold), []
        while True:
            verdict, facts = self._lookup(answer, gold)
            if verdict is not None:
                return verdict
            with self._lock:
                if self._closed:
                    raise RuntimeError("GraderPool is closed")
                if key in self._cache or self._facts.get(gold) != facts:
                    continue  # settled, or the gold learned about, since the lookup: look again
                other = self._in_flight.get(key)
                if other is None and gold not in self._facts and _facts_may_decide(answer, gold):
                    other = self._learning.get(gold)
                if other is None or other in waited:  # waited on once: grade it here, not wait again
                    done = threading.Event()
                    self._in_flight.setdefault(key, done)
                    if gold not in self._facts:
                        self._learning.setdefault(gold, done)
                    self.worker_requests += 1
                    break
            waited.append(other)
            other.wait(self.timeout + 1)
        try:
            return self._grade_in_worker(answer, gold)
        finally:
            with self._lock:
                if self._in_flight.get(key) is done:
                    del self._in_flight[key]
                if self._learning.get(gold) is done:
                    del self._learning[gold]
            done.set()

    def _grade_in_worker(self, answer: str, gold: str) -> Tuple[bool, bool, bool]:
        worker = self._acquire(gold)
        try:
            result = worker.grade(answer, gold, self.timeout)
        except Exception:  # a reply it cannot read: as if dead (a worker never leaves the pool unreleased)
            result = None
        if result is None:  # too slow or dead: kill it, start a replacement (not waited for)
            worker.kill()
            with self._lock:
                if worker in self._all:
                    self._all.remove(worker)
            try:
                self._release(self._start_worker())
            except Exception:  # closed meanwhile, or no process could start: the next pair starts one
                pass
            verdict = (False, True, True)
        else:
            worker.remember(gold)
            self._release(worker)
            correct, gold_ok, facts = result
            verdict = (correct, False, gold_ok)
        with self._lock:
            self._cache[(answer, gold)] = verdict
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            if result is not None and facts is not None:
                self._facts[gold] = facts
                if len(self._facts) > self._cache_size:
                    self._facts.popitem(last=False)
        return verdict

    def close(self) -> None:
        if os.getpid() != self._pid:  # a forked child (its exit handlers too): the workers are its parent's
            return
        with self._lock:
            self._closed = True
            workers, self._all = self._all, []
        for worker in workers:
            worker.kill()
        with self._available:
            self._available.notify_all()  # callers waiting for a worker: the pool is closed


_pool: Optional[GraderPool] = None
_pool_lock = threading.Lock()


def default_pool() -> GraderPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = GraderPool()
            atexit.register(_pool.close)
        return _pool


def _after_fork_in_child() -> None:
    """A forked child (datasets.map(num_proc=...), os.fork) starts its own workers, thread and pool:
    its copy of the parent's spawner has no thread (it would wait forever), and the parent's
    workers and locks are the parent's."""
    global _spawner, _spawner_lock, _pool, _pool_lock
    _spawner, _spawner_lock, _pool, _pool_lock = None, threading.Lock(), None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
    if sys.argv[1:] == ["--grader-worker"]:
        _worker_main()
    else:  # python -m openrlhf_nsr.reward: the path to give plain OpenRLHF's --reward.remote_url
        print(os.path.abspath(__file__))
