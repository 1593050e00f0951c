"""The patch reaches real Ray worker processes, and only where the training code is imported."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import ray
import ray_probe
from conftest import HERE

from openrlhf_nsr import openrlhf_patch

# nsr, zero mode, prompt of [correct, incorrect]: 0 on the correct sample, -1 on the wrong one
NSR_ADVANTAGES = [[0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]]


def check(result):
    assert result["trainer"]["advantages"] == NSR_ADVANTAGES
    assert result["trainer"]["sync_rollout_stats_patched"]
    assert result["trainer"]["async_rollout_stats_patched"]
    assert result["bystander"]["setup_hook_ran"]
    assert result["bystander"]["training_modules_loaded"] == []


@pytest.fixture
def worker_env():
    return {"env_vars": {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ["PYTHONPATH"]])}}


def test_workers_of_a_local_ray_cluster_see_the_patch(worker_env):
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=openrlhf_patch.with_setup_hook(worker_env))
    try:
        check(ray_probe.run_probes())
    finally:
        ray.shutdown()


def _ray(*args, timeout=300, env=None, **kwargs):
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    return subprocess.run([ray_bin, *args], capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def own_ray_head(env):
    """A Ray head node of this test's own, on free ports, stopped by killing its process group only:
    `ray stop` would stop every Ray cluster on the machine, the user's included."""
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    dashboard = _free_port()
    ports = [f"--port={_free_port()}", f"--dashboard-port={dashboard}", f"--ray-client-server-port={_free_port()}",
             f"--dashboard-agent-listen-port={_free_port()}"]  # fmt: skip
    # every process `ray start` launches stays in its process group (start_new_session: a group of its own)
    started = _ray("start", "--head", "--num-cpus=2", "--dashboard-host=127.0.0.1", *ports, f"--temp-dir={temp_dir}",
                   env=env, start_new_session=True)  # fmt: skip
    group = _process_group_of(temp_dir)
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        yield SimpleNamespace(address=f"http://127.0.0.1:{dashboard}", group=group)
    finally:
        if group is not None:
            os.killpg(group, signal.SIGKILL)
            for _ in range(100):  # until init has reaped them
                if not _alive(group):
                    break
                time.sleep(0.1)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _process_group_of(temp_dir):
    """The process group of the Ray processes whose command line names ``temp_dir``."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if temp_dir in (proc / "cmdline").read_bytes().decode(errors="replace"):
                return os.getpgid(int(proc.name))
        except (OSError, ProcessLookupError):
            continue
    return None


def test_ray_job_submit_runs_the_wrapper_and_patches_the_workers(worker_env):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    with own_ray_head(env) as head:
        runtime_env = json.dumps(worker_env)
        entrypoint = [sys.executable, str(HERE / "ray_probe.py"), "--actor.model_name_or_path", "Qwen/Qwen2.5-Math-7B",
                      "--reward.remote_url", "math_verify", "--algo.advantage.estimator", "nsr"]  # fmt: skip
        for attempt in range(30):  # the job server comes up a little after `ray start` returns
            job = _ray("job", "submit", "--address", head.address, "--runtime-env-json", runtime_env,
                       "--", *entrypoint, env=env)  # fmt: skip
            if "Connection" not in job.stderr + job.stdout or attempt == 29:
                break
            time.sleep(2)
        assert job.returncode == 0, (job.stdout + job.stderr)[-4000:]
        assert "--algo.kl.init_coef not given, using 0" in job.stdout
        line = next(line for line in job.stdout.splitlines() if line.startswith("PROBE "))
        check(json.loads(line[len("PROBE ") :]))


def _alive(group):
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False


def test_stopping_the_tests_ray_head_leaves_other_ray_clusters_running():
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    with own_ray_head(env) as other:  # stands in for a user's cluster
        with own_ray_head(env) as ours:
            assert ours.group != other.group and _alive(ours.group)
        assert not _alive(ours.group) and _alive(other.group)
