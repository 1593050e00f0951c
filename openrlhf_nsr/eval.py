"""Evaluate checkpoints the way the paper does (pass@k, docs/paper.md §3) and compare with its numbers.

    python -m openrlhf_nsr.eval --model Qwen/Qwen2.5-Math-7B --datasets math,aime2025,amc23 \\
        --template qwen --n 256 --temperature 0.6 --top-p 0.95 --max-tokens 4096 --out runs/base
    python -m openrlhf_nsr.eval compare runs/base runs/nsr --paper qwen2.5-math-7b

Writes to ``--out``: ``config.json`` (what defines the run), ``samples.jsonl`` (one row per
sample), ``metrics.json`` (per dataset: pass@k for k = 1, 2, 4, ..., n, entropy, missing answers,
grading timeouts, the generation config) and ``passk.png``. An interrupted run resumes where it
stopped (whole problems are appended as they finish); a different config in the same folder is
refused. Nothing is written to ``--out`` until the flags, the datasets, the model and the
folder have been checked and the backend has loaded the model, so a command that fails to start
can be corrected and rerun with the same ``--out``; bad flag values, and the vllm backend where vLLM
is not installed, are usage errors (exit 2).
Scoring uses the training reward's grader (openrlhf_nsr.reward.grade_batch).

The paper's reference numbers (``compare --paper``) ship inside the package:
``openrlhf_nsr/paper_passk.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional

from openrlhf_nsr import data
from openrlhf_nsr.metrics import default_ks, mean_pass_at_k

# Package data (setup.py package_data): installed next to this module, editable or not.
PAPER_FILE = Path(__file__).resolve().with_name("paper_passk.csv")
PAPER_MODELS = ("qwen2.5-math-7b", "qwen3-4b")
# the paper's dataset names -> ours
PAPER_DATASETS = {"MATH": "math", "AIME 2025": "aime2025", "AMC23": "amc23"}


# ── run ──


RUN_USAGE = (
    "%(prog)s --model MODEL --out OUT [options]\n"
    "       %(prog)s compare RUN_DIR [RUN_DIR ...] [--labels LABELS] [--paper MODEL] [--out PNG]"
)
RUN_DESCRIPTION = (
    "Evaluate a checkpoint the way the paper does (pass@k, docs/paper.md §3): --n samples per problem of each "
    "dataset, graded by the training reward's grader; --out gets samples.jsonl, metrics.json and passk.png, and an "
    "interrupted run resumes there. Subcommand compare: python -m openrlhf_nsr.eval compare RUN_DIR ... puts "
    "finished evaluations side by side (with --paper, next to the paper's numbers) and plots their pass@k curves "
    "(its --help lists its options)."
)


def run_parser() -> argparse.ArgumentParser:
    """The evaluation's options; each help gives its default once (``%(default)s`` or in words), never argparse's."""
    p = argparse.ArgumentParser(prog="python -m openrlhf_nsr.eval", usage=RUN_USAGE, description=RUN_DESCRIPTION)
    p.add_argument("--model", required=True, help="hub id or local path of the checkpoint (required)")
    p.add_argument("--datasets", default="math,aime2025,amc23",
                   help=f"comma-separated: {', '.join(data.HUB_DATASETS)} (from the hub), or NAME=PATH to a local "
                   ".parquet / .jsonl (default %(default)s)")  # fmt: skip
    p.add_argument("--label", choices=data.LABEL_SOURCES, default="auto",
                   help="gold answers: auto = the reference solution's boxed answer where there is one (MATH), else "
                   "the target column; target = the paper's normalised target column as is (see openrlhf_nsr/data.py) "
                   "(default %(default)s)")  # fmt: skip
    p.add_argument("--template", default="qwen",
                   help=f"prompt template: {', '.join(data.TEMPLATE_NAMES)} (default %(default)s)")  # fmt: skip
    p.add_argument("--n", type=int, default=256,
                   help="samples per problem (default %(default)s; the paper: 256 for Qwen2.5-Math-7B, 64 for "
                   "Qwen3-4B)")  # fmt: skip
    p.add_argument("--temperature", type=float, default=0.6,
                   help="sampling temperature, 0: greedy (default %(default)s; the paper: 0.6 for Qwen2.5-Math-7B, "
                   "0.7 for Qwen3-4B)")  # fmt: skip
    p.add_argument("--top-p", type=float, default=0.95,
                   help="nucleus sampling, 1: off (default %(default)s; the paper: 0.95 for Qwen2.5-Math-7B, 0.8 for "
                   "Qwen3-4B)")  # fmt: skip
    p.add_argument("--top-k", type=int, default=-1,
                   help="top-k sampling, -1: off (default %(default)s; the paper: 20 for Qwen3-4B)")  # fmt: skip
    p.add_argument("--max-tokens", type=int, default=4096,
                   help="new tokens per sample at most (default %(default)s, the paper's for Qwen2.5-Math-7B)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0,
                   help="sampling seed; each problem's seed is derived from it and the problem's name, so a resumed run "
                   "draws the same samples (default %(default)s)")  # fmt: skip
    p.add_argument("--ks", default=None, help="comma-separated integers 1 <= k <= n for pass@k, in any order; "
                   "duplicates are dropped (default 1, 2, 4, ..., n)")  # fmt: skip
    p.add_argument("--max-problems", type=int, default=None,
                   help="evaluate only the first N >= 1 problems of each dataset (default: all)")  # fmt: skip
    p.add_argument("--backend", choices=("auto", "vllm", "hf"), default="auto",
                   help="vllm (GPU; needs vLLM) or hf (transformers, CPU-sized models); auto: vllm when CUDA is "
                   "available, else hf (default %(default)s)")  # fmt: skip
    p.add_argument("--tensor-parallel-size", type=int, default=1,
                   help="vllm backend: GPUs per model (default %(default)s)")  # fmt: skip
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9,
                   help="vllm backend: the share of each GPU's memory vLLM may take (default %(default)s)")  # fmt: skip
    p.add_argument("--enforce-eager", action="store_true",
                   help="vllm backend: no CUDA graphs or torch.compile (faster start; vLLM's CPU build needs it) "
                   "(default: off)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=16,
                   help="hf backend: sequences generated at once (default %(default)s)")  # fmt: skip
    p.add_argument("--out", required=True, type=Path,
                   help="output folder, resumed if it holds the same run (required)")  # fmt: skip
    return p


# A hub id: "name" or "org/name" (letters, digits, "_", ".", "-"); anything else is taken as a local path.
_HUB_ID = re.compile(r"[A-Za-z0-9_][\w.-]*(/[A-Za-z0-9_][\w.-]*)?")


def _validate(parser: argparse.ArgumentParser, args) -> List[int]:
    """Check every flag without writing anything; returns the ks. A bad value is a usage error (exit 2)."""

    def bad(flag: str, value, allowed: str):
        parser.error(f"argument {flag}: invalid value {value!r}: {allowed}")

    for flag, value, ok, allowed in (
        ("--n", args.n, args.n >= 1, "need an integer >= 1 (samples per problem)"),
        ("--max-problems", args.max_problems, args.max_problems is None or args.max_problems >= 1,
         "need an integer >= 1 (the first N problems of each dataset); omit it for all"),
        ("--temperature", args.temperature, math.isfinite(args.temperature) and args.temperature >= 0,
         "need a number >= 0 (0: greedy)"),
        ("--top-p", args.top_p, 0 < args.top_p <= 1, "need 0 < p <= 1 (1: off)"),
        ("--top-k", args.top_k, args.top_k == -1 or args.top_k >= 1, "need -1 (off) or an integer >= 1"),
        ("--max-tokens", args.max_tokens, args.max_tokens >= 1, "need an integer >= 1"),
        ("--batch-size", args.batch_size, args.batch_size >= 1, "need an integer >= 1"),
        ("--tensor-parallel-size", args.tensor_parallel_size, args.tensor_parallel_size >= 1, "need an integer >= 1"),
        ("--gpu-memory-utilization", args.gpu_memory_utilization, 0 < args.gpu_memory_utilization <= 1,
         "need a fraction 0 < u <= 1"),
    ):  # fmt: skip
        if not ok:
            bad(flag, value, allowed)
    ks = default_ks(args.n) if args.ks is None else _parse_ks(parser, args.ks, args.n)

    try:
        data.check_template(args.template)
    except ValueError as err:
        parser.error(f"argument --template: {err}")
    names = set()
    for spec in args.datasets.split(","):
        if not spec.strip():
            bad("--datasets", args.datasets, f"an empty entry; need comma-separated names ({', '.join(data.HUB_DATASETS)}) "
                "or NAME=PATH to a local .parquet / .jsonl")  # fmt: skip
        try:
            name, path = data.parse_dataset_spec(spec)
        except ValueError as err:
            parser.error(f"argument --datasets: {err}")
        if not name:
            bad("--datasets", spec, "need NAME=PATH with a non-empty NAME")
        if name in names:
            bad("--datasets", args.datasets, f"dataset name {name!r} appears twice; give each NAME=PATH its own name")
        names.add(name)
        if path is not None and not path.is_file():
            parser.error(f"argument --datasets: dataset file {path} does not exist (from --datasets {spec!r})"
                         if not path.exists() else f"argument --datasets: {path} is not a file (from --datasets {spec!r})")  # fmt: skip

    if args.model.startswith("~"):
        args.model = os.path.expanduser(args.model)
    if not os.path.exists(args.model) and not _HUB_ID.fullmatch(args.model):
        parser.error(
            f"argument --model: {args.model!r}: no such local path (and not a hub id like Qwen/Qwen2.5-Math-7B)"
        )

    out = args.out
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if out.exists() and not out.is_dir():
        parser.error(f"argument --out: {out} is an existing file; --out is a folder")
    if existing is not None and not existing.is_dir():
        parser.error(f"argument --out: {out} cannot be created: {existing} is a file")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        parser.error(f"argument --out: {existing} is not writable")
    return ks


def _parse_ks(parser: argparse.ArgumentParser, text: str, n: int) -> List[int]:
    allowed = f"need comma-separated integers 1 <= k <= n = {n} (--n), e.g. 1,2,4"
    ks = set()
    for item in text.split(","):
        try:
            k = int(item.strip())
        except ValueError:
            parser.error(f"argument --ks: invalid value {text!r}: {item.strip()!r} is not an integer; {allowed}")
        if not 1 <= k <= n:
            parser.error(f"argument --ks: invalid value {text!r}: k = {k} is outside 1 <= k <= n = {n}"
                         + (" (pass@k needs at least k samples per problem: raise --n)" if k > n else "") + f"; {allowed}")  # fmt: skip
        ks.add(k)
    return sorted(ks)


def _backend_name(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch

    return "vllm" if torch.cuda.is_available() else "hf"


def _require_vllm(parser: argparse.ArgumentParser, requested: str) -> None:
    """The vllm backend where vLLM is not installed: a usage error naming the install line (exit 2)."""
    from openrlhf_nsr.generation import VLLM_INSTALL, vllm_installed

    if not vllm_installed():
        chosen = "vllm" if requested == "vllm" else "auto chose vllm (CUDA is available)"
        parser.error(f"argument --backend: {chosen}, but vLLM is not installed for {sys.executable}: install it with "
                     f"{VLLM_INSTALL}, or use --backend hf (transformers, CPU-sized models)")  # fmt: skip


def run(argv: Optional[List[str]] = None) -> int:
    parser = run_parser()
    args = parser.parse_args(argv)
    ks = _validate(parser, args)
    backend_name = _backend_name(args.backend)
    if backend_name == "vllm":
        _require_vllm(parser, args.backend)
    config = {
        "model": args.model,
        "datasets": args.datasets.split(","),
        "template": args.template,
        "label": args.label,
        "n": args.n,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "max_tokens": args.max_tokens,
        "seed": args.seed,
        "max_problems": args.max_problems,
        "backend": backend_name,
    }
    out = args.out
    _check_folder(parser, out, config)  # read-only: a clash is refused before anything is loaded

    loaded = []
    for spec in config["datasets"]:
        try:
            name, problems = data.load_problems(spec, args.label)
        except (OSError, RuntimeError, ValueError) as err:
            parser.error(f"argument --datasets: {err}")
        loaded.append((name, problems[: args.max_problems]))

    from openrlhf_nsr.generation import HFBackend, SamplingConfig, VLLMBackend
    from openrlhf_nsr.reward import grade_batch

    done = _load_complete_samples(out / "samples.jsonl", args.n)
    todo = [(name, p) for name, problems in loaded for p in problems if (name, p.id) not in done]
    if todo:
        try:
            if backend_name == "vllm":
                backend = VLLMBackend(
                    args.model, args.tensor_parallel_size, args.seed, None, args.gpu_memory_utilization,
                    args.enforce_eager,
                )  # fmt: skip
                chunk = 512
            else:
                backend = HFBackend(args.model, batch_size=args.batch_size)
                chunk = 1
        except (OSError, ValueError) as err:  # transformers: not a model folder, or a hub id it cannot fetch
            reason = str(err).strip().splitlines()[0]
            parser.error(
                f"argument --model: cannot load {args.model!r}: {reason} Offline? Pass the path of a local model folder."
            )
        sampling = SamplingConfig(args.n, args.temperature, args.top_p, args.top_k, args.max_tokens, args.seed)
        tokenizer = getattr(backend, "tokenizer", None) or _tokenizer_for_chat(args)
    _claim_folder(parser, out, config)  # the first write to --out: inputs checked, the model loaded
    if todo:
        _generate_and_grade(backend, sampling, tokenizer, args, todo, chunk, out / "samples.jsonl", grade_batch)

    metrics = compute_metrics(out / "samples.jsonl", [name for name, _ in loaded], ks, config)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_passk({out.name or str(out): metrics}, out / "passk.png")
    print(format_table({out.name or str(out): metrics}, ks))
    return 0


def _check_folder(parser, out: Path, config: dict) -> None:
    """Refuse an --out that holds a run with another config (or an unreadable one); writes nothing."""
    config_file = out / "config.json"
    if not config_file.exists():
        return
    try:
        existing = json.loads(config_file.read_text())
    except (OSError, ValueError) as err:
        parser.error(f"argument --out: {config_file} cannot be read ({err}): use another --out, or delete the folder")
    if existing != config:
        diff = {
            k: (existing.get(k), config.get(k)) for k in set(existing) | set(config) if existing.get(k) != config.get(k)
        }
        parser.error(
            f"--out {out} holds a run with a different config ({', '.join(f'{k}: {a!r} -> {b!r}' for k, (a, b) in diff.items())}): "
            "use another --out, or delete the folder to start over"
        )


def _claim_folder(parser, out: Path, config: dict) -> None:
    """Create --out and write config.json there (once the inputs are known to be good)."""
    _check_folder(parser, out, config)
    try:
        out.mkdir(parents=True, exist_ok=True)
        config_file = out / "config.json"
        if not config_file.exists():
            config_file.write_text(json.dumps(config, indent=2))
    except OSError as err:
        parser.error(f"argument --out: cannot write to {out}: {err}")


def _tokenizer_for_chat(args):
    if args.template != data.CHAT_TEMPLATE:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(args.model)


def _load_complete_samples(path: Path, n: int) -> Dict:
    """{(dataset, problem_id): rows} of problems with all n samples; rewrites the file without the rest."""
    if not path.exists():
        return {}
    groups = defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by an interruption
                continue
            groups[(row["dataset"], row["problem_id"])].append(row)
    complete = {key: rows for key, rows in groups.items() if len({r["sample_index"] for r in rows}) == n}
    if len(complete) != len(groups) or sum(map(len, complete.values())) != sum(map(len, groups.values())):
        tmp = path.with_suffix(".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for rows in complete.values():
                f.writelines(json.dumps(r) + "\n" for r in rows)
        tmp.replace(path)
    return complete


def _generate_and_grade(backend, sampling, tokenizer, args, todo, chunk, path: Path, grade_batch) -> None:
    from tqdm import tqdm

    with open(path, "a", encoding="utf-8") as f, tqdm(total=len(todo), desc="generate + grade", unit="problem") as bar:
        for start in range(0, len(todo), chunk):
            batch = todo[start : start + chunk]
            prompts = [data.apply_template(args.template, p.problem, tokenizer) for _, p in batch]
            seeds = [args.seed + zlib.crc32(f"{name}/{p.id}".encode()) % 2**31 for name, p in batch]
            outputs = backend.generate(prompts, sampling, seeds)
            responses = [s.text for samples in outputs for s in samples]
            golds = [p.answer for (_, p), samples in zip(batch, outputs) for _ in samples]
            verdicts = iter(grade_batch(responses, golds))
            for (name, problem), samples in zip(batch, outputs):
                rows = []
                for index, sample in enumerate(samples):
                    verdict = next(verdicts)
                    rows.append({
                        "dataset": name, "problem_id": problem.id, "sample_index": index, "response": sample.text,
                        "answer": verdict.answer, "gold": problem.answer, "correct": verdict.correct,
                        "finish_reason": sample.finish_reason, "num_tokens": sample.num_tokens,
                        "entropy_sum": sample.entropy_sum, "grading_timeout": verdict.timed_out,
                    })  # fmt: skip
                f.writelines(json.dumps(r) + "\n" for r in rows)
            f.flush()
            bar.update(len(batch))


def compute_metrics(path: Path, datasets: List[str], ks: List[int], config: dict) -> dict:
    groups = defaultdict(lambda: defaultdict(list))
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            groups[row["dataset"]][row["problem_id"]].append(row)
    metrics = {"config": config, "datasets": {}}
    for name in datasets:
        problems = groups.get(name, {})
        rows = [r for sample_rows in problems.values() for r in sample_rows]
        entropy = None
        if rows and all(r["entropy_sum"] is not None for r in rows):
            tokens = sum(r["num_tokens"] for r in rows)
            entropy = sum(r["entropy_sum"] for r in rows) / tokens if tokens else None
        counts = [(len(r), sum(x["correct"] for x in r)) for r in problems.values()]
        metrics["datasets"][name] = {
            "num_problems": len(problems),
            "n": config["n"],
            "pass_at_k": {str(k): v for k, v in mean_pass_at_k(counts, ks).items()} if counts else {},
            "entropy": entropy,
            "missing_answers": sum(r["answer"] is None for r in rows),
            "grading_timeouts": sum(r["grading_timeout"] for r in rows),
            "truncated": sum(r["finish_reason"] == "length" for r in rows),
            "generation": {k: config[k] for k in ("model", "template", "n", "temperature", "top_p", "top_k", "max_tokens", "seed", "backend")},
        }  # fmt: skip
    return metrics


# ── compare ──


def load_paper(model: str, path: Path = PAPER_FILE) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{method: {dataset: {k: pass@k in [0, 1]}}} of the paper's reference numbers for ``model``."""
    if model not in PAPER_MODELS:
        raise ValueError(f"unknown --paper {model!r}; choose one of: {', '.join(PAPER_MODELS)}")
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"the paper's reference numbers are missing: {path} (package data of openrlhf-nsr; reinstall it)"
        )
    table: Dict = defaultdict(lambda: defaultdict(dict))
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["model"] == model:
                table[row["method"]][PAPER_DATASETS[row["dataset"]]][row["k"]] = float(row["pass_at_k"]) / 100
    return table


def format_table(runs: Dict[str, dict], ks: Optional[List[int]] = None, paper: Optional[dict] = None) -> str:
    """pass@k in percent, one block per dataset; with ``paper``, its methods and our - paper."""
    lines = []
    datasets = list(dict.fromkeys(d for m in runs.values() for d in m["datasets"]))
    for dataset in datasets:
        run_ks = [k for m in runs.values() for k in m["datasets"].get(dataset, {}).get("pass_at_k", {})]
        columns = sorted(set(run_ks), key=int) if ks is None else [str(k) for k in ks]
        lines.append(f"\n{dataset}")
        lines.append(f"{'run':<28}" + "".join(f"{'@' + k:>8}" for k in columns) + f"{'entropy':>9}")
        rows = [(label, m["datasets"].get(dataset, {})) for label, m in runs.items()]
        for label, m in rows:
            entropy = m.get("entropy")
            cells = "".join(
                f"{100 * m['pass_at_k'][k]:>8.1f}" if k in m.get("pass_at_k", {}) else f"{'-':>8}" for k in columns
            )
            lines.append(f"{label:<28}{cells}{entropy if entropy is None else round(entropy, 3)!s:>9}")
        if paper:
            for method, by_dataset in paper.items():
                ref = by_dataset.get(dataset, {})
                cells = "".join(f"{100 * ref[k]:>8.1f}" if k in ref else f"{'-':>8}" for k in columns)
                lines.append(f"{'paper ' + method:<28}{cells}")
            for label, m in rows:
                method = _paper_method(label, paper)
                ref = paper.get(method, {}).get(dataset, {}) if method else {}
                if ref:
                    ours = m.get("pass_at_k", {})
                    cells = "".join(
                        f"{100 * (ours[k] - ref[k]):>+8.1f}" if k in ours and k in ref else f"{'-':>8}" for k in columns
                    )
                    lines.append(f"{label + ' - paper ' + method:<28}{cells}")
    return "\n".join(lines)


def _paper_method(label: str, paper: dict) -> Optional[str]:
    key = re.sub(r"[^a-z0-9]", "", label.lower())
    return next((m for m in paper if re.sub(r"[^a-z0-9]", "", m.lower()) == key), None)


def plot_passk(runs: Dict[str, dict], path: Path, paper: Optional[dict] = None) -> None:
    from openrlhf_nsr import plotting

    fig = passk_figure(runs, paper)
    fig.savefig(path, dpi=120)
    plotting.pyplot().close(fig)


def passk_figure(runs: Dict[str, dict], paper: Optional[dict] = None):
    """pass@k per dataset: our runs solid with filled markers, the paper's in the same method colours, dotted
    with hollow markers (plotting.STYLES), so "nsr" and "paper nsr" read as one family; a legend on each panel."""
    from openrlhf_nsr import plotting

    plt = plotting.pyplot()
    datasets = list(dict.fromkeys(d for m in runs.values() for d in m["datasets"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for label, m in runs.items():
            curve = m["datasets"].get(dataset, {}).get("pass_at_k", {})
            if curve:
                ks = sorted(curve, key=int)
                look = plotting.style(label, others=list(runs))
                ax.plot([int(k) for k in ks], [100 * curve[k] for k in ks], **look, ms=4, lw=1.6, label=label)
        for method, by_dataset in (paper or {}).items():
            ref = by_dataset.get(dataset, {})
            if ref:
                ks = sorted(ref, key=int)
                look = {**plotting.style(method), "ls": ":"}  # the method's colour and marker, dotted and hollow
                ax.plot([int(k) for k in ks], [100 * ref[k] for k in ks], **look, lw=1.2, ms=4, mfc="none",
                        label=f"paper {method}")  # fmt: skip
        ax.set_xscale("log", base=2)
        ticks = sorted({int(k) for m in runs.values() for k in m["datasets"].get(dataset, {}).get("pass_at_k", {})}
                       | {int(k) for by_dataset in (paper or {}).values() for k in by_dataset.get(dataset, {})})  # fmt: skip
        if ticks:
            ax.set_xticks(ticks, [str(k) for k in ticks], fontsize=7)
        ax.set_title(dataset)
        ax.set_xlabel("k")
        ax.set_ylabel("pass@k (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


COMPARE_DESCRIPTION = (
    "Compare finished evaluations: their pass@k per dataset side by side (with --paper, the paper's methods and "
    "each run minus the paper method it names, docs/paper.md §4), and one figure of their pass@k curves."
)


def compare(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m openrlhf_nsr.eval compare", description=COMPARE_DESCRIPTION)
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="the --out folder of a finished python -m openrlhf_nsr.eval run (required, one or more)")  # fmt: skip
    p.add_argument("--labels", default=None, help="comma-separated, one per RUN_DIR; a label that names a paper "
                   "method (base, grpo, ppo, psr, nsr, w-reinforce; case, '-' and '_' ignored: the recipes' run names "
                   "match) is diffed against it (default: the folder names)")  # fmt: skip
    p.add_argument("--paper", default=None,
                   help=f"add the paper's numbers of this model: {', '.join(PAPER_MODELS)} (default: none)")  # fmt: skip
    p.add_argument("--paper-file", type=Path, default=PAPER_FILE, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=Path("compare_passk.png"),
                   help="the overlay plot, an image file: .png, .pdf, .svg, ... (default %(default)s)")  # fmt: skip
    args = p.parse_args(argv)
    if args.paper is not None and args.paper not in PAPER_MODELS:
        p.error(f"argument --paper: invalid value {args.paper!r}: choose one of {', '.join(PAPER_MODELS)}")
    labels = args.labels.split(",") if args.labels is not None else [r.name or str(r) for r in args.runs]
    if len(labels) != len(args.runs):
        p.error(f"argument --labels: {len(labels)} labels ({args.labels!r}) for {len(args.runs)} run folder(s): give one per run, "
                "comma-separated")  # fmt: skip
    if args.labels is not None and not all(label.strip() for label in labels):
        p.error(f"argument --labels: invalid value {args.labels!r}: an empty label")
    if len(set(labels)) != len(labels):
        twice = sorted({label for label in labels if labels.count(label) > 1})
        p.error(f"{'argument --labels' if args.labels is not None else 'argument RUN_DIR'}: the label(s) {', '.join(twice)} name more "
                "than one run" + ("" if args.labels is not None else " (folder names): give --labels"))  # fmt: skip
    _check_plot_path(p, args.out)
    runs = {}
    for label, folder in zip(labels, args.runs):
        if not folder.is_dir():
            p.error(f"argument RUN_DIR: {folder} {'is not a folder' if folder.exists() else 'does not exist'}: "
                    "give the --out folder of a python -m openrlhf_nsr.eval run")  # fmt: skip
        metrics_file = folder / "metrics.json"
        if not metrics_file.exists():
            p.error(
                f"argument RUN_DIR: {folder} has no metrics.json: is it the --out of a finished python -m openrlhf_nsr.eval run?"
            )
        try:
            metrics = json.loads(metrics_file.read_text())
            if not isinstance(metrics, dict) or not isinstance(metrics.get("datasets"), dict):
                raise ValueError("no 'datasets' table")
        except (OSError, ValueError) as err:
            p.error(f"argument RUN_DIR: {metrics_file} is not the metrics.json of an evaluation ({err})")
        runs[label] = metrics
    try:
        paper = load_paper(args.paper, args.paper_file) if args.paper else None
    except (OSError, ValueError) as err:
        p.error(f"argument --paper: {err}")
    print(format_table(runs, paper=paper))
    plot_passk(runs, args.out, paper)
    print(f"\nplot: {args.out}")
    return 0


def _check_plot_path(parser: argparse.ArgumentParser, path: Path) -> None:
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix[1:].lower() not in formats:
        parser.error(f"argument --out: invalid value '{path}': need a file name ending in an image format "
                     f"({', '.join('.' + f for f in ('png', 'pdf', 'svg') if f in formats)}, ...)")  # fmt: skip
    if path.is_dir():
        parser.error(f"argument --out: {path} is a folder; need a file name such as {path / 'compare_passk.png'}")
    if not path.parent.is_dir():
        parser.error(f"argument --out: the folder of {path} does not exist")


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["compare"]:
        return compare(argv[1:])
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
