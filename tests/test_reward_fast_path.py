"""The reward's fast path gives math-verify's own verdicts: proof on the MATH test set.

Every pair the fast path decides (reward_fast.fast_verdict, in the caller, without a worker) is
graded by math-verify as the workers grade it (reward_worker.verify_answer) and must get the same
verdict, both ``correct`` and ``gold_invalid``. The pairs: the reference answers of all 5,000 MATH
test problems (the boxed answer of the solution and the gold target), each against its own gold
and the golds of two other problems, and model-like variants of them, with the gold facts a worker
would report. Each kind of variant is applied to every STRIDE-th problem (rotating) and checked
against its own gold and one other, which keeps the math-verify side to about 70 s on 2 cores.
"""

import functools
import re
from fractions import Fraction

import pytest
from conftest import PAPER_DATA, terminal_lines

from openrlhf_nsr import data, reward, reward_fast, reward_worker
from openrlhf_nsr.reward import last_boxed
from openrlhf_nsr.reward_fast import fast_verdict
from openrlhf_nsr.reward_worker import gold_facts, verify_answer

STRIDE = 4
UNITS = ["cm", "units", "degrees", "inches", "square units", "dollars", "meters", "feet", "mph", "ways"]


def _decimal_forms(answer: str) -> list:
    """The same number, or a near miss, written otherwise (for answers that are plain numbers)."""
    match = re.fullmatch(r"(-?)(\d+)(\.\d+)?", answer)
    if not match:
        return []
    sign, whole, decimals = match[1], match[2], match[3] or ""
    value = Fraction(answer)
    forms = [f"{sign}{int(whole):,}{decimals}", f"{sign}{int(whole):,}{decimals}".replace(",", ",\\!")]
    forms += [f"{sign}00{whole}{decimals}", f"{answer}0", str(value + 1), str(-value), f"{float(value) * 1e20:.1f}"]
    forms += [f"{float(value) + 1e-7:.7f}", f"{float(value) + 2e-6:.6f}", f"{float(value):.1f}", f"{float(value):.3f}"]
    if decimals:
        short = f"{sign}{decimals}" if whole == "0" else f"{sign}{whole}{decimals[:-1]}"
        return forms + [short, f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"]
    return forms + [f"{answer}.0", f"{answer}.000001", f"\\frac{{{2 * int(whole)}}}{{2}}"]


def _fraction_forms(answer: str) -> list:
    """The same fraction, or a near miss, written otherwise (for answers like -\\frac{3}{4})."""
    match = re.fullmatch(r"(-?)\\[dt]?frac\{(\d+)\}\{([1-9]\d*)\}", answer)
    if not match:
        return []
    sign, num, den = match.groups()
    value = float(Fraction(int(num), int(den)))
    forms = [f"{sign}{num}/{den}", f"{sign}\\frac{{{2 * int(num)}}}{{{2 * int(den)}}}", f"{sign}{value:.6f}"]
    forms += [f"{sign}{value:.3f}", f"{sign}{value:.12f}", f"{sign}\\frac{{{num}}}{{{int(den) + 1}}}"]
    return forms + ([f"{sign}\\frac{num}{den}", f"{sign}\\frac {num}{den}"] if len(num) == len(den) == 1 else [])


# Ways a model may write an answer, right and wrong: each maps the reference answer to variants.
VARIANTS = [
    lambda a: [a.replace("\\frac", "\\dfrac"), a.replace("\\frac", "\\tfrac")],
    lambda a: [a.replace("(", "\\left(").replace(")", "\\right)").replace("[", "\\left[").replace("]", "\\right]")],
    lambda a: [a.replace(",", ", "), a.replace(" ", ""), a.replace(",", ",\\!"), a.replace(",", ", \\!")],
    lambda a: [a + ".", f"{a}\\%", f"\\text{{{a}}}", f"{{{a}}}", f"{a}{{}}", f"{a}~\\text{{cm}}"],
    lambda a: [f"x = {a}", f"x={a}", f"${a}$", f"\\${a}", f"-{a}", f"+{a}"],
    lambda a: [f"{a}^\\circ", f"{a}^{{\\circ}}", f"{a}\\text{{ and }}", f"{a}\\text{{percent}}"],
    lambda a: [f"{a}{space}\\text{{{unit}}}" for space in ("", " ", "\\ ", "\\,", "\\;") for unit in (" cm", "units")],
    lambda a: [f"{a}\\text{{ {unit}}}" for unit in UNITS] + [f"{a}\\mbox{{ {unit}}}^2" for unit in UNITS[:2]],
    _decimal_forms,
    _fraction_forms,
    lambda a: [f"x = {v}" for v in _decimal_forms(a) + _fraction_forms(a)],
    lambda a: [f"{v}\\text{{ cm}}" for v in _decimal_forms(a) + _fraction_forms(a)],
]
# Known traps of math-verify, each against each gold here: verdicts that differ from the values.
TRAPS = [
    "5", "5.0", "5.", "05", "+5", "-5", "-0", "0", "0.0", "-0.0", "5\\%", "0.05", "\\$5", "$5$", "5\\!", "\\text{5}",
    "{5}", "5{}", "1,000", "1000", "0,500", "0.5", ".5", "\\frac12", "45,135", "45135", "1,2", "12", "1e3",
    "111, \\! 111", "111,\\!111", "111111", "\\frac{1,000}{3}", "\\frac{12}{5,525}", "\\frac{5}{0}", "1 000", "1\\,000",
    "2", "2.0000001", "1.0000005", "1.0000015", "0.3333333", "0.333333", "\\frac13", "30^\\circ", "30", "x = 3", "3",
    "e = 3", "i=3", "5\\text{ and }", "5\\text{percent}", "5\\text{ percentage}", "5~\\text{cm}", "5\\text{ cm}.",
    "123456789012345678901234567890", "123456789012345678901234567891", "1234567890123.5", "1234567890123.5000001",
    "\\frac{1}{2004!}", "10^{-9}", "\\sqrt{2}", "1.414214", "1.41421356", "1.4142", "\\pi", "3.14", "3.14159265",
    "(1,2)", "[1,2]", "[2,2]", "\\{1,2\\}", "\\{2,2\\}", "\\{0.5,\\frac12\\}", "1,2", "50\\%", "3+5i", "\\infty",
]  # fmt: skip


@pytest.fixture(scope="module")
def math_test():
    _, problems = data.load_problems(f"math={PAPER_DATA / 'math_test.parquet'}", label="target")
    return problems


@pytest.fixture(scope="module")
def parse():
    return functools.lru_cache(maxsize=None)(reward_worker._parse)  # as a worker does: each string parsed once


@pytest.fixture(scope="module")
def answers(math_test):
    """Per problem: its reference answers and, for every STRIDE-th problem, each kind of variant of them."""
    per_problem = []
    for i, problem in enumerate(math_test):
        references = {problem.target.strip(), last_boxed(problem.solution) or problem.target.strip()}
        forms = set(references)
        for kind, variant in enumerate(VARIANTS):
            if (i + kind) % STRIDE == 0:
                forms.update(form for reference in references for form in variant(reference))
        per_problem.append({form.strip() for form in forms if 0 < len(form.strip()) <= reward.MAX_ANSWER_CHARS})
    return per_problem


def test_every_pair_the_fast_path_decides_gets_math_verifys_verdict(math_test, answers, parse, pytestconfig):
    golds = [problem.target.strip() for problem in math_test]
    n = len(golds)
    pairs = {(trap, gold) for trap in TRAPS for gold in TRAPS}
    for i, problem in enumerate(math_test):
        references = {golds[i], last_boxed(problem.solution) or golds[i]}
        for others, j in ((answers[i], i), (answers[i], (7 * i + 13) % n), (references, (i + 1) % n)):
            if golds[j]:  # an empty gold never reaches the pool
                pairs.update((answer, golds[j]) for answer in others)
    say = terminal_lines(pytestconfig)  # the proof takes a minute or more: say so rather than sit on a dot
    say(f"[fast path proof] {len(pairs)} pairs; math-verify grades each pair the fast path decides (about 70 s) ...")
    facts = {gold: gold_facts(gold, parse) for gold in {gold for _, gold in pairs}}

    decided, disagreements = 0, []
    for answer, gold in sorted(pairs):
        verdict = fast_verdict(answer, gold, facts[gold])
        before = fast_verdict(answer, gold)  # what a pool decides before any worker has seen the gold
        assert before is None or before == verdict, (answer, gold)
        if verdict is not None:
            decided += 1
            expected = verify_answer(answer, gold, parse)
            if verdict != expected:
                disagreements.append((answer, gold, verdict, expected))
    print(
        f"\nfast path proof: {len(pairs)} pairs, {decided} decided by the fast path, {len(disagreements)} disagreements"
    )
    assert not disagreements, disagreements[:20]
    assert decided > len(pairs) // 3  # most MATH answers are numbers: a fast path that stopped deciding fails


def test_the_numbers_the_fast_path_reads_are_the_numbers_math_verify_parses(answers, parse):
    strings = set().union(*answers, TRAPS)
    checked = 0
    for text in sorted(strings):
        number = reward_fast._number(text, assignment=True)
        if number is None:
            continue
        checked += 1
        values = [value for value in parse(text) if not isinstance(value, str)]
        assert len(values) == 1, (text, values)
        value = values[0].rhs if values[0].is_Equality else values[0]  # x = 3
        assert value.is_Number and (value.is_Rational or not number.exact), (text, value, number)
        if number.exact:
            assert Fraction(int(value.p), int(value.q)) == number.value, (text, value, number)
        else:  # a Float: its digits
            assert abs(Fraction(str(value)) - number.value) <= abs(number.value) * Fraction(1, 10**14), (text, value)
    print(f"\nnumbers read by the fast path and parsed by math-verify: {checked} of {len(strings)} answers")
    assert checked > len(strings) // 4


def test_a_gold_that_parses_to_nothing_or_only_a_string_is_never_decided_as_a_number(parse):
    # \frac{12}{5,525} is a string for math-verify: the same string matches, anything else does not
    facts = gold_facts("\\frac{12}{5,525}", parse)
    assert facts == (True, False, "", None, None)
    assert fast_verdict("\\frac{12}{5,525}", "\\frac{12}{5,525}", facts) == (True, False)
    assert fast_verdict("\\frac{12}{5525}", "\\frac{12}{5,525}", facts) is None
    assert fast_verdict("5.", "5.") is None and fast_verdict("5", "5.") is None


def test_two_stage_parsing_gives_latex2sympys_own_parses(math_test):
    """Workers parse with SLL first, LL on a syntax error (reward_worker.two_stage_latex_parsing): the same parses.

    Every reference answer of the MATH test set, the traps and every 64th variant of each kind,
    parsed by math-verify with latex2sympy as it ships (LL), then with the two-stage parser.
    """
    from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy
    from math_verify.parser import parse_latex_cached

    strings = set(TRAPS)
    for i, problem in enumerate(math_test):
        references = {problem.target.strip(), (last_boxed(problem.solution) or problem.target).strip()}
        strings |= references
        for kind, variant in enumerate(VARIANTS):
            if (i + kind) % 64 == 0:
                strings.update(form.strip() for reference in references for form in variant(reference))
    strings = sorted(s for s in strings if 0 < len(s) <= reward.MAX_ANSWER_CHARS)
    plain = _Latex2Sympy.create_parser
    assert not getattr(plain, "two_stage", False)
    shipped = [repr(reward_worker._parse(text)) for text in strings]
    parse_latex_cached.cache_clear()  # math-verify's own cache of the last 20 parses
    assert reward_worker.two_stage_latex_parsing()
    try:
        assert _Latex2Sympy.create_parser.two_stage
        two_stage = [repr(reward_worker._parse(text)) for text in strings]
    finally:
        _Latex2Sympy.create_parser = plain
    differences = [(text, a, b) for text, a, b in zip(strings, shipped, two_stage) if a != b]
    print(f"\ntwo-stage parsing: {len(strings)} strings, {len(differences)} parses differ")
    assert not differences, differences[:10]
    assert sum(value.startswith("[") and value != "[]" for value in shipped) > len(strings) // 2
