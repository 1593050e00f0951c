"""The package as a user installs it (``pip install .``, not editable): what it needs at run time
ships inside it. Built and installed offline (no index, no build isolation: the setuptools already
in this environment), into a folder of its own, and run from a directory outside the checkout with
only that folder on PYTHONPATH for the package (its dependencies come from this environment)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

# What a build of the checkout reads: the setup files and the package (copied, so the build's own
# build/ and *.egg-info land in the copy, not in the checkout).
BUILD_INPUTS = ("setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("install")
    source, site = root / "source", root / "site"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (REPO / name).exists():
            shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "openrlhf_nsr", source / "openrlhf_nsr", ignore=shutil.ignore_patterns("__pycache__"))
    env = clean_env(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
               "--target", str(site), str(source)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return site


def clean_env(**extra) -> dict:
    """This environment without the PYTHONPATH conftest gives subprocesses (it names the checkout)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    return {**env, **extra}


def test_the_paper_numbers_ship_inside_the_package(installed):
    shipped = installed / "openrlhf_nsr" / "paper_passk.csv"
    assert shipped.read_bytes() == (REPO / "openrlhf_nsr" / "paper_passk.csv").read_bytes()
    record = next(installed.glob("openrlhf_nsr-*.dist-info")) / "RECORD"
    assert "openrlhf_nsr/paper_passk.csv," in record.read_text()  # pip knows it (uninstall removes it)
    assert not (installed / "benchmarks").exists()


def test_compare_with_the_paper_works_from_an_installed_copy(installed, tmp_path):
    work = tmp_path / "elsewhere"
    (work / "base").mkdir(parents=True)
    dataset = {"num_problems": 2, "n": 4, "pass_at_k": {"1": 0.5, "2": 0.75, "4": 1.0}, "entropy": None,
               "missing_answers": 0, "grading_timeouts": 0, "truncated": 0, "generation": {}}  # fmt: skip
    (work / "base" / "metrics.json").write_text(json.dumps({"config": {"n": 4}, "datasets": {"math": dataset}}))
    env = clean_env(PYTHONPATH=str(installed))

    where = subprocess.run(
        [sys.executable, "-c", "import openrlhf_nsr, openrlhf_nsr.eval as e; print(openrlhf_nsr.__file__); print(e.PAPER_FILE)"],
        capture_output=True, text=True, env=env, cwd=work, timeout=120,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    package_file, paper_file = where.stdout.split()[-2:]
    assert package_file == str(installed / "openrlhf_nsr" / "__init__.py")  # not the checkout
    assert paper_file == str(installed / "openrlhf_nsr" / "paper_passk.csv")

    command = [sys.executable, "-m", "openrlhf_nsr.eval", "compare", "base", "--paper", "qwen2.5-math-7b",
               "--out", "overlay.png"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=work, timeout=120)
    assert result.returncode == 0, result.stderr
    table = result.stdout
    for method in ("base", "grpo", "ppo", "psr", "nsr", "w-reinforce"):
        assert f"paper {method}" in table
    paper_base = next(line for line in table.splitlines() if line.startswith("paper base "))
    assert paper_base.split()[2:4] == ["63.2", "76.0"]  # Table 1, Qwen2.5-Math-7B base on MATH, pass@1 / pass@2
    assert "base - paper base" in table and "-13.2" in table  # our 50.0% vs the paper's 63.2
    assert (work / "overlay.png").read_bytes()[:4] == b"\x89PNG"
