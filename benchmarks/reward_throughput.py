"""Reward grading speed: ours vs plain sequential math-verify, side by side in one run.

    .venv/bin/python benchmarks/reward_throughput.py [--problems 400] [--samples 16,32,64]
        [--workers N] [--data tests/data/paper/math_test.parquet] [--seed 0]   # --help: each option's default

Workload, built from the MATH test reference solutions (realistic LaTeX) as in pass@k sampling:
for each problem, ``--samples`` responses drawn from its own solution (correct), the solutions of
three other problems (wrong: a policy's few wrong modes) and truncated solutions (no parsable
answer), so the same answers repeat many times per problem. For each number of samples per
problem, on the same samples:

- baseline: per sample, sequentially, in a fresh process warmed as a fresh worker is: extract the
  last boxed answer, then one math_verify.parse of the gold, one of the answer and one verify
  (openrlhf_nsr.reward_worker.verify_answer); no cache, no pool. p50 / p99: per sample.
- math-verify as documented: per sample, sequentially, in a fresh process warmed the same way,
  ``verify(parse(gold), parse(response))`` with math-verify's defaults (LaTeX and expression
  extraction from the whole response, its signal timeouts): what a user would write without
  this package. Other extraction rules, so some verdicts differ (counted, not a failure).
- grade_batch: openrlhf_nsr.reward.grade_batch on all samples at once, fresh GraderPool (workers
  started and warmed first). p50 / p99: one grade() call per sample, in order, on another fresh
  pool (cache hits count as they would in training).
- grade_batch bound: the work grade_batch leaves to its workers, done sequentially in a fresh
  process warmed as a worker is (gold facts, math-verify on each pair the fast path cannot settle,
  as a worker parses), divided by the number of workers: its time with perfect parallelism and no
  overhead, so the ratio grade_batch could reach on these cores.
- OpenRLHF: OpenRLHF 0.11.2's own calling pattern (openrlhf/utils/agent.py, SingleTurnAgentExecutor):
  reward.py loaded by path, then for every sample of every prompt at once
  ``asyncio.to_thread(reward_func, [query], [prompt], [label])``, the query being the chat prompt
  followed by the response and ``<|im_end|>``; in a fresh process, with its own default pool
  (``--workers`` workers). p50 / p99: per call, in its thread.
- OpenRLHF, no grading: the same calls to a reward function that returns at once: what the
  calling pattern itself costs (asyncio.to_thread per sample), a bound on any reward function's
  ratio under it.

Prints samples/s, the ratio to the baseline, p50 / p99 latency and the verdicts that differ from
the baseline (0 expected for our graders, timeouts excepted; exit status 1 otherwise), and how
many distinct (answer, gold) pairs reached a worker (the rest: settled in the caller, by the
cache or reward_fast.fast_verdict); last, the headline ratios at 32 samples per problem. About 4
minutes on 2 cores (the two sequential math-verify runs are most of it).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import multiprocessing
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from openrlhf_nsr import data, reward, reward_fast, reward_pool, reward_worker
from openrlhf_nsr.reward import GraderPool, grade, grade_batch, last_boxed
from openrlhf_nsr.reward_worker import WARMUP, verify_answer

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "paper" / "math_test.parquet"
CHAT_PROMPT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"


def build_workload(path: Path, problems: int, samples: int, seed: int):
    """(responses, golds, prompts): ``samples`` responses for each of ``problems`` MATH problems."""
    _, rows = data.load_problems(f"math={path}", label="target")
    rng = random.Random(seed)
    responses, golds, prompts = [], [], []
    for i in rng.sample(range(len(rows)), problems):
        wrong = [rows[j].solution for j in rng.sample(range(len(rows)), 3)]
        truncated = rows[i].solution[: len(rows[i].solution) // 2]
        for _ in range(samples):
            kind = rng.random()
            responses.append(rows[i].solution if kind < 0.4 else rng.choice(wrong) if kind < 0.8 else truncated)
            golds.append(rows[i].target)
            prompts.append(CHAT_PROMPT.format(rows[i].problem))
    return responses, golds, prompts


def baseline(path: Path, problems: int, samples: int, seed: int):
    """Plain sequential math-verify: (verdicts, seconds, per-sample latencies).

    Runs in a fresh process warmed like a fresh worker (reward_worker.WARMUP), not one that earlier runs
    have warmed further.
    """
    for answer, gold in WARMUP:
        verify_answer(answer, gold)

    def grade_one(response, gold):
        answer = last_boxed(response)
        return answer is not None and verify_answer(answer, gold)[0]

    return sequentially(grade_one, *build_workload(path, problems, samples, seed)[:2])


def as_documented(path: Path, problems: int, samples: int, seed: int):
    """math-verify as its README uses it, per sample: (verdicts, seconds, per-sample latencies)."""
    from math_verify import parse, verify

    for answer, gold in WARMUP:
        verify(parse(f"${gold}$"), parse(f"${answer}$"))
    grade_one = lambda response, gold: bool(verify(parse(gold), parse(response)))  # noqa: E731
    return sequentially(grade_one, *build_workload(path, problems, samples, seed)[:2])


def sequentially(grade_one, responses, golds):
    """(verdicts, seconds, per-sample latencies) of grade_one on every sample, one after another."""
    verdicts, latency = [], []
    start = time.perf_counter()
    for response, gold in zip(responses, golds):
        t0 = time.perf_counter()
        verdicts.append(grade_one(response, gold))
        latency.append(time.perf_counter() - t0)
    return verdicts, time.perf_counter() - start, latency


def in_fresh_process(function, *args):
    """function(*args) in a fresh spawned interpreter: warmed by nothing that ran here before."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as fresh:
        return fresh.submit(function, *args).result()


def workers_share(path: Path, problems: int, samples: int, seed: int):
    """The work grade_batch leaves to workers, in one process: (seconds, pairs)."""
    reward_worker.two_stage_latex_parsing()
    for answer, gold in WARMUP:
        verify_answer(answer, gold)
    responses, golds, _ = build_workload(path, problems, samples, seed)
    distinct = [key for key in dict.fromkeys(zip(map(last_boxed, responses), golds)) if key[0] is not None]
    pending = [key for key in distinct if reward_fast.fast_verdict(*key) is None]
    parse = functools.lru_cache(maxsize=reward_worker.PARSE_CACHE_SIZE)(reward_worker._parse)
    facts, pairs, seconds = {}, 0, 0.0
    for answer, gold in (key for task in reward._worker_tasks(pending, 1) for key in task):
        start = time.perf_counter()
        if gold not in facts:
            facts[gold] = reward_worker.gold_facts(gold, parse)
        if reward_fast.fast_verdict(answer, gold, facts[gold]) is None:
            verify_answer(answer, gold, parse)
            pairs += 1
        seconds += time.perf_counter() - start
    return seconds, pairs


def warm_up(grade_many, workers: int) -> None:
    """Start every worker of a fresh pool and wait until it is ready: pairs only a worker can grade."""
    grade_many([f"\\boxed{{x_{i}}}" for i in range(workers)], ["y"] * workers)


def batch(responses, golds, workers):
    """grade_batch on all samples: (verdicts, seconds, per-sample latencies, pairs sent to a worker)."""
    pool = GraderPool(workers=workers)
    warm_up(lambda r, g: grade_batch(r, g, pool), workers)
    warm_requests = pool.worker_requests
    start = time.perf_counter()
    verdicts = grade_batch(responses, golds, pool)
    seconds = time.perf_counter() - start
    pool.close()
    latency_pool = GraderPool(workers=workers)
    warm_up(lambda r, g: grade_batch(r, g, latency_pool), workers)
    latency = []
    for response, gold in zip(responses, golds):
        t0 = time.perf_counter()
        grade(response, gold, latency_pool)
        latency.append(time.perf_counter() - t0)
    latency_pool.close()
    return verdicts, seconds, latency, pool.worker_requests - warm_requests


def openrlhf_pattern(responses, golds, prompts, workers):
    """OpenRLHF's calls, one sample each from its thread pool: ([(correct, timed_out, seconds)], seconds, worker pairs).

    In a fresh process: reward.py loaded by path grades with the process's default pool
    (openrlhf_nsr.reward_pool), which must be new and have ``workers`` workers.
    """
    told = os.environ.get(reward_pool.WORKERS_ENV)
    os.environ[reward_pool.WORKERS_ENV] = str(workers)  # read when the fresh process imports reward_pool
    try:
        return in_fresh_process(_openrlhf_pattern, responses, golds, prompts, workers)
    finally:
        if told is None:
            del os.environ[reward_pool.WORKERS_ENV]
        else:
            os.environ[reward_pool.WORKERS_ENV] = told


def _openrlhf_pattern(responses, golds, prompts, workers):
    spec = importlib.util.spec_from_file_location("reward_func", reward.__file__)  # as OpenRLHF loads it
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    warm_up(lambda r, g: module.reward_func(r, [""] * len(r), g), workers)
    warm_requests = module.default_pool().worker_requests

    def timed(query, prompt, label):
        t0 = time.perf_counter()
        out = module.reward_func([query], [prompt], [label])
        correct, timed_out = out["rewards"].item() == 1.0, out["extra_logs"]["grading_timeout"].item() == 1.0
        return correct, timed_out, time.perf_counter() - t0

    start = time.perf_counter()
    results = asyncio.run(rollout(timed, responses, golds, prompts))
    seconds = time.perf_counter() - start
    pool = module.default_pool()
    pool.close()
    return results, seconds, pool.worker_requests - warm_requests


async def rollout(call, responses, golds, prompts):
    """OpenRLHF's SingleTurnAgentExecutor: every sample's reward call in its own to_thread, all at once."""
    calls = [asyncio.to_thread(call, p + r + "<|im_end|>", p, g) for r, g, p in zip(responses, golds, prompts)]
    return await asyncio.gather(*calls)


def pattern_alone(responses, golds, prompts):
    """Seconds for OpenRLHF's calls to a reward function that returns at once."""
    start = time.perf_counter()
    asyncio.run(rollout(lambda query, prompt, label: None, responses, golds, prompts))
    return time.perf_counter() - start


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="the paper's MATH test parquet (default %(default)s, carried by the repo)")  # fmt: skip
    parser.add_argument("--problems", type=int, default=400,
                        help="MATH problems in the workload, drawn at random from --data (default %(default)s)")  # fmt: skip
    parser.add_argument("--samples", default="16,32,64",
                        help="samples per problem, comma-separated: one workload each (pass@k sampling; the paper: 8 "
                        "per prompt in training, 64 / 256 in evaluation) (default %(default)s)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=reward_pool.DEFAULT_WORKERS,
                        help="grader worker processes (default %(default)s here: the grader pool's default)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the workload's random draws (default %(default)s)")  # fmt: skip
    args = parser.parse_args(argv)
    if not args.data.exists():
        parser.error(f"--data {args.data} does not exist: pass the path of the paper's math_test.parquet")
    try:
        sample_counts = [int(k) for k in args.samples.split(",")]
    except ValueError:
        parser.error(f"--samples {args.samples!r}: expected comma-separated integers")

    print(f"{args.problems} MATH problems, {args.workers} workers, {os.cpu_count()} CPUs")
    print(
        f"\n{'k':>3} {'grader':<34}{'samples/s':>10}{'ratio':>8}{'p50 ms':>8}{'p99 ms':>8}{'differ':>7}{'timeouts':>9}"
    )
    ratios, failed = {}, False
    for k in sample_counts:
        workload = (args.data, args.problems, k, args.seed)
        responses, golds, prompts = build_workload(*workload)
        n = len(responses)
        distinct = set(zip(map(last_boxed, responses), golds))
        expected, base_seconds, base_latency = in_fresh_process(baseline, *workload)
        documented, documented_seconds, documented_latency = in_fresh_process(as_documented, *workload)
        share_seconds, share_pairs = in_fresh_process(workers_share, *workload)
        verdicts, batch_seconds, batch_latency, batch_pairs = batch(responses, golds, args.workers)
        calls, rlhf_seconds, rlhf_pairs = openrlhf_pattern(responses, golds, prompts, args.workers)
        alone_seconds = pattern_alone(responses, golds, prompts)
        rows = [
            ("baseline (sequential math-verify)", base_seconds, base_latency, [], []),
            ("math-verify as documented", documented_seconds, documented_latency, documented, [False] * n),
            (f"grade_batch ({batch_pairs} to workers)", batch_seconds, batch_latency,
             [v.correct for v in verdicts], [v.timed_out for v in verdicts]),
            (f"grade_batch bound ({share_pairs} / {args.workers})", share_seconds / args.workers, [], [], []),
            (f"OpenRLHF calls ({rlhf_pairs} to workers)", rlhf_seconds, [c[2] for c in calls],
             [c[0] for c in calls], [c[1] for c in calls]),
            ("OpenRLHF calls, no grading (bound)", alone_seconds, [], [], []),
        ]  # fmt: skip
        for name, seconds, latency, correct, timed_out in rows:
            differ = sum(c != e for c, e, t in zip(correct, expected, timed_out) if not t)
            failed |= differ > 0 and not name.startswith("math-verify")  # other extraction rules
            ratios[k, name.split(" (")[0]] = base_seconds / seconds
            p50, p99 = (f"{percentile(latency, q) * 1e3:.2f}" if latency else "" for q in (0.5, 0.99))
            print(f"{k:>3} {name:<34}{n / seconds:>10.0f}{base_seconds / seconds:>7.1f}x{p50:>8}{p99:>8}"
                  f"{differ if correct else '':>7}{sum(timed_out) if correct else '':>9}")  # fmt: skip
        print(f"    ({n} samples, {len(distinct)} distinct (answer, gold) pairs)")
    headline = 32 if 32 in sample_counts else sample_counts[0]
    documented = ratios[headline, "grade_batch"] / ratios[headline, "math-verify as documented"]
    print(f"\nreward throughput at {headline} samples per problem: {ratios[headline, 'grade_batch']:.1f} times "
          f"sequential math-verify, {documented:.1f} times math-verify as documented (OpenRLHF's calling "
          f"pattern: {ratios[headline, 'OpenRLHF calls']:.1f} times; with no grading at all: "
          f"{ratios[headline, 'OpenRLHF calls, no grading']:.1f} times)")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
