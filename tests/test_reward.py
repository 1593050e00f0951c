"""The math reward: extraction, math-verify equivalences, real-data agreement, bounds, processes."""

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from conftest import PAPER_DATA

from openrlhf_nsr import data, reward, reward_fast, reward_pool, reward_worker
from openrlhf_nsr.reward import GraderPool, grade, grade_batch, last_boxed, response_text, reward_func

LIMIT = 2.0  # per-sample wall-clock limit of the test pool
MARGIN = 1.5  # what a call may take beyond it (kill, bookkeeping)


@pytest.fixture(scope="module")
def pool():
    pool = GraderPool(workers=2, timeout=LIMIT)
    grade_batch(["\\boxed{x+1}", "\\boxed{x+2}"], ["y", "y"], pool)  # both workers started and ready
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def math_test():
    _, problems = data.load_problems(f"math={PAPER_DATA / 'math_test.parquet'}", label="target")
    return [p.solution for p in problems], [p.target for p in problems]


# ── Extraction ──


@pytest.mark.parametrize(
    "text,answer",
    [
        ("so \\boxed{42}.", "42"),
        ("\\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
        ("\\boxed {x^{2}}", "x^{2}"),
        ("\\boxed{7}<|im_end|><|endoftext|>", "7"),
        ("\\boxed{<|im_end|>7}", "7"),
        ("\\boxed{1}" * 5000 + "\\boxed{9}", "9"),
        (b"\\boxed{3}", "3"),
        ("no box here, the answer is 5", None),
        ("\\boxed{}", None),
        ("\\boxed{3", None),
        ("\\boxed{" + "x" * (reward.MAX_ANSWER_CHARS + 1) + "}", None),
        ("\\boxed{1} and an unclosed \\boxed{2", None),
        (None, None),
        (12, None),
    ],
)
def test_the_answer_is_the_content_of_the_last_boxed(text, answer):
    assert last_boxed(text) == answer


def test_the_prompt_cannot_supply_the_answer(pool):
    prompt = "Example: \\boxed{7}. Solve 3 + 4.<|im_start|>assistant\n"
    assert response_text(prompt + "It is \\boxed{7}", prompt) == "It is \\boxed{7}"
    assert reward_func([prompt + "I don't know"], [prompt], ["7"])["rewards"].tolist() == [0.0]
    # a tokenizer round trip that changed the prompt's start: still only the response is graded
    changed = "Example:  \\boxed{7}. Solve 3 + 4.<|im_start|>assistant\n"
    assert response_text(changed + "no idea", prompt) == "no idea"
    assert response_text("\\boxed{7} something else", prompt) == ""


# ── Equivalences (they follow math-verify), both directions ──

SHOULD_MATCH = [
    ("0.5", "\\frac{1}{2}"), ("\\frac{1}{2}", "\\dfrac{1}{2}"), ("\\frac12", "\\tfrac{1}{2}"), ("3", "x=3"),
    ("30^\\circ", "30"), ("[1,2)", "[1, 2)"), ("\\{1,2,3\\}", "\\{3,2,1\\}"), ("(1,2)", "(1, 2)"),
    ("50\\%", "50"), ("50\\%", "0.5"), ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}"), ("2\\sqrt{2}", "\\sqrt{8}"),
    ("1,000", "1000"), ("10", "10.0"), ("x^2+2x+1", "(x+1)^2"), ("\\text{(C)}", "C"), ("a+b", "b+a"),
]  # fmt: skip
SHOULD_NOT_MATCH = [
    ("(1,2]", "[1,2)"), ("(1,2)", "(2,1)"), ("\\pi", "3.14"), ("-1", "1"), ("3", "4"), ("\\infty", "-\\infty"),
    ("(-\\infty, 2]", "(-\\infty,2)"), ("1/3", "0.333"), ("2", "2.0000001"), ("\\sqrt{3}", "1.732"),
]  # fmt: skip


@pytest.mark.parametrize("a,b", SHOULD_MATCH)
def test_equivalent_forms_match_both_ways(a, b, pool):
    assert grade(f"\\boxed{{{b}}}", a, pool).correct and grade(f"\\boxed{{{a}}}", b, pool).correct


@pytest.mark.parametrize("a,b", SHOULD_NOT_MATCH)
def test_different_answers_do_not_match_either_way(a, b, pool):
    assert not grade(f"\\boxed{{{b}}}", a, pool).correct and not grade(f"\\boxed{{{a}}}", b, pool).correct


# ── Real data: the paper's MATH test set ──

# Reference solutions that do not match their own target, each investigated. The targets of the
# paper's data were normalised by a string normaliser that dropped \text / \mbox, spaces and units
# and collapsed the "\\" row separators of matrices to "\" (unparsable LaTeX): data, not grader.
COLLAPSED_MATRIX_ROWS = "data: pmatrix target with its \\\\ row separators collapsed to \\"
KNOWN_RESIDUE = {
    526: "data: target '440{cm}^2' lost \\text", 644: "data: target '19{}43' lost the 'and'",
    655: "data: target '{June20}' lost \\text and spaces", 1676: "math-verify: '7.2\\%' vs gold '7.2' (\\% dropped)",
    1714: "data: target '\\frac{\\}{p}i4+2-\\sqrt{2}' mangled", 1863: "data: target '45{units}^2' lost \\text",
    1901: "data: target '864^2' lost the unit", 1958: "data: target '144^3' lost the unit",
    1991: "data: target '8\\sqrt{3}{squareinches}' lost \\text", 2269: "solution: boxed answer ends with 'i.'",
    2465: "data: target '{A,D}' lost \\text", 3123: "data: target '{C,E}' lost \\text",
    3526: "data: empty target", 3647: "data: target '15^2' lost the unit", 3655: "data: target '12{}13' lost 'and'",
    3770: "data: target '{1:03PM}' lost \\text", 3845: "math-verify: '111, \\! 111, \\! 111' parsed as a set",
    3881: "data: target '{4:30p.m.}' lost \\text", 4060: "data: target is a sentence fragment",
    4134: "data: target '90{square' truncated", 4456: "data: target '{B,E,G}' lost \\text",
    4457: "data: target '45,135' lost the degrees (parsed as 45135)", 4552: "data: target '{C,F,H}' lost \\text",
    4631: "data: target '{A,C,F}' lost \\text", 4943: "data: target '7,-2,{}-5' lost 'and'",
}  # fmt: skip


def test_math_reference_solutions_match_their_own_targets(math_test, pool):
    solutions, targets = math_test
    verdicts = grade_batch(solutions, targets, pool)
    agreement = sum(v.correct for v in verdicts) / len(verdicts)
    mismatches = {i for i, v in enumerate(verdicts) if not v.correct}
    explained = {i for i in mismatches if i in KNOWN_RESIDUE or "pmatrix" in targets[i]}
    print(f"MATH test agreement: {agreement:.2%} ({len(verdicts) - len(mismatches)}/{len(verdicts)}); "
          f"{sum('pmatrix' in targets[i] for i in mismatches)} {COLLAPSED_MATRIX_ROWS}")  # fmt: skip
    assert mismatches == explained, f"unexplained: {sorted(mismatches - explained)[:20]}"
    assert not [i for i in KNOWN_RESIDUE if i not in mismatches], "a known residue case now matches: update the list"
    assert agreement >= 0.98
    assert not any(v.timed_out for v in verdicts)


# Different problems whose answers math-verify equates although they differ: '4' vs '4t' (it
# strips 't' as a unit of tonnes) and the equation 'x - 3z = 0' vs '0' (it compares the right side).
KNOWN_FALSE_POSITIVES = {(584, 4101), (4667, 2682)}


def test_solutions_graded_against_another_problems_target_almost_never_match(math_test, pool):
    solutions, targets = math_test
    n = len(solutions)
    pairs = [(i, (7 * i + 13) % n) for i in range(n)]
    pairs = [(i, j) for i, j in pairs if targets[i].replace(" ", "") != targets[j].replace(" ", "")]
    verdicts = grade_batch([solutions[i] for i, _ in pairs], [targets[j] for _, j in pairs], pool)
    false_positives = {pair for pair, v in zip(pairs, verdicts) if v.correct}
    rate = len(false_positives) / len(pairs)
    print(f"cross-problem false-positive rate: {rate:.3%} ({len(false_positives)}/{len(pairs)})")
    assert false_positives <= KNOWN_FALSE_POSITIVES and rate < 0.001


# ── Bounds: any input, a valid reward within the limit ──

ADVERSARIAL = {
    "none": None, "empty": "", "int": 123, "float": 3.5, "object": object(), "list": ["\\boxed{3}"],
    "bytes": b"\\boxed{3}", "invalid_utf8": b"\\boxed{\xff\xfe}", "lone_surrogate": "\\boxed{\ud800}",
    "megabytes": "x" * 5_000_000 + "\\boxed{3}", "unicode_garbage": "".join(map(chr, range(0x2000, 0x4000))),
    "many_boxes": "\\boxed{1}" * 20000, "deep_nesting": "\\boxed{" + "{" * 5000 + "}" * 5001,
    "nested_but_short": "\\boxed{" + "{" * 40 + "1" + "}" * 41, "power_tower": "\\boxed{10^{10^{10}}}",
    "power_tower_4": "\\boxed{9^{9^{9^{9}}}}", "factorial": "\\boxed{1000000000!}",
    "frac_spam": "\\boxed{" + "\\frac{1}{" * 30 + "2" + "}" * 30 + "}", "unbalanced": "\\boxed{\\left( 3 }",
    "code": "\\boxed{__import__('os').system('touch /tmp/openrlhf_nsr_pwned')}", "eval": "\\boxed{eval('1+2')}",
    "latex_env": "\\boxed{\\begin{array}{c}" + "1\\\\" * 300 + "\\end{array}}",
}  # fmt: skip


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_any_response_gets_a_valid_reward_within_the_limit(name, pool):
    start = time.monotonic()
    verdict = grade(ADVERSARIAL[name], "3", pool)
    elapsed = time.monotonic() - start
    assert verdict.score in (0.0, 1.0) and elapsed < LIMIT + MARGIN, (verdict, elapsed)
    if name in ("bytes", "megabytes"):
        assert verdict.correct
    if name in ("code", "eval"):
        assert not verdict.correct and not os.path.exists("/tmp/openrlhf_nsr_pwned")


@pytest.mark.parametrize("gold", [None, "", "   ", [5], b"", "\\frac{", "{" * 100])
def test_an_empty_or_unparsable_gold_scores_zero_and_is_counted(gold, pool):
    verdict = grade("\\boxed{3}", gold, pool)
    assert not verdict.correct and verdict.gold_invalid


def test_a_number_gold_is_graded_as_its_text(pool):
    """A JSON column of numbers reaches the reward as ints / floats (OpenRLHF passes labels through)."""
    assert grade("\\boxed{5}", 5, pool).correct and grade("\\boxed{0.5}", 0.5, pool).correct
    wrong = grade("\\boxed{3}", 5, pool)
    assert not wrong.correct and not wrong.gold_invalid
    assert grade("\\boxed{1}", True, pool).gold_invalid  # a boolean is not a number label


def test_a_gold_without_mathematical_meaning_is_compared_as_a_string_and_counted(pool):
    # MATH test #1598: math-verify's LaTeX parser rejects the thousands separator in the fraction
    assert grade("\\boxed{\\frac{12}{5,\\!525}}", "\\frac{12}{5,525}", pool) == (
        True,
        "\\frac{12}{5,\\!525}",
        False,
        True,
    )
    assert not grade("\\boxed{\\frac{12}{5525}}", "\\frac{12}{5,525}", pool).correct


def test_a_stuck_worker_is_killed_and_replaced(pool):
    start = time.monotonic()
    verdict = grade("\\boxed{10^{10^{10^{10}}}}", "7", pool)
    assert verdict.timed_out and not verdict.correct and time.monotonic() - start < LIMIT + MARGIN
    assert grade("\\boxed{\\frac{14}{2}}", "7", pool).correct  # the pool still works
    assert all(w.proc.poll() is None for w in pool._all) and len(pool._all) == pool.workers


def test_an_unreadable_reply_counts_as_a_dead_worker_and_the_pool_goes_on():
    pool = GraderPool(workers=1, timeout=LIMIT)
    try:
        assert grade("\\boxed{x+1}", "x+1", pool).correct
        pool._all[0]._buffer = b"stray bytes\n"  # read as the next reply: not the protocol's JSON
        verdict = grade("\\boxed{x+2}", "x+2", pool)
        assert verdict.timed_out and not verdict.correct
        with ThreadPoolExecutor(max_workers=1) as executor:  # the lone worker slot must not be lost
            assert executor.submit(grade, "\\boxed{x+3}", "x+3", pool).result(timeout=60).correct
    finally:
        pool.close()


def test_a_worker_started_from_a_thread_that_has_ended_keeps_working():
    # Linux's PR_SET_PDEATHSIG fires when the starting *thread* exits: grade_batch's threads do
    pool = GraderPool(workers=1, timeout=LIMIT)
    try:
        caller = threading.Thread(target=grade, args=("\\boxed{x+1}", "y", pool))
        caller.start()
        caller.join()
        assert len(pool._all) == 1
        verdict = grade("\\boxed{x+2}", "x+2", pool)
        assert verdict.correct and not verdict.timed_out and pool._all[0].proc.poll() is None
    finally:
        pool.close()


def test_workers_start_when_needed_up_to_the_limit():
    pool = GraderPool(workers=2, timeout=LIMIT)
    try:
        assert grade_batch(["\\boxed{5}", "\\boxed{0.5}"], ["5", "\\frac12"], pool)[1].correct
        assert pool._all == []  # the fast path settled both: no process
        assert not grade("\\boxed{x+1}", "y", pool).correct and len(pool._all) == 1
        assert not grade("\\boxed{x+2}", "y", pool).correct and len(pool._all) == 1  # the idle one again
        with ThreadPoolExecutor(max_workers=1) as background:
            stuck = background.submit(grade, "\\boxed{10^{10^{10^{10}}}}", "7", pool)  # holds a worker LIMIT s
            deadline = time.monotonic() + LIMIT
            while pool.worker_requests < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not grade("\\boxed{x+3}", "y", pool).correct and len(pool._all) == 2  # all busy: one more
            assert stuck.result().timed_out
        assert grade("\\boxed{x+4}", "x+4", pool).correct and len(pool._all) == 2  # killed and replaced
        with ThreadPoolExecutor(max_workers=8) as executor:
            verdicts = list(executor.map(lambda i: grade(f"\\boxed{{x+{i}}}", "x+9", pool), range(5, 13)))
        assert [v.correct for v in verdicts] == [i == 9 for i in range(5, 13)] and len(pool._all) == 2
    finally:
        pool.close()


def test_many_threads_at_once_all_get_valid_rewards(pool):
    cases = [("\\boxed{%d}" % (i % 7), str(i % 5)) for i in range(300)] + [("\\boxed{9^{9^{9^{9^{9}}}}}", "1")]

    def call(case):
        out = reward_func([case[0]], [""], [case[1]])
        return out["rewards"].tolist(), case

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=64) as executor:
        results = list(executor.map(call, cases))
    for rewards, (response, gold) in results:
        assert rewards == [float(last_boxed(response) == gold)]
    assert time.monotonic() - start < 60


# ── The fast path: what never needs a worker (tests/test_reward_fast_path.py: its verdicts) ──


@pytest.fixture
def lone_worker():
    pool = GraderPool(workers=1, timeout=LIMIT)
    yield pool
    pool.close()


def test_plain_numbers_are_graded_without_a_worker(lone_worker):
    responses = [
        "\\boxed{0.5}",
        "\\boxed{\\dfrac12}",
        "\\boxed{x = 1,000}",
        "\\boxed{5}",
        "\\boxed{30^\\circ}",
        "no box",
    ]
    golds = ["\\frac{1}{2}", "0.5", "1000", "5.0", "30", "1"]
    verdicts = grade_batch(responses, golds, lone_worker)
    assert [v.correct for v in verdicts] == [True, True, False, True, True, False]  # x = 1,000: a set for math-verify
    assert not any(v.gold_invalid or v.timed_out for v in verdicts)
    assert lone_worker.worker_requests == 1  # x = 1,000 only


def test_what_a_worker_learns_about_a_gold_settles_its_other_answers(lone_worker):
    gold = "\\frac{\\sqrt{3}}{2}"
    assert grade("\\boxed{\\sin 60^\\circ}", gold, lone_worker).timed_out is False
    assert lone_worker.worker_requests == 1
    for answer, correct in [(gold, True), ("5", False), ("x = 0.866", False), ("-\\frac{\\sqrt{3}}{2}", False)]:
        verdict = grade(f"\\boxed{{{answer}}}", gold, lone_worker)
        assert verdict.correct is correct and not verdict.gold_invalid, answer
    assert lone_worker.worker_requests == 2  # the last answer is no plain number: a worker grades it


def test_a_batch_sends_one_pair_per_new_gold_first(lone_worker):
    # the interval needs a worker; what it learns about the gold decides the numbers and the gold itself
    answers = ["7", "-1", "2.5", "(0, 1)", "[0,1]", "\\left[0, 1\\right]", "0.5"]
    verdicts = grade_batch([f"\\boxed{{{a}}}" for a in answers], ["[0,1]"] * len(answers), lone_worker)
    assert [v.correct for v in verdicts] == [False, False, False, False, True, True, False]
    assert lone_worker.worker_requests == 2  # (0, 1) and \left[0, 1\right]; a number sent first would make 3


def test_concurrent_callers_on_a_new_gold_share_one_worker_request(lone_worker):
    gold = "\\frac{\\pi}{4}"
    answers = [gold, "0.785", "1", "x=3", "\\frac{1}{4}"] * 8
    with ThreadPoolExecutor(max_workers=16) as executor:  # as OpenRLHF calls: one sample per thread
        verdicts = list(executor.map(lambda a: grade(f"\\boxed{{{a}}}", gold, lone_worker), answers))
    assert [v.correct for v in verdicts] == [True, False, False, False, False] * 8
    assert lone_worker.worker_requests == 1


def test_a_batch_sends_each_gold_to_one_worker():
    golds = ["(1,2)", "[0,1]", "x^2+1", "\\{1,2\\}"]
    answers = ["(1,3)", "(2,1)", "x+1", "[1,2)"]
    pool = GraderPool(workers=2)
    try:
        verdicts = grade_batch(
            [f"\\boxed{{{a}}}" for g in golds for a in answers], [g for g in golds for _ in answers], pool
        )
        assert [v.correct for v in verdicts] == [reward_worker.verify_answer(a, g)[0] for g in golds for a in answers]
        assert not any(v.timed_out for v in verdicts)
        assert pool.worker_requests == 16
        parsed = [gold for worker in pool._all for gold in worker.golds]
        assert sorted(parsed) == sorted(golds)  # each gold parsed by one worker only
        assert all(worker.golds for worker in pool._all)  # and both workers had work
    finally:
        pool.close()


def test_learning_about_a_gold_is_bounded_in_time():
    start = time.monotonic()
    facts = reward_worker.gold_facts("\\sin(10^{10^{6}})", time_limit=0.3)  # its value takes sympy minutes
    assert time.monotonic() - start < 0.3 + MARGIN and facts.meaning and facts.kind == ""
    assert reward_worker.gold_facts("\\frac{\\sqrt{3}}{2}").kind == reward_fast.CONSTANT  # sympy still works


def test_the_default_pool_has_a_worker_per_usable_core_unless_told():
    code = "from openrlhf_nsr import reward_pool; print(reward_pool.DEFAULT_WORKERS)"
    env = {k: v for k, v in os.environ.items() if k not in (reward_pool.WORKERS_ENV, reward_pool.ACTORS_PER_NODE_ENV)}

    def workers(**extra):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**env, **extra},
                                timeout=120)  # fmt: skip
        return int(result.stdout)

    cores = len(os.sched_getaffinity(0))
    assert workers() == min(reward_pool.MAX_DEFAULT_WORKERS, cores)
    assert workers(**{reward_pool.WORKERS_ENV: "3"}) == 3
    # rollout actors sharing the node share its cores (at least one worker each); an explicit count wins
    assert workers(**{reward_pool.ACTORS_PER_NODE_ENV: "2"}) == max(1, min(reward_pool.MAX_DEFAULT_WORKERS, cores // 2))
    assert workers(**{reward_pool.ACTORS_PER_NODE_ENV: str(cores + 5)}) == 1
    assert workers(**{reward_pool.ACTORS_PER_NODE_ENV: "2", reward_pool.WORKERS_ENV: "5"}) == 5


# ── The OpenRLHF contract ──


def test_openrlhf_loads_the_file_and_gets_rewards_of_the_right_shape():
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    executor = SingleTurnAgentExecutor(reward.__file__)  # loads it by path, as every vLLM actor does
    prompt = "<|im_start|>user\nWhat is 1/2?<|im_end|>\n<|im_start|>assistant\n"
    (info,) = asyncio.run(executor._fetch_rewards_via_func([prompt + "It is \\boxed{0.5}"], [prompt], ["\\frac{1}{2}"]))
    assert torch.tensor([info["rewards"]]).tolist() == [1.0]  # how samples_generator builds Experience.rewards
    assert torch.tensor([info["scores"]]).shape == (1,)
    assert {k: v.flatten()[0].item() for k, v in info["extra_logs"].items()} == {
        "answer_found": 1.0, "grading_timeout": 0.0, "gold_invalid": 0.0,
    }  # fmt: skip


def test_reward_func_never_raises_and_never_returns_none():
    for args in [(None, None, None), ([1, 2], [None], []), (["\\boxed{1}"] * 3, ["", "", ""], ["1", "2", None])]:
        out = reward_func(*args)
        assert out["rewards"] is not None and set(out["rewards"].tolist()) <= {0.0, 1.0}
    assert reward_func(["\\boxed{1}"] * 3, ["", "", ""], ["1", "2", None])["rewards"].tolist() == [1.0, 0.0, 0.0]


def test_the_module_prints_its_path_for_plain_openrlhf():
    out = subprocess.run([sys.executable, "-m", "openrlhf_nsr.reward"], capture_output=True, text=True, timeout=120)
    assert (
        out.stdout.strip() == reward.__file__
        and importlib.util.find_spec("openrlhf_nsr.reward").origin == reward.__file__
    )


# ── Processes ──

_PRINT_WORKERS = (
    "import json, sys; from openrlhf_nsr.reward import grade, default_pool; grade('\\\\boxed{x}', 'y'); "
    "print(json.dumps([w.proc.pid for w in default_pool()._all]), flush=True); "
)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting for its reaper counts as gone
        return stat.read().split(")")[-1].split()[0] != "Z"


def _wait_gone(pids, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return not any(_alive(p) for p in pids)


_FORKED = r"""
import os, sys, time
from openrlhf_nsr.reward import GraderPool, default_pool, grade
parent = default_pool()
assert grade("\\boxed{x+1}", "x+1").correct  # the parent's spawner thread and first worker
parent_workers = [w.proc.pid for w in parent._all]
pid = os.fork()
if pid == 0:  # as datasets.map(num_proc=...) or a plain fork would
    own = GraderPool(workers=1, timeout=5)  # a new pool starts its worker from the child's own thread
    failed = 0 if grade("\\boxed{x+3}", "x+3", own).correct else 1
    own.close()
    failed |= 0 if grade("\\boxed{x+2}", "x+2").correct and default_pool() is not parent else 2
    failed |= 0 if all(w.proc.pid not in parent_workers for w in default_pool()._all) else 4
    sys.exit(failed)  # a normal exit: the exit handlers run, and must leave the parent's workers be
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("child", os.waitstatus_to_exitcode(status))
        break
    time.sleep(0.1)
else:
    os.kill(pid, 9)
    print("child hung")
print("parent", grade("\\boxed{x+4}", "x+4").correct, all(w.proc.poll() is None for w in parent._all))
"""


def test_a_forked_child_grades_with_its_own_workers_and_leaves_the_parents_alone():
    out = subprocess.run([sys.executable, "-c", _FORKED], capture_output=True, text=True, timeout=180)
    assert out.stdout.splitlines() == ["child 0", "parent True True"], out.stdout + out.stderr[-2000:]


def test_no_orphaned_workers_after_the_caller_exits():
    out = subprocess.run([sys.executable, "-c", _PRINT_WORKERS], capture_output=True, text=True, timeout=120)
    pids = json.loads(out.stdout.strip().splitlines()[-1])
    assert pids and _wait_gone(pids)


def test_no_orphaned_workers_after_the_caller_is_killed():
    proc = subprocess.Popen([sys.executable, "-c", _PRINT_WORKERS + "import time; time.sleep(600)"],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    pids = json.loads(proc.stdout.readline())
    assert all(_alive(p) for p in pids)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _wait_gone(pids)


def test_grading_works_inside_a_ray_actor_from_worker_threads():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    try:

        @ray.remote
        class RolloutActor:  # like a vLLM actor: loads the reward by path, calls it off the main thread
            def __init__(self, path):
                spec = importlib.util.spec_from_file_location("reward_func", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                self.reward_func = module.reward_func

            async def rewards(self, cases):
                calls = [asyncio.to_thread(self.reward_func, [q], [""], [g]) for q, g in cases]
                return [out["rewards"].tolist() for out in await asyncio.gather(*calls)]

        actor = RolloutActor.remote(reward.__file__)
        cases = [("\\boxed{\\dfrac{1}{2}}", "0.5"), ("\\boxed{3}", "4"), ("\\boxed{10^{10^{10}}}", "1")] * 4
        assert ray.get(actor.rewards.remote(cases), timeout=120) == [[1.0], [0.0], [0.0]] * 4
    finally:
        ray.shutdown()


def test_the_pool_refuses_invalid_settings():
    with pytest.raises(ValueError, match="workers >= 1 and timeout > 0"):
        GraderPool(workers=0)


def test_concurrent_callers_share_one_default_pool():
    pools = []
    threads = [threading.Thread(target=lambda: pools.append(reward.default_pool())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(p) for p in pools}) == 1
