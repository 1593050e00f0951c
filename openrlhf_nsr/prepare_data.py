"""Write the paper's datasets in the format OpenRLHF's prompt dataset reads (jsonl).

    python -m openrlhf_nsr.prepare_data --datasets math_train --template qwen --out data/qwen/train.jsonl
    python -m openrlhf_nsr.prepare_data --datasets math,aime2025,amc23 --template qwen --out data/qwen/eval.jsonl

One row per problem: ``prompt`` (the paper's template applied, docs/paper.md §2), ``answer`` (the
gold answer, see openrlhf_nsr/data.py for where it comes from) and ``datasource`` (the dataset
name, so OpenRLHF reports eval metrics per dataset). Train with ``--data.input_key prompt
--data.label_key answer`` and no ``--data.input_template`` / ``--data.apply_chat_template``.
Datasets by name (hub) or NAME=PATH to a local .parquet / .jsonl, as in the evaluation harness.

    python -m openrlhf_nsr.prepare_data --check data/qwen/train.jsonl --template qwen

checks a written file instead (recipes/launch.sh does, for both files of DATA_DIR): its rows have
``prompt`` and ``answer`` and its prompts carry the template, so that data written for one model's
template is not trained on with another's. Exit 2 and one line saying what is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from openrlhf_nsr import data

ROWS_CHECKED = 20  # the first rows of a file --check reads


def check_file(path: Path, template: str) -> Optional[str]:
    """What is wrong with ``path`` as a dataset this module writes for ``template``; None if nothing."""
    before, after = data.TEMPLATES[template].split("{input}")
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line for _, line in zip(range(ROWS_CHECKED), f)]
    except OSError as err:
        return f"cannot read it ({err.strerror})"
    if not lines:
        return "it is empty"
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except ValueError:
            return f"line {number} is not JSON"
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or "answer" not in row:
            return f"line {number} has no 'prompt' and 'answer' (not written by python -m openrlhf_nsr.prepare_data)"
        if not (row["prompt"].startswith(before) and row["prompt"].endswith(after)):
            written = [n for n, t in data.TEMPLATES.items() if row["prompt"].startswith(t.split("{input}")[0])
                       and row["prompt"].endswith(t.split("{input}")[1])]  # fmt: skip
            what = f"the {written[0]} template" if written else "no template of this package"
            return f"its prompts carry {what}, not {template} (line {number})"
    return None


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m openrlhf_nsr.prepare_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="math_train",
                        help=f"comma-separated: {', '.join(data.HUB_DATASETS)} or NAME=PATH (default math_train)")  # fmt: skip
    parser.add_argument(
        "--template", default="qwen", help=f"the prompt template: {', '.join(data.TEMPLATES)} (default qwen)"
    )
    parser.add_argument("--label", choices=data.LABEL_SOURCES, default="auto",
                        help="where gold answers come from, see openrlhf_nsr/data.py (default auto)")  # fmt: skip
    parser.add_argument("--keep-ungradable", action="store_true",
                        help="keep problems without a gold answer (default: skip them; the paper trains on them, "
                             "every sample scoring 0)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="output .jsonl (required, unless --check)")
    parser.add_argument("--check", type=Path, metavar="FILE",
                        help="check FILE (written by this module for --template) instead of writing one (default: write)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.template not in data.TEMPLATES:
        parser.error(f"unknown template {args.template!r}: choose one of {', '.join(data.TEMPLATES)} "
                     "(the model's own chat template: pass --data.apply_chat_template to OpenRLHF instead)")  # fmt: skip
    if args.check is not None:
        wrong = check_file(args.check, args.template)
        if wrong:
            print(f"{args.check}: {wrong}", file=sys.stderr)
            return 2
        return 0
    if args.out is None:
        parser.error("--out FILE is required: where to write the prompts")
    rows, skipped = [], 0
    for spec in args.datasets.split(","):
        try:
            name, problems = data.load_problems(spec, args.label)
        except (OSError, RuntimeError, ValueError) as err:
            parser.error(str(err))
        for problem in problems:
            if not problem.answer.strip() and not args.keep_ungradable:  # every sample would be a negative one
                skipped += 1
                continue
            rows.append({"prompt": data.apply_template(args.template, problem.problem), "answer": problem.answer,
                         "datasource": name, "id": problem.id})  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    print(f"wrote {len(rows)} prompts to {args.out} ({skipped} without a gold answer skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
