"""The label check before training (openrlhf_nsr/labels.py): real files, the reward's real graders."""

import json
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import PAPER_DATA

from openrlhf_nsr import data, prepare_data
from openrlhf_nsr.labels import SKIP_FLAG, LabelError, check_labels, invalid_share_warning
from openrlhf_nsr.reward import GraderPool, grade_batch, reward_func

MISSING = object()  # a row without the label key
# golds the reward grades (numbers, LaTeX, a word in \text{}), one per row in turn
VALID = ["\\frac{1}{2}", "3", "x^2+1", "\\sqrt{2}", "(1, 2)", "[0, 1)", "\\pi", "-4", "0.25", "2\\sqrt{3}",
         "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\text{even}", "50\\%", "\\{1, 2\\}", "12"]  # fmt: skip
# golds the reward marks gold_invalid: sentences with punctuation, bare symbols, empty
GARBAGE = ["See the proof above.", "?", "[]", ""]


@pytest.fixture(scope="module")
def pool():
    pool = GraderPool(workers=2)
    yield pool
    pool.close()


def write_jsonl(path, labels, key="answer"):
    with open(path, "w", encoding="utf-8") as f:
        for i, label in enumerate(labels):
            row = {"prompt": f"Problem {i}", "datasource": "test", "id": str(i)}
            if label is not MISSING:
                row[key] = label
            f.write(json.dumps(row) + "\n")
    return str(path)


def valid(count):
    return [VALID[i % len(VALID)] for i in range(count)]


# ── Datasets the reward can grade ──


def test_prepared_training_data_passes(tmp_path):
    """The paper's training slice as prepare_data writes it (2 problems without an answer dropped),
    graded by the check's own pool."""
    out = tmp_path / "train.jsonl"
    prepare_data.main(["--datasets", f"math_train={PAPER_DATA / 'math_train_slice.parquet'}", "--out", str(out)])
    summary = check_labels(str(out), "answer")
    assert summary == {"checked": True, "rows": 250, "total_rows": 250, "invalid": 0, "examples": []}


def test_kept_ungradable_problems_are_counted_not_refused(tmp_path, pool):
    out = tmp_path / "train.jsonl"
    argv = [
        "--datasets",
        f"math_train={PAPER_DATA / 'math_train_slice.parquet'}",
        "--out",
        str(out),
        "--keep-ungradable",
    ]
    prepare_data.main(argv)
    summary = check_labels(str(out), "answer", pool=pool)
    assert summary == {"checked": True, "rows": 252, "total_rows": 252, "invalid": 2, "examples": ["''"]}


def test_math_test_set_sampled_to_2000_rows(tmp_path, pool):
    _, problems = data.load_problems(f"math={PAPER_DATA / 'math_test.parquet'}")
    path = write_jsonl(tmp_path / "math.jsonl", [p.answer for p in problems])
    start = time.monotonic()
    summary = check_labels(path, "answer", pool=pool)
    elapsed = time.monotonic() - start
    assert summary["checked"] and summary["rows"] == 2000 and summary["total_rows"] == 5000
    assert summary["invalid"] <= 2  # MATH has 2 golds math-verify cannot read (\frac{12}{5,\!525}, ...)
    assert elapsed < 60, elapsed  # about 3 s on 2 cores; a bound against grading golds one by one, not a benchmark


def test_parquet_file(tmp_path, pool):
    labels = valid(40) + ["?"]
    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({"prompt": [f"Problem {i}" for i in range(41)], "answer": labels}), path)
    assert check_labels(str(path), "answer", pool=pool) == {
        "checked": True, "rows": 41, "total_rows": 41, "invalid": 1, "examples": ["'?'"],
    }  # fmt: skip


def test_json_array_and_saved_dataset_folder(tmp_path, pool):
    import datasets

    rows = [{"prompt": f"Problem {i}", "answer": label} for i, label in enumerate(valid(30))]
    (tmp_path / "train.json").write_text(json.dumps(rows), encoding="utf-8")
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "saved"))
    for path in (tmp_path / "train.json", tmp_path / "saved"):
        assert check_labels(str(path), "answer", pool=pool)["rows"] == 30, path


def test_two_percent_garbage_passes(tmp_path, pool):
    labels = valid(98) + ["See the proof above.", "?"]
    summary = check_labels(write_jsonl(tmp_path / "train.jsonl", labels), "answer", pool=pool)
    assert summary == {
        "checked": True, "rows": 100, "total_rows": 100, "invalid": 2, "examples": ["'See the proof above.'", "'?'"],
    }  # fmt: skip


# ── Refused ──


def test_wrong_key_names_the_key_the_keys_present_and_the_flag(tmp_path, pool):
    path = write_jsonl(tmp_path / "train.jsonl", valid(10))
    with pytest.raises(LabelError) as error:
        check_labels(path, "label", pool=pool)
    message = str(error.value)
    assert path in message and "'label'" in message and "--data.label_key" in message and SKIP_FLAG in message
    assert "'answer', 'datasource', 'id', 'prompt'" in message
    with pytest.raises(LabelError, match="--label-key"):
        check_labels(path, "label", flag="--label-key", pool=pool)


def test_verl_layout_file_points_to_prepare_data(pool):
    with pytest.raises(LabelError) as error:
        check_labels(str(PAPER_DATA / "math_train_slice.parquet"), "answer", pool=pool)
    message = str(error.value)
    assert "'reward_model'" in message and "'prompt'" in message and "openrlhf_nsr.prepare_data" in message


def test_empty_labels_refused(tmp_path, pool):
    labels = valid(70) + [None, "", "   ", MISSING] * 7 + [None, ""]
    with pytest.raises(LabelError) as error:
        check_labels(write_jsonl(tmp_path / "train.jsonl", labels), "answer", pool=pool)
    message = str(error.value)
    assert "30 of 100 rows" in message and "empty or missing label under key 'answer'" in message
    assert "rows 70 (None), 71 (''), 72 ('   ')" in message and SKIP_FLAG in message


def test_twenty_percent_garbage_refused_with_three_examples(tmp_path, pool):
    labels = [label for i in range(20) for label in VALID[i % 10 : i % 10 + 4] + [GARBAGE[i % 4]]]  # 1 in 5
    path = write_jsonl(tmp_path / "train.jsonl", labels)
    with pytest.raises(LabelError) as error:
        check_labels(path, "answer", pool=pool)
    message = str(error.value)
    assert path in message and "key 'answer'" in message and "20 of 100 rows (20.0%" in message
    assert "(15 without a mathematical meaning for math-verify, 5 empty)" in message
    assert "Examples: 'See the proof above.', '?', '[]'." in message
    assert "--data.label_key" in message and SKIP_FLAG in message


def test_unreadable_file_refused(tmp_path, pool):
    path = tmp_path / "train.jsonl"
    path.write_text('{"answer": "1"}\n{"answer": \n', encoding="utf-8")
    with pytest.raises(LabelError, match=r"could not read it \(JSONDecodeError"):
        check_labels(str(path), "answer", pool=pool)


def test_examples_are_truncated(tmp_path, pool):
    too_long = "x" * 1001  # longer than the reward reads (MAX_ANSWER_CHARS)
    with pytest.raises(LabelError) as error:
        check_labels(write_jsonl(tmp_path / "train.jsonl", [too_long] * 3), "answer", pool=pool)
    example = str(error.value).split("Examples: ")[1].split(". Check")[0]
    assert example == "'" + "x" * 76 + "..."


@pytest.mark.parametrize(
    "gold",
    ["\\frac{1}{2}", "N/A", "see solution", "?", "", "  ", None, 5, 0.5, [1], "\\frac{1}{", "x" * 1001,
     "{" * 40 + "1" + "}" * 40],
)  # fmt: skip
def test_refuses_exactly_the_golds_the_reward_marks_invalid(tmp_path, pool, gold):
    """One row: refused iff the reward flags gold_invalid on a sample that has an answer.
    (math-verify reads words as products of symbols: "N/A" and "see solution" are graded.)"""
    invalid = grade_batch(["\\boxed{7}"], [gold], pool)[0].gold_invalid
    path = write_jsonl(tmp_path / "train.jsonl", [gold])
    if invalid:
        with pytest.raises(LabelError):
            check_labels(path, "answer", pool=pool)
    else:
        assert check_labels(path, "answer", pool=pool)["invalid"] == 0


def test_number_labels_are_graded_as_their_text(tmp_path, pool):
    """OpenRLHF hands the reward a number label as a number (a JSON column of ints): graded as its text."""
    labels = list(range(40)) + [0.5] * 10
    path = write_jsonl(tmp_path / "train.jsonl", labels)
    assert check_labels(path, "answer", pool=pool)["invalid"] == 0
    verdicts = grade_batch(["\\boxed{5}", "\\boxed{1/2}", "\\boxed{6}"], [5, 0.5, 5], pool)
    assert [(v.correct, v.gold_invalid) for v in verdicts] == [(True, False), (True, False), (False, False)]


def test_a_gold_too_slow_to_grade_times_out(tmp_path):
    """Each gold within the reward's per-sample limit: a worker stuck on one is killed."""
    slow_pool = GraderPool(workers=1, timeout=1.0)
    try:
        path = write_jsonl(tmp_path / "train.jsonl", ["10^{10^{10}}!"])
        start = time.monotonic()
        with pytest.raises(LabelError, match=r"\(1 timed out\)"):
            check_labels(path, "answer", pool=slow_pool)
        assert time.monotonic() - start < 30  # the worker's start (sympy import) + 1 s
    finally:
        slow_pool.close()


# ── What is not checked, several datasets, sampling ──


def test_hub_id_and_missing_paths_are_not_checked():
    for path in ("TianHongZXY/MATH", "TianHongZXY/MATH@data", "/nonexistent/train.jsonl"):
        summary = check_labels(path, "answer")
        assert summary["checked"] is False and "hub" in summary["reason"], summary


def test_comma_separated_datasets(tmp_path, pool):
    good = write_jsonl(tmp_path / "good.jsonl", valid(20))
    bad = write_jsonl(tmp_path / "bad.jsonl", ["?"] * 20)
    summary = check_labels(f"{good}, TianHongZXY/MATH", "answer", pool=pool)
    assert summary["checked"] and summary["rows"] == 20 and "TianHongZXY/MATH" in summary["skipped"][0]
    with pytest.raises(LabelError, match="bad.jsonl"):
        check_labels(f"{good},{bad}", "answer", pool=pool)


def test_large_file_sampled_deterministically(tmp_path, pool):
    """Rows 2,500-4,999 are garbage: a check of the first rows would pass; a uniform sample does not."""
    path = write_jsonl(tmp_path / "train.jsonl", [str(i) for i in range(2500)] + ["?"] * 2500)
    summaries = [
        check_labels(path, "answer", max_rows=400, max_invalid_share=0.99, seed=s, pool=pool) for s in range(4)
    ]
    assert all(s["rows"] == 400 and s["total_rows"] == 5000 and 140 < s["invalid"] < 260 for s in summaries)
    assert check_labels(path, "answer", max_rows=400, max_invalid_share=0.99, seed=0, pool=pool) == summaries[0]
    assert len({s["invalid"] for s in summaries}) > 1  # the seed picks the sample
    with pytest.raises(LabelError, match=r"of 400 rows sampled from 5000 \("):
        check_labels(path, "answer", max_rows=400, pool=pool)


# ── During training ──


def test_warning_above_threshold_lists():
    logs = {"gold_invalid": [1.0] * 6 + [0.0] * 2, "grading_timeout": [0.0] * 8}
    warning = invalid_share_warning(logs)
    assert "75% of this step's 8 graded samples" in warning and "gold_invalid 75%, grading_timeout 0%" in warning
    assert "--data.label_key" in warning and "\n" not in warning
    assert invalid_share_warning(logs, threshold=0.8) is None


def test_warning_below_threshold_tensors():
    logs = {"gold_invalid": torch.tensor([1.0, 0.0, 0.0, 0.0]), "grading_timeout": torch.tensor([0.0, 1.0, 0.0, 0.0])}
    assert invalid_share_warning(logs) is None
    logs["grading_timeout"] = torch.tensor([0.0, 1.0, 1.0, 0.0])
    assert "gold_invalid 25%, grading_timeout 50%" in invalid_share_warning(logs)


def test_warning_counts_graded_samples_only():
    """Samples without a boxed answer are never checked against their gold: not in the share."""
    logs = {
        "gold_invalid": torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]),
        "grading_timeout": torch.zeros(8),
        "answer_found": torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]),
    }
    assert "67% of this step's 3 graded samples" in invalid_share_warning(logs)
    del logs["answer_found"]
    assert invalid_share_warning(logs) is None
    assert invalid_share_warning({"gold_invalid": [0.0] * 4, "answer_found": [0.0] * 4}) is None
    assert invalid_share_warning({}) is None


def test_warning_per_sample_tensors_and_counts():
    per_sample = {
        "gold_invalid": [torch.tensor([1.0])] * 3 + [torch.tensor([0.0])],
        "grading_timeout": [torch.tensor([0.0])] * 4,
    }
    assert "75% of this step's 4 graded samples" in invalid_share_warning(per_sample)
    counts = {"gold_invalid": 30, "grading_timeout": 5, "samples": 64}
    assert "55% of this step's 64 graded samples" in invalid_share_warning(counts)
    assert invalid_share_warning(counts, threshold=0.6) is None


def test_warning_on_the_rewards_own_output():
    out = reward_func(["Q \\boxed{1}"] * 4, ["Q"] * 4, ["", "", "", "1"])
    assert "gold_invalid 75%" in invalid_share_warning(out)
    assert invalid_share_warning(out["extra_logs"], threshold=0.75) is None
