"""The math reward's grader worker: math-verify on (answer, gold) pairs, in a process of its own.

    python -m openrlhf_nsr.reward_worker   # as openrlhf_nsr.reward_pool starts it

It warms up (WARMUP), prints ``ready``, then answers each stdin line ``[key, answer, gold]`` with
one stdout line ``[key, correct, gold_ok, facts]`` (facts: the gold's GoldFacts, which the caller
keeps for its fast path) until stdin closes; it dies with its parent (PR_SET_PDEATHSIG on Linux).
math-verify's own timeouts are off: the pool bounds each pair's time by killing a worker that
does not answer in time. LaTeX is parsed with ANTLR's SLL prediction first
(two_stage_latex_parsing: the same parses, about half the parse time). math-verify and sympy are
imported at first use, so tests and benchmarks also call these functions in their own process.
"""

from __future__ import annotations

import decimal
import functools
import json
import os
import signal
import sys
import threading
from fractions import Fraction
from typing import Optional, Tuple

from openrlhf_nsr.reward_fast import CONSTANT, CONTAINER, NUMERIC_MARGIN, NUMERIC_RANGE, GoldFacts

PARSE_CACHE_SIZE = 4096  # per worker: parses of recent answers and golds (a gold is parsed once, not per answer)
FACTS_TIME_LIMIT = 0.5  # seconds a worker spends at most learning what the fast path may use about a gold
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


def main() -> None:  # pragma: no cover - runs in the worker subprocess
    """Grade (answer, gold) pairs from stdin, one JSON line each, until stdin closes.

    Each reply carries the verdict and the gold's GoldFacts, which the caller keeps for its fast path.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the parent (its spawning thread)
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


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(  # --help says what this is; the pool starts it with no arguments
        prog="python -m openrlhf_nsr.reward_worker",
        description="The math reward's grader worker, started by openrlhf_nsr.reward_pool (not a command to run "
        "by hand): it prints 'ready', then grades one JSON line [key, answer, gold] of stdin at a time with "
        "math-verify, one JSON line [key, correct, gold_ok, facts] on stdout each, until stdin closes.",
    ).parse_args()
    main()
