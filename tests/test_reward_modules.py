"""The math reward's four modules: each imports on its own, the entry file works loaded by path.

openrlhf_nsr/reward.py (extraction and the API, the file OpenRLHF loads), reward_fast (the fast
path), reward_pool (GraderPool and its worker processes) and reward_worker (math-verify, run as
``python -m openrlhf_nsr.reward_worker``). Each check runs in a fresh interpreter.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from openrlhf_nsr import reward, reward_pool

# What each module loads of these: the fast path and the worker start no process, the pool runs
# no math-verify (its workers do), and none imports math-verify or torch before it is used (a
# worker imports the package: torch would add about 130 MB and 1.5 s to each).
WATCHED = [
    "openrlhf_nsr.reward",
    "openrlhf_nsr.reward_pool",
    "openrlhf_nsr.reward_worker",
    "subprocess",
    "math_verify",
    "torch",
]
LOADED_BY = {
    "openrlhf_nsr.reward_fast": [],
    "openrlhf_nsr.reward_worker": ["openrlhf_nsr.reward_worker"],
    "openrlhf_nsr.reward_pool": ["openrlhf_nsr.reward_pool", "subprocess"],
    "openrlhf_nsr.reward": ["openrlhf_nsr.reward", "openrlhf_nsr.reward_pool", "subprocess"],
}


def python(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, **kwargs)


@pytest.mark.parametrize("module", sorted(LOADED_BY))
def test_each_module_imports_on_its_own_and_only_what_it_needs(module):
    code = f"import json, sys, {module}; print(json.dumps([m for m in {WATCHED!r} if m in sys.modules]))"
    out = python("-c", code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1]) == LOADED_BY[module]


_BY_PATH = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("reward_func", sys.argv[1])  # as OpenRLHF loads it
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
queries = ["So \\\\boxed{2}", "So \\\\boxed{3}", "So \\\\boxed{\\\\frac{\\\\sqrt{8}}{2}}", "no answer"]
out = module.reward_func(queries, ["", "", "", ""], ["2", "2", "\\\\sqrt{2}", "2"])
from openrlhf_nsr import reward_pool
pool = reward_pool.default_pool()
print(json.dumps([out["rewards"].tolist(), module.default_pool() is pool, pool.worker_requests]))
"""


def test_the_file_loaded_by_path_grades_with_the_packages_pool(tmp_path):
    # from another folder, without the PYTHONPATH the tests run with: the worker must still find the package
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = python("-c", _BY_PATH, reward.__file__, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    rewards, shared, worker_requests = json.loads(out.stdout.splitlines()[-1])
    assert rewards == [1.0, 0.0, 1.0, 0.0]
    assert shared and worker_requests == 1  # the sqrt pair needed a worker; the numbers the fast path


def test_a_worker_finds_the_package_where_its_caller_did(monkeypatch):
    root = str(Path(reward_pool.__file__).resolve().parents[1])
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert reward_pool._worker_environment()["PYTHONPATH"] == root
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    assert reward_pool._worker_environment()["PYTHONPATH"] == os.pathsep.join([root, "/elsewhere"])
    monkeypatch.setenv("PYTHONPATH", root)
    assert reward_pool._worker_environment() is None  # nothing to add: the environment as it is


def test_the_worker_module_speaks_the_pools_protocol():
    requests = [[1, "\\frac{1}{2}", "0.5"], [2, "x+1", "y"]]
    out = python("-m", "openrlhf_nsr.reward_worker", input="".join(json.dumps(r) + "\n" for r in requests))
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "ready"
    assert [json.loads(line)[:3] for line in lines[1:]] == [[1, True, True], [2, False, True]]


def test_the_module_says_what_it_is():
    out = python("-m", "openrlhf_nsr.reward", "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    text = " ".join(out.stdout.split())
    assert text.startswith("usage: python -m openrlhf_nsr.reward")
    assert (
        "--reward.remote_url math_verify" in text and "Run without arguments, it prints the path of this file" in text
    )
