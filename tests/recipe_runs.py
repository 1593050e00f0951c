"""Run the recipes (recipes/<model>/<run>.sh) and the benchmark launchers as a user would, with DRY_RUN=1."""

import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Iterable, Optional

from conftest import REPO

from openrlhf_nsr import data

RECIPES = sorted(p for p in (REPO / "recipes").glob("*/*.sh") if p.parent.name != "objectives" and p.name != "model.sh")


MATH_TRAIN_PROMPTS = 7500  # the paper's training set (MATH train): the step count depends on it


def recipe_template(recipe: Path) -> str:
    """The prompt template of a recipe's model (TEMPLATE= in recipes/<model>/model.sh)."""
    return re.search(r"^TEMPLATE=(\S+)", (recipe.parent / "model.sh").read_text(), re.M).group(1)


def prepared_data_dir(template: str = "qwen") -> Path:
    """A DATA_DIR as recipes/launch.sh reads it for ``template``, with as many prompts as the paper's
    train.jsonl (short problems in the template: a dry run reads only their count and the template;
    labels are real answers) and an eval.jsonl; made once per process and template."""
    if template not in _DATA_DIRS:
        folder = _DATA_DIRS[template] = Path(tempfile.mkdtemp(prefix=f"openrlhf-nsr-data-{template}-"))
        for name, rows in (("train.jsonl", MATH_TRAIN_PROMPTS), ("eval.jsonl", 40)):
            with open(folder / name, "w") as handle:
                for i in range(rows):
                    prompt = data.apply_template(template, f"What is {i} + 1?")
                    handle.write(json.dumps({"prompt": prompt, "answer": f"\\frac{{{i + 1}}}{{1}}"}) + "\n")
    return _DATA_DIRS[template]


_DATA_DIRS: Dict[str, Path] = {}


def _dry_run_process(recipe: Path, cwd: Optional[Path], env: dict) -> subprocess.CompletedProcess:
    data_dir = str(prepared_data_dir(recipe_template(recipe)))
    environment = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, "DATA_DIR": data_dir, **env}
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
