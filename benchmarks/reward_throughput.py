"""Reward grading speed: our batch grader vs the plain sequential math-verify baseline, one run.

    .venv/bin/python benchmarks/reward_throughput.py [--problems 400] [--samples 16] [--workers 2]
        [--data tests/data/paper/math_test.parquet]

Workload, built from the MATH test reference solutions (realistic LaTeX) as in pass@k sampling:
for each problem, ``--samples`` responses drawn from its own solution (correct), the solutions of
three other problems (wrong: a policy's few wrong modes) and truncated solutions (no parsable
answer), so the same answers repeat many times per problem.

- baseline: per sample, in this process, sequentially: extract the last boxed answer, then one
  math_verify.parse of the gold, one of the answer and one verify (openrlhf_nsr.reward.verify_answer);
  no cache, no pool.
- ours: openrlhf_nsr.reward.grade_batch with a fresh GraderPool (workers started and warmed first):
  deduplicated, cached, graded in parallel worker processes with the per-sample time limit.

Prints samples/s of both, their ratio, p50 / p99 per-sample latency (ours: one grade() call per
sample on another fresh pool, so cache hits count as they would in training) and the number of
verdicts that differ (0 expected, timeouts excepted). Expected wall-clock: about 1 minute on 2 cores.
Both sides are warmed first with reward.WARMUP (each worker does it before reporting ready).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from openrlhf_nsr import data
from openrlhf_nsr.reward import WARMUP, GraderPool, grade, grade_batch, last_boxed, verify_answer

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "paper" / "math_test.parquet"


def build_workload(path: Path, problems: int, samples: int, seed: int):
    _, rows = data.load_problems(f"math={path}", label="target")
    solutions, targets = [p.solution for p in rows], [p.target for p in rows]
    rng = random.Random(seed)
    responses, golds = [], []
    for i in rng.sample(range(len(solutions)), problems):
        wrong = [solutions[j] for j in rng.sample(range(len(solutions)), 3)]
        truncated = solutions[i][: len(solutions[i]) // 2]
        for _ in range(samples):
            kind = rng.random()
            responses.append(solutions[i] if kind < 0.4 else rng.choice(wrong) if kind < 0.8 else truncated)
            golds.append(targets[i])
    return responses, golds


def baseline_grade(response: str, gold: str) -> bool:
    answer = last_boxed(response)
    return answer is not None and verify_answer(answer, gold)[0]


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MATH test parquet (the paper's data)")
    parser.add_argument("--problems", type=int, default=400)
    parser.add_argument(
        "--samples",
        type=int,
        default=64,
        help="samples per problem (pass@k sampling; the paper: 8 per prompt in training, 64 / 256 in evaluation)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.data.exists():
        parser.error(f"--data {args.data} does not exist: pass the path of the paper's math_test.parquet")

    responses, golds = build_workload(args.data, args.problems, args.samples, args.seed)
    n = len(responses)
    distinct = len(set(zip(map(last_boxed, responses), golds)))
    print(f"workload: {n} samples, {args.problems} problems x {args.samples}, {distinct} distinct (answer, gold) pairs")

    for answer, gold in WARMUP:  # warm this process as every worker is warmed: steady state for both
        verify_answer(answer, gold)
    baseline_verdicts, baseline_latency = [], []
    start = time.perf_counter()
    for response, gold in zip(responses, golds):
        t0 = time.perf_counter()
        baseline_verdicts.append(baseline_grade(response, gold))
        baseline_latency.append(time.perf_counter() - t0)
    baseline_time = time.perf_counter() - start

    pool = GraderPool(workers=args.workers)
    grade_batch(["\\boxed{0}"] * args.workers, ["1"] * args.workers, pool)  # start + warm the workers
    start = time.perf_counter()
    verdicts = grade_batch(responses, golds, pool)
    ours_time = time.perf_counter() - start
    pool.close()

    latency_pool = GraderPool(workers=args.workers)
    grade("\\boxed{0}", "1", latency_pool)
    ours_latency = []
    for response, gold in zip(responses, golds):
        t0 = time.perf_counter()
        grade(response, gold, latency_pool)
        ours_latency.append(time.perf_counter() - t0)
    latency_pool.close()

    timeouts = sum(v.timed_out for v in verdicts)
    differ = sum(v.correct != b for v, b in zip(verdicts, baseline_verdicts) if not v.timed_out)
    rows = [
        ("baseline (sequential parse + verify)", n / baseline_time, baseline_latency),
        (f"ours (grade_batch, {args.workers} workers)", n / ours_time, ours_latency),
    ]
    print(f"\n{'grader':<40}{'samples/s':>11}{'p50 ms':>9}{'p99 ms':>9}")
    for name, rate, latency in rows:
        print(f"{name:<40}{rate:>11.1f}{percentile(latency, 0.5) * 1e3:>9.2f}{percentile(latency, 0.99) * 1e3:>9.2f}")
    print(f"\nthroughput ratio ours / baseline: {baseline_time / ours_time:.2f}x")
    print(f"verdicts that differ (timeouts excepted): {differ}; timeouts: {timeouts}; "
          f"correct: {sum(v.correct for v in verdicts)}/{n}")  # fmt: skip
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
