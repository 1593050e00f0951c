"""Run the recipes (recipes/<model>/<run>.sh) and the benchmark launchers as a user would, with DRY_RUN=1."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Iterable, Optional

from conftest import REPO

RECIPES = sorted(p for p in (REPO / "recipes").glob("*/*.sh") if p.parent.name != "objectives" and p.name != "model.sh")


def _dry_run_process(recipe: Path, cwd: Optional[Path], env: dict) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, **env}
    environment = {k: v for k, v in environment.items() if v is not None}  # VAR=None: unset
    return subprocess.run(["bash", str(recipe)], capture_output=True, text=True, env=environment, cwd=cwd, timeout=300)


def _config(recipe: Path, result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, f"{recipe}:\n" + result.stdout[-2000:] + result.stderr[-3000:]
    return json.loads(result.stdout[result.stdout.index("{") :])


def dry_run(recipe: Path, cwd: Optional[Path] = None, **env) -> dict:
    """The resolved OpenRLHF config a recipe prints with DRY_RUN=1, launched from ``cwd`` (env: VAR=None unsets)."""
    return _config(recipe, _dry_run_process(recipe, cwd, env))


def dry_runs(recipes: Iterable[Path], cwd: Optional[Path] = None, **env) -> Dict[Path, dict]:
    """dry_run of several recipes at once (each one is a few seconds of importing OpenRLHF)."""
    recipes = list(recipes)
    with ThreadPoolExecutor(max_workers=max(2, min(len(recipes), os.cpu_count() or 2))) as pool:
        results = list(pool.map(lambda r: _dry_run_process(r, cwd, env), recipes))
    return {recipe: _config(recipe, result) for recipe, result in zip(recipes, results)}
