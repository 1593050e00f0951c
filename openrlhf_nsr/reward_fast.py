"""The math reward's fast path: pairs whose math-verify verdict is known without running it.

Runs in the caller, on the standard library alone (no worker, no math-verify): plain numbers
against plain numbers, an answer written exactly as its gold, and a plain number against a gold
a worker has parsed (its GoldFacts, see openrlhf_nsr.reward_worker). Each rule follows from
math-verify 0.9's code: parse() (latex2sympy2_extended's normalize_latex, then its LaTeX parser)
and verify() (grader.sympy_expr_eq). tests/test_reward_fast_path.py compares every pair of the
MATH test set and of model-like variants that the rules decide with math-verify itself; anything
outside them goes to a worker.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NamedTuple, Optional, Tuple

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
