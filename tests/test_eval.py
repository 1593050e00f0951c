"""The evaluation harness end to end on CPU: a tiny random model, the paper's data files."""

import json

import pytest
from conftest import PAPER_DATA
from tiny_model import build_tiny_model

from openrlhf_nsr import data, eval as evaluation
from openrlhf_nsr.reward import last_boxed

MATH = f"math={PAPER_DATA / 'math_test.parquet'}"
AIME = f"aime2025={PAPER_DATA / 'aime2025_test.parquet'}"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    _, problems = data.load_problems(MATH)
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), [p.problem for p in problems[:50]])


def run_args(model, out, *extra):
    return ["--model", str(model), "--datasets", f"{MATH},{AIME}", "--max-problems", "3", "--n", "4",
            "--max-tokens", "12", "--out", str(out), *extra]  # fmt: skip


def read_rows(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_a_run_writes_samples_metrics_and_plot(tiny_model, tmp_path, capsys):
    out = tmp_path / "base"
    assert evaluation.main(run_args(tiny_model, out)) == 0
    rows = read_rows(out / "samples.jsonl")
    assert len(rows) == 2 * 3 * 4
    assert {(r["dataset"], r["sample_index"]) for r in rows} == {(d, i) for d in ("math", "aime2025") for i in range(4)}
    for row in rows:
        assert set(row) >= {"dataset", "problem_id", "sample_index", "response", "answer", "correct", "finish_reason"}
        assert row["finish_reason"] in ("stop", "length") and isinstance(row["correct"], bool)
    _, problems = data.load_problems(MATH)
    solutions_boxed = [last_boxed(p.solution) for p in problems[:3]]  # --label auto
    assert [r["gold"] for r in rows if r["dataset"] == "math"][::4] == solutions_boxed

    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("math", "aime2025"):
        m = metrics["datasets"][name]
        assert m["num_problems"] == 3 and m["n"] == 4 and list(m["pass_at_k"]) == ["1", "2", "4"]
        assert all(0 <= v <= 1 for v in m["pass_at_k"].values())
        assert 0 < m["entropy"] < 7  # a random model over a 400-token vocabulary: about ln(400) = 6.0
        assert m["missing_answers"] == sum(r["answer"] is None for r in rows if r["dataset"] == name)
        assert m["grading_timeouts"] == 0
        assert m["generation"]["temperature"] == 0.6 and m["generation"]["top_p"] == 0.95
    assert metrics["config"]["backend"] == "hf"
    png = (out / "passk.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert "math" in capsys.readouterr().out


def test_an_interrupted_run_resumes_where_it_stopped_with_the_same_samples(tiny_model, tmp_path):
    out = tmp_path / "resume"
    evaluation.main(run_args(tiny_model, out))
    full = read_rows(out / "samples.jsonl")
    lines = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    (out / "samples.jsonl").write_text("".join(lines[:6]) + lines[6][:20])  # 1.5 problems, a cut line
    evaluation.main(run_args(tiny_model, out))
    resumed = read_rows(out / "samples.jsonl")
    key = lambda r: (r["dataset"], r["problem_id"], r["sample_index"])  # noqa: E731
    assert sorted(resumed, key=key) == sorted(full, key=key)  # seeded per problem: identical samples
    assert resumed[:4] == full[:4]  # the finished problem was kept, not regenerated


def test_a_folder_holding_another_config_is_refused(tiny_model, tmp_path, capsys):
    out = tmp_path / "clash"
    evaluation.main(run_args(tiny_model, out))
    with pytest.raises(SystemExit):
        evaluation.main(run_args(tiny_model, out, "--temperature", "1.0"))
    assert "holds a run with a different config (temperature: 0.6 -> 1.0)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--datasets", "gsm8k"], "unknown dataset 'gsm8k'"),
        (["--template", "mistral"], "unknown template 'mistral'"),
        (["--model", "/no/such/model"], "no such local path"),
        (["--n", "4", "--ks", "1,8"], "smaller than the largest k requested (8)"),
        (["--datasets", "math=/no/such.parquet"], "does not exist"),
    ],
)
def test_bad_input_is_a_clear_error(tiny_model, tmp_path, capsys, flags, message):
    args = ["--model", str(tiny_model), "--datasets", MATH, "--n", "4", "--out", str(tmp_path / "x")]
    with pytest.raises(SystemExit):
        evaluation.main(args + flags)
    assert message in capsys.readouterr().err


def test_compare_prints_runs_next_to_the_paper_and_writes_an_overlay(tiny_model, tmp_path, capsys):
    evaluation.main(run_args(tiny_model, tmp_path / "base"))
    evaluation.main(run_args(tiny_model, tmp_path / "again", "--seed", "1"))
    capsys.readouterr()
    plot = tmp_path / "overlay.png"
    assert evaluation.main(["compare", str(tmp_path / "base"), str(tmp_path / "again"), "--paper", "qwen2.5-math-7b",
                            "--out", str(plot)]) == 0  # fmt: skip
    table = capsys.readouterr().out
    assert "paper nsr" in table and "paper w-reinforce" in table
    assert "base - paper base" in table and "-63.2" in table  # our 0% pass@1 on MATH vs the paper's 63.2
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_compare_refuses_a_folder_without_metrics(tmp_path, capsys):
    with pytest.raises(SystemExit):
        evaluation.main(["compare", str(tmp_path)])
    assert "has no metrics.json" in capsys.readouterr().err


def test_the_paper_reference_file_holds_table_1_and_figure_3():
    table1 = evaluation.load_paper("qwen2.5-math-7b")
    assert table1["nsr"]["aime2025"]["256"] == pytest.approx(0.533)
    assert table1["base"]["math"]["1"] == pytest.approx(0.632)
    assert set(table1) == {"base", "grpo", "ppo", "psr", "nsr", "w-reinforce"}
    figure3 = evaluation.load_paper("qwen3-4b")
    assert set(figure3["nsr"]) == {"math", "aime2025", "amc23"} and list(figure3["nsr"]["math"]) == [
        str(k) for k in (1, 2, 4, 8, 16, 32, 64)
    ]
    with pytest.raises(ValueError, match="qwen2.5-math-7b, qwen3-4b"):
        evaluation.load_paper("llama")


@pytest.mark.parametrize("name", ["qwen", "qwen3_no_thinking", "llama"])
def test_templates_are_the_papers_raw_strings(name):
    prompt = data.apply_template(name, "What is 1+1?")
    assert "What is 1+1?\nPlease reason step by step, and put your final answer within \\boxed{}." in prompt
    assert prompt.endswith({"qwen": "assistant\n", "qwen3_no_thinking": "<think>\n\n</think>\n",
                            "llama": "<|end_header_id|>\n\n"}[name])  # fmt: skip


def test_the_chat_template_uses_the_models_own(tiny_model):
    from transformers import AutoTokenizer

    prompt = data.apply_template("chat", "What is 1+1?", AutoTokenizer.from_pretrained(tiny_model))
    assert prompt.startswith("<|im_start|>user\nWhat is 1+1?") and prompt.endswith("<|im_start|>assistant\n")


def test_labels_come_from_the_reference_solution_unless_target_is_asked_for():
    _, auto = data.load_problems(MATH.replace("math=", "math_test="))
    _, target = data.load_problems(MATH, label="target")
    assert auto[4459].answer == "\\begin{pmatrix} 6 \\\\ 3 \\\\ 0 \\end{pmatrix}"  # parsable LaTeX
    assert target[4459].answer == "\\begin{pmatrix}6\\3\\0\\end{pmatrix}"  # the paper's collapsed column
    with pytest.raises(ValueError, match="unknown label source"):
        data.load_problems(MATH, label="solution")


def test_datasets_load_in_the_papers_layout_and_flat_jsonl(tmp_path):
    name, problems = data.load_problems(AIME)
    assert name == "aime2025" and len(problems) == 30 and problems[0].answer
    flat = tmp_path / "mine.jsonl"
    flat.write_text(json.dumps({"problem": "1+1?", "solution": "so \\boxed{2}"}) + "\n")
    assert data.load_problems(str(flat)) == ("mine", [data.Problem("0", "1+1?", "2", solution="so \\boxed{2}")])


@pytest.mark.parametrize("script,paper", [("reproduce_table1.sh", "qwen2.5-math-7b"), ("reproduce_figure3.sh", "qwen3-4b")])
def test_reproduction_scripts_issue_valid_eval_commands(script, paper, tmp_path):
    import shlex
    import subprocess

    from conftest import REPO

    env = {"PATH": "/usr/bin:/bin", "DRY_RUN": "1", "OUT_DIR": str(tmp_path / "runs")}
    out = subprocess.run(["bash", str(REPO / "benchmarks" / script)], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    commands = [shlex.split(line) for line in out.stdout.splitlines()]
    evals = [c[c.index("-m") + 2 :] for c in commands if c[c.index("-m") + 2] != "compare"]
    assert len(evals) == {"qwen2.5-math-7b": 6, "qwen3-4b": 5}[paper]
    for argv in evals:  # every flag is one the harness accepts, and the protocol is the paper's
        args = evaluation.run_parser().parse_args(argv)
        assert args.backend == "vllm" and args.datasets == "math,aime2025,amc23"
        assert (args.n, args.temperature, args.top_p) == ((256, 0.6, 0.95) if paper == "qwen2.5-math-7b" else (64, 0.7, 0.8))
    assert commands[-1][commands[-1].index("--paper") + 1] == paper
