"""The patch reaches real Ray worker processes, and only where the training code is imported."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

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


def _ray(*args, timeout=300, env=None):
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    return subprocess.run([ray_bin, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_ray_job_submit_runs_the_wrapper_and_patches_the_workers(worker_env):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    started = _ray("start", "--head", "--num-cpus=2", "--dashboard-host=127.0.0.1", "--dashboard-port=8299",
                   f"--temp-dir={temp_dir}", env=env)  # fmt: skip
    assert started.returncode == 0, started.stderr[-3000:]
    try:
        runtime_env = json.dumps(worker_env)
        entrypoint = [sys.executable, str(HERE / "ray_probe.py"), "--actor.model_name_or_path", "/models/p",
                      "--reward.remote_url", "/rewards/r.py", "--algo.advantage.estimator", "nsr"]  # fmt: skip
        for attempt in range(30):  # the job server comes up a little after `ray start` returns
            job = _ray("job", "submit", "--address", "http://127.0.0.1:8299", "--runtime-env-json", runtime_env,
                       "--", *entrypoint, env=env)  # fmt: skip
            if "Connection" not in job.stderr + job.stdout or attempt == 29:
                break
            time.sleep(2)
        assert job.returncode == 0, (job.stdout + job.stderr)[-4000:]
        assert "--algo.kl.init_coef not given, using 0" in job.stdout
        line = next(line for line in job.stdout.splitlines() if line.startswith("PROBE "))
        check(json.loads(line[len("PROBE ") :]))
    finally:
        _ray("stop", "--force", env=env)
        shutil.rmtree(temp_dir, ignore_errors=True)
