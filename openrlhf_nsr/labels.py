"""Refuse, before training, a prompt dataset whose labels the math reward cannot grade.

A wrong ``--data.label_key``, empty labels, or gold answers math-verify finds no meaning in make
the reward score every sample of those prompts 0, and NSR (trained on the negative samples)
then pushes down every response: a run that looks healthy and learns nothing but noise.

``check_labels`` reads the label column (a local .jsonl / .json / .parquet file, a .csv / .arrow
file or a folder the way OpenRLHF's ``blending_datasets`` reads them; a hub id is not checked) and
grades up to ``max_rows`` golds with the reward's own code (``reward._grade_extracted``: its fast
path, then a ``GraderPool`` with the reward's per-gold time limit). A label
counts as invalid exactly when the reward would log ``gold_invalid`` for it (empty, not text,
too long or nested, no mathematical meaning) or would time out on it. ``invalid_share_warning``
watches the same two signals during training.

What it cannot see: math-verify gives a meaning to most short words (``N/A`` is N divided by A,
``Level 5`` a product of symbols) and to numbers, so a key holding words, levels or row ids
passes here and raises no warning in training, where a reward stuck near 0 is the sign.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from openrlhf_nsr import reward, reward_pool

SKIP_FLAG = "--data.skip_label_check"
EXAMPLES = 3  # invalid labels shown in an error
EXAMPLE_CHARS = 80  # each one's repr, truncated
KEYS_SHOWN = 20  # of the keys the rows do have, when the label key is missing
CHECK_WORKERS = 8  # grader processes at most (each imports sympy once, about 1 s of a core)
PROBE = "?"  # the answer a worker grades each gold against: no mathematical meaning (a string for math-verify)
# the reward's extra_logs (openrlhf_nsr/reward.py, reward_func)
GOLD_INVALID, GRADING_TIMEOUT, ANSWER_FOUND = "gold_invalid", "grading_timeout", "answer_found"
DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".arrow")  # the data files OpenRLHF's blending_datasets reads


class LabelError(ValueError):
    """The dataset's labels would make the run train on garbage; the message (one paragraph) says why and what to do."""


def check_labels(
    path: str,
    label_key: str,
    *,
    flag: str = "--data.label_key",
    max_rows: int = 2000,
    max_invalid_share: float = 0.05,
    seed: int = 0,
    split: str = "train",
    pool: Optional[reward.GraderPool] = None,
) -> dict:
    """Check the labels of a prompt dataset; raise LabelError if the reward could not grade them.

    ``path`` as OpenRLHF's ``--data.prompt_dataset`` takes it: a file or folder, ``PATH@DATA_DIR``,
    or several, comma-separated (each checked; the first that fails raises). ``split``: the split
    of a folder holding several (OpenRLHF's ``--data.prompt_split``). ``pool``: the graders to use
    (default: a private pool, closed before returning).

    Refused (LabelError): no row has ``label_key``; more than ``max_invalid_share`` of the rows
    have an empty or missing label; more than ``max_invalid_share`` of up to ``max_rows`` rows
    (sampled with ``seed`` when there are more) have a label the reward marks ``gold_invalid``
    or times out on. Returns ``{"checked": True, "rows": rows graded, "total_rows": rows in the
    dataset, "invalid": invalid labels among those graded, "examples": up to three of them (repr)}``,
    or ``{"checked": False, "reason": ...}`` for what is not local (a hub id, a loading script).
    """
    if max_rows < 1 or not 0 <= max_invalid_share < 1:
        raise ValueError(f"need max_rows >= 1 and 0 <= max_invalid_share < 1, got {max_rows}, {max_invalid_share}")
    specs = [spec.strip() for spec in str(path).split(",") if spec.strip()]
    if not specs:
        raise ValueError("check_labels: no dataset path given")
    own_pool = pool is None
    if own_pool:  # no process starts until a gold needs one
        pool = reward.GraderPool(
            workers=min(CHECK_WORKERS, reward_pool.DEFAULT_WORKERS), timeout=reward_pool.DEFAULT_TIMEOUT
        )
    try:
        args = (label_key, flag, max_rows, max_invalid_share, seed, split, pool)
        results = [_check_one(spec, *args) for spec in specs]
    finally:
        if own_pool:
            pool.close()
    if len(results) == 1:
        return results[0]
    checked = [r for r in results if r["checked"]]
    skipped = [r["reason"] for r in results if not r["checked"]]
    if not checked:
        return {"checked": False, "reason": "; ".join(skipped)}
    summary = {key: sum(r[key] for r in checked) for key in ("rows", "total_rows", "invalid")}
    summary["examples"] = [example for r in checked for example in r["examples"]][:EXAMPLES]
    return {"checked": True, **summary, **({"skipped": skipped} if skipped else {})}


def _check_one(spec, label_key, flag, max_rows, max_invalid_share, seed, split, pool) -> dict:
    name, _, data_dir = spec.partition("@")  # as blending_datasets splits it
    name, data_dir = name.strip(), data_dir.strip() or None
    where = Path(name).expanduser()
    ext = where.suffix.lower()
    if ext == ".py" or (where.is_dir() and (where / f"{where.name}.py").exists()):
        return {"checked": False, "reason": f"{name}: a dataset loading script, labels not checked"}
    if not where.exists():
        return {"checked": False, "reason": f"{name}: not a local file or folder (a hub dataset?), labels not checked"}
    if where.is_file() and ext not in DATA_SUFFIXES:
        return {
            "checked": False,
            "reason": f"{name}: not a file format OpenRLHF reads (.jsonl .json .parquet .csv .arrow)",
        }
    if not label_key:
        raise LabelError(
            f"Label check failed for {name}: no label key is set ({flag}), so every label would be empty and "
            f"every sample score 0. Pass {flag} with the key of the column holding the gold answer, "
            f"or {SKIP_FLAG} to skip this check."
        )
    try:
        labels, keys = _read_labels(where, ext, label_key, data_dir, split)
    except LabelError:
        raise
    except Exception as err:  # OpenRLHF would fail on it too: say so now, in the check's terms
        raise LabelError(
            f"Label check failed for {name}: could not read it ({type(err).__name__}: {str(err)[:200]}). "
            f"Fix the file, or pass {SKIP_FLAG} to skip this check."
        ) from err
    if labels is not None and not labels:
        raise LabelError(f"Label check failed for {name}: it has no rows. Pass {SKIP_FLAG} to skip this check.")
    if labels is None:
        shown = ", ".join(repr(key) for key in keys[:KEYS_SHOWN]) + (", ..." if len(keys) > KEYS_SHOWN else "")
        verl = (
            " OpenRLHF reads top-level keys only: for a file in the paper's verl layout (the answer under "
            "reward_model.ground_truth), write a jsonl with python -m openrlhf_nsr.prepare_data and use its key 'answer'."
            if "reward_model" in keys
            else ""
        )
        raise LabelError(
            f"Label check failed for {name}: no row has the key {label_key!r} given by {flag}; "
            f"the rows have {shown or 'no keys'}.{verl} Pass {flag} with the key of the column holding the "
            f"gold answer, or {SKIP_FLAG} to skip this check."
        )
    total = len(labels)
    empty = [i for i, label in enumerate(labels) if _is_empty(label)]
    if len(empty) > max_invalid_share * total:
        rows = ", ".join(f"{i} ({_example(labels[i])})" for i in empty[:EXAMPLES])
        raise LabelError(
            f"Label check failed for {name}: {len(empty)} of {total} rows ({len(empty) / total:.1%}, more than "
            f"the {max_invalid_share * 100:g}% allowed) have an empty or missing label under key {label_key!r} "
            f"(rows {rows}, counted from 0), and the reward scores every sample of such a prompt 0, so NSR would "
            f"push all its responses down. Check {flag} and the data (python -m openrlhf_nsr.prepare_data drops "
            f"problems without an answer), or pass {SKIP_FLAG} to skip this check."
        )
    if total > max_rows:
        picked = sorted(random.Random(seed).sample(range(total), max_rows))
        sample = [labels[i] for i in picked]
    else:
        sample = labels
    reasons = _grade_labels(sample, pool)
    invalid = [(label, why) for label, why in zip(sample, reasons) if why]
    examples = list(dict.fromkeys(_example(label) for label, _ in invalid))[:EXAMPLES]
    if len(invalid) > max_invalid_share * len(sample):
        of = f"{len(sample)} rows sampled from {total}" if len(sample) < total else f"{len(sample)} rows"
        counts = {}
        for _, why in invalid:
            counts[why] = counts.get(why, 0) + 1
        breakdown = ", ".join(f"{count} {why}" for why, count in counts.items())
        types = sorted({type(label).__name__ for label, why in invalid if why == _NOT_TEXT})
        not_text = (
            f' The reward reads text labels only, and these are {"/".join(types)}: write them as strings ("5").'
            if types
            else ""
        )
        raise LabelError(
            f"Label check failed for {name}: {len(invalid)} of {of} ({len(invalid) / len(sample):.1%}, more than "
            f"the {max_invalid_share * 100:g}% allowed) have a label under key {label_key!r} that the math reward cannot "
            f"grade ({breakdown}), so every sample of those prompts would score 0 and NSR would push all its "
            f"responses down. Examples: {', '.join(examples)}.{not_text} Check {flag} and the data, or pass "
            f"{SKIP_FLAG} to skip this check."
        )
    return {"checked": True, "rows": len(sample), "total_rows": total, "invalid": len(invalid), "examples": examples}


# ── Reading the label column ──


def _read_labels(where: Path, ext: str, key: str, data_dir, split) -> Tuple[Optional[list], List[str]]:
    """(the label of each row, None for a row without the key; or None if no row has it), the keys seen."""
    if where.is_file() and ext in (".jsonl", ".json"):
        return _column(_json_rows(where, ext), key)
    if where.is_file() and ext == ".parquet":
        import pyarrow.parquet as pq

        names = pq.ParquetFile(where).schema_arrow.names  # top-level columns: "a.b" must not select a nested field
        if key not in names:
            return None, sorted(names)
        return pq.read_table(where, columns=[key]).column(key).to_pylist(), sorted(names)
    return _read_with_datasets(where, ext, key, data_dir, split)


def _json_rows(where: Path, ext: str) -> list:
    """Rows of a JSON-lines file, or of a .json file holding a list of rows or a dict of columns."""
    with open(where, encoding="utf-8") as f:
        text = f.read()
    if ext == ".json":
        try:
            document = json.loads(text)
        except json.JSONDecodeError:  # several documents: JSON lines
            pass
        else:
            if isinstance(document, list):
                return document
            if isinstance(document, dict) and document and all(isinstance(v, list) for v in document.values()):
                length = max(len(v) for v in document.values())
                return [{k: v[i] if i < len(v) else None for k, v in document.items()} for i in range(length)]
            return [document]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _column(rows: Sequence, key: str) -> Tuple[Optional[list], List[str]]:
    keys: dict = {}
    labels, found = [], False
    for row in rows:
        if isinstance(row, dict):
            keys.update(dict.fromkeys(row))
            found = found or key in row
            labels.append(row.get(key))
        else:
            labels.append(None)
    return (labels if found or not rows else None), sorted(str(k) for k in keys)


def _read_with_datasets(where: Path, ext: str, key: str, data_dir, split) -> Tuple[Optional[list], List[str]]:
    """A .csv / .arrow file or a folder, read as blending_datasets reads it (HF datasets, local files only)."""
    import datasets

    if where.is_file():
        data = datasets.load_dataset(ext.lstrip("."), data_files=str(where))
    else:
        try:
            data = datasets.load_from_disk(str(where))
        except Exception:  # not saved with save_to_disk: a folder of data files
            data = datasets.load_dataset(str(where), data_dir=data_dir)
    if isinstance(data, datasets.DatasetDict):
        if split in data:
            data = data[split]
        elif len(data) == 1:
            data = next(iter(data.values()))
        else:
            raise LabelError(
                f"Label check failed for {where}: it has no split {split!r} (it has {', '.join(map(repr, data))}). "
                f"Pass --data.prompt_split with one of them, or {SKIP_FLAG} to skip this check."
            )
    names = list(data.column_names)
    if key not in names:
        return None, sorted(names)
    return list(data[key]), sorted(names)


# ── Grading ──

_EMPTY, _NOT_TEXT, _TIMED_OUT = "empty", "not text", "timed out"
_TOO_LONG = f"longer than {reward.MAX_ANSWER_CHARS} characters or nested deeper than {reward.MAX_BRACE_DEPTH}"
_UNPARSABLE = "without a mathematical meaning for math-verify"


def _is_empty(label) -> bool:
    text = reward._as_text(label)
    return label is None or (text is not None and not text.strip())


def _example(label) -> str:
    text = repr(label)
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 3] + "..."


def _key(label):
    """Labels graded once each: the same value and type (1 and "1" differ for the reward; repr: NaN, lists)."""
    return type(label), label if isinstance(label, str) else repr(label)


def _verdict(label, pool: reward.GraderPool, wait: bool = True) -> Optional[reward.Verdict]:
    """The reward's verdict on ``label`` as the gold of a sample with an answer (None: it needs a worker).

    ``gold_invalid`` does not depend on the answer, as long as there is one: the reward decides it
    from the gold (_grade_extracted's bounds, then math-verify's parse in a worker). Without
    ``wait``, the answer is the gold itself, which the reward's fast path settles for a plain
    number; a worker gets PROBE, which math-verify compares with the gold as a string, cheaply
    (a third less worker time than the gold against itself).
    """
    text = reward._as_text(label)
    answer = (text.strip() if text else None) if not wait else PROBE
    return reward._grade_extracted(answer, label, pool, wait)


def _why(label, verdict: reward.Verdict) -> Optional[str]:
    if verdict.timed_out:
        return _TIMED_OUT
    if not verdict.gold_invalid:
        return None
    text = reward._as_text(label)
    if text is None:
        return _EMPTY if label is None else _NOT_TEXT
    if not text.strip():
        return _EMPTY
    return _TOO_LONG if len(text) > reward.MAX_ANSWER_CHARS or reward._too_nested(text) else _UNPARSABLE


def _grade_labels(labels: Sequence, pool: reward.GraderPool) -> List[Optional[str]]:
    """For each label, why the reward cannot grade it (None: it can). Distinct labels are graded once,
    in the caller where the reward's checks and fast path decide (plain numbers, empty labels),
    else in parallel in the pool's workers, each within its time limit."""
    distinct = {}
    for label in labels:
        distinct.setdefault(_key(label), label)
    verdicts = {key: _verdict(label, pool, wait=False) for key, label in distinct.items()}
    pending = [key for key, verdict in verdicts.items() if verdict is None]
    if pending:
        with ThreadPoolExecutor(max_workers=min(pool.workers, len(pending))) as executor:
            verdicts.update(zip(pending, executor.map(lambda key: _verdict(distinct[key], pool), pending)))
    reasons = {key: _why(distinct[key], verdict) for key, verdict in verdicts.items()}
    return [reasons[_key(label)] for label in labels]


# ── During training ──


def invalid_share_warning(extra_logs_or_counts, threshold: float = 0.5) -> Optional[str]:
    """A one-line warning when more than ``threshold`` of a step's graded samples could not be graded, else None.

    ``extra_logs_or_counts``: the reward's ``extra_logs`` for one step (or a dict holding them
    under ``"extra_logs"``): per-sample 0/1 ``gold_invalid`` and ``grading_timeout``, as lists,
    tuples, tensors or arrays (nested lists of them too), and optionally ``answer_found``. The
    graded samples are those with an answer found, or an invalid gold (the reward flags an
    invalid gold only for a sample with an answer, an empty one always); without
    ``answer_found``, all samples. Or counts: ``gold_invalid`` and ``grading_timeout`` as
    numbers and ``samples``, the number of graded samples.
    """
    logs = extra_logs_or_counts
    if isinstance(logs.get("extra_logs"), Mapping):
        logs = logs["extra_logs"]
    if "samples" in logs:
        graded = float(logs["samples"])
        invalid, timeouts = (sum(_flat(logs.get(key)) or [0.0]) for key in (GOLD_INVALID, GRADING_TIMEOUT))
    else:
        invalid_values, timeout_values = _flat(logs.get(GOLD_INVALID)), _flat(logs.get(GRADING_TIMEOUT))
        if invalid_values is None and timeout_values is None:
            return None
        count = len(invalid_values if invalid_values is not None else timeout_values)
        invalid_values = invalid_values if invalid_values is not None else [0.0] * count
        timeout_values = timeout_values if timeout_values is not None else [0.0] * count
        if len(invalid_values) != len(timeout_values):
            raise ValueError(
                f"{len(invalid_values)} gold_invalid values but {len(timeout_values)} grading_timeout values"
            )
        found = _flat(logs.get(ANSWER_FOUND))
        if found is None or len(found) != count:
            found = [1.0] * count
        graded = sum(max(f, i, t) for f, i, t in zip(found, invalid_values, timeout_values))
        invalid, timeouts = sum(invalid_values), sum(timeout_values)
    if graded <= 0:
        return None
    invalid_share, timeout_share = min(1.0, invalid / graded), min(1.0, timeouts / graded)
    share = min(1.0, invalid_share + timeout_share)  # one sample is never both (reward.py)
    if share <= threshold:
        return None
    return (
        f"{share:.0%} of this step's {graded:g} graded samples could not be graded "
        f"(gold_invalid {invalid_share:.0%}, grading_timeout {timeout_share:.0%}), more than {threshold:.0%}: "
        f"the labels or --data.label_key are likely wrong, and NSR pushes these samples down "
        f"(timeouts alone can also mean overloaded reward workers, OPENRLHF_NSR_REWARD_TIMEOUT)"
    )


def _flat(value) -> Optional[List[float]]:
    """Per-sample values as floats: a number, or any nesting of lists, tuples, tensors and arrays."""
    if value is None:
        return None
    if hasattr(value, "tolist"):  # torch tensor, numpy array (0-d included: a number)
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [x for item in value for x in _flat(item)]
    return [float(value)]
