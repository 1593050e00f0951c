"""The math reward's process pool: math-verify in worker processes, with a hard time limit per pair.

math-verify's own timeouts use ``signal.alarm``, which does not work in the worker threads
OpenRLHF calls reward functions from, and without them some inputs (``10^{10^{10}}``) run for
minutes. So GraderPool grades in worker processes (``python -m openrlhf_nsr.reward_worker``:
plain subprocesses, safe inside Ray actors and threads); a worker that has not answered within
``timeout`` seconds (default 5, ``OPENRLHF_NSR_REWARD_TIMEOUT``) is killed and replaced, and the
pair scores 0 with ``timed_out``. Workers exit with their parent (stdin EOF, and PR_SET_PDEATHSIG
on Linux). Verdicts are cached per (answer, gold) pair, and pairs the fast path settles
(openrlhf_nsr.reward_fast, with what the workers learned about each gold) never reach a worker.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import select
import site
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import List, Optional, Tuple

from openrlhf_nsr.reward_fast import GoldFacts, _facts_may_decide, fast_verdict


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
CACHE_SIZE = 200_000
STARTUP_TIMEOUT = 60.0  # a fresh worker imports math-verify / sympy (about 1 s)
GOLDS_REMEMBERED = 256  # per worker, in the caller: recent golds it parsed (a gold's next pairs go there if idle)


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
    env = _worker_environment()
    return spawner.submit(subprocess.Popen, command, env=env, text=False, close_fds=True, **pipes).result()


def _worker_environment() -> Optional[dict]:
    """A worker's environment: this one, with the folder this package was imported from first on
    PYTHONPATH, so that ``python -m`` finds the package where this process found it (a checkout on
    sys.path but not installed, a Ray working_dir). None (this environment) where the worker finds
    it anyway: a site directory (which must not go before the standard library), or already there.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    told = os.environ.get("PYTHONPATH", "")
    known = [p for p in told.split(os.pathsep) if p] + site.getsitepackages() + [site.getusersitepackages()]
    if root in {os.path.abspath(p) for p in known}:
        return None
    return dict(os.environ, PYTHONPATH=os.pathsep.join([root, told]) if told else root)


class _Worker:
    def __init__(self):
        self.proc = _spawn([sys.executable, "-m", "openrlhf_nsr.reward_worker"])
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
