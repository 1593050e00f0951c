"""The evaluation harness end to end on CPU: a tiny random model, the paper's data files."""

import json
from pathlib import Path

import pytest
from conftest import PAPER_DATA
from tiny_model import build_tiny_model

from openrlhf_nsr import data
from openrlhf_nsr import eval as evaluation
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
    config = (out / "config.json").read_text()
    err = usage_error(run_args(tiny_model, out, "--temperature", "1.0"), capsys)
    assert "holds a run with a different config (temperature: 0.6 -> 1.0)" in err
    assert (out / "config.json").read_text() == config


def usage_error(argv, capsys) -> str:
    """Run the CLI expecting a usage error (argparse's exit status 2); returns stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        evaluation.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--ks", "a,b"], "argument --ks: invalid value 'a,b': 'a' is not an integer; need comma-separated integers 1 <= k <= n = 4"),
        (["--ks", "1.5"], "argument --ks: invalid value '1.5': '1.5' is not an integer"),
        (["--ks", "1,,2"], "argument --ks: invalid value '1,,2': '' is not an integer"),
        (["--ks", "1,8"], "argument --ks: invalid value '1,8': k = 8 is outside 1 <= k <= n = 4 (pass@k needs at least k"),
        (["--ks", "0,1"], "argument --ks: invalid value '0,1': k = 0 is outside 1 <= k <= n = 4"),
        (["--max-problems", "0"], "argument --max-problems: invalid value 0: need an integer >= 1"),
        (["--max-problems", "-1"], "argument --max-problems: invalid value -1: need an integer >= 1"),
        (["--n", "0"], "argument --n: invalid value 0: need an integer >= 1"),
        (["--temperature", "-0.1"], "argument --temperature: invalid value -0.1: need a number >= 0"),
        (["--temperature", "nan"], "argument --temperature: invalid value nan: need a number >= 0"),
        (["--top-p", "0"], "argument --top-p: invalid value 0.0: need 0 < p <= 1"),
        (["--top-p", "1.5"], "argument --top-p: invalid value 1.5: need 0 < p <= 1"),
        (["--top-k", "0"], "argument --top-k: invalid value 0: need -1 (off) or an integer >= 1"),
        (["--top-k", "-2"], "argument --top-k: invalid value -2: need -1 (off) or an integer >= 1"),
        (["--max-tokens", "0"], "argument --max-tokens: invalid value 0: need an integer >= 1"),
        (["--batch-size", "0"], "argument --batch-size: invalid value 0: need an integer >= 1"),
        (["--tensor-parallel-size", "0"], "argument --tensor-parallel-size: invalid value 0: need an integer >= 1"),
        (["--gpu-memory-utilization", "0"], "argument --gpu-memory-utilization: invalid value 0.0: need a fraction 0 < u <= 1"),
        (["--gpu-memory-utilization", "1.5"], "argument --gpu-memory-utilization: invalid value 1.5: need a fraction 0 < u"),
        (["--datasets", "gsm8k"], "argument --datasets: unknown dataset 'gsm8k'"),
        (["--datasets", f"{MATH},"], "argument --datasets: invalid value '" + MATH + ",': an empty entry"),
        (["--datasets", f"{MATH},{MATH}"], "argument --datasets: invalid value '" + f"{MATH},{MATH}': dataset name 'math' appears twice"),
        (["--datasets", f"={PAPER_DATA / 'math_test.parquet'}"], "argument --datasets: invalid value '=" + str(PAPER_DATA)),
        (["--datasets", "math=/no/such.parquet"], "argument --datasets: dataset file /no/such.parquet does not exist"),
        (["--datasets", f"math={PAPER_DATA}"], f"argument --datasets: {PAPER_DATA} is not a file"),
        (["--template", "mistral"], "argument --template: unknown template 'mistral'"),
        (["--model", "/no/such/model"], "argument --model: '/no/such/model': no such local path"),
        (["--model", "./no_such_model"], "argument --model: './no_such_model': no such local path"),
        (["--model", "no/such/model"], "argument --model: 'no/such/model': no such local path"),
        (["--model", "~/no/such/model"], "/no/such/model': no such local path"),
    ],
)  # fmt: skip
def test_a_bad_value_is_a_usage_error_naming_it_and_writes_nothing(tiny_model, tmp_path, capsys, flags, message):
    out = tmp_path / "x"
    args = ["--model", str(tiny_model), "--datasets", MATH, "--n", "4", "--out", str(out)]
    assert message in usage_error(args + flags, capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    "content,message",
    [("", "has no rows"), (json.dumps({"problem": "1+1?"}) + "\n", "row 0: no answer"), ("{", "Expecting")],
)
def test_a_dataset_file_that_cannot_be_used_is_a_usage_error_before_anything_is_written(
    tiny_model, tmp_path, capsys, content, message
):
    bad = tmp_path / "mine.jsonl"
    bad.write_text(content)
    out = tmp_path / "x"
    err = usage_error(
        ["--model", str(tiny_model), "--datasets", f"{MATH},mine={bad}", "--n", "2", "--out", str(out)], capsys
    )
    assert "argument --datasets" in err and message in err
    assert not out.exists()


def test_auto_picks_vllm_where_cuda_is_and_says_when_vllm_is_missing(tmp_path, capsys, monkeypatch):
    import torch

    from openrlhf_nsr import generation

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(generation, "vllm_installed", lambda: False)
    err = usage_error(["--model", "m", "--datasets", MATH, "--out", str(tmp_path / "out")], capsys)
    assert "argument --backend: auto chose vllm (CUDA is available), but vLLM is not installed" in err
    assert "pip install 'openrlhf[vllm]==" in err and not (tmp_path / "out").exists()


def test_out_must_be_a_folder(tiny_model, tmp_path, capsys):
    args = ["--model", str(tiny_model), "--datasets", MATH, "--n", "2"]
    out = tmp_path / "a_file"
    out.write_text("mine")
    assert f"argument --out: {out} is an existing file" in usage_error(args + ["--out", str(out)], capsys)
    assert f"{out} is a file" in usage_error(args + ["--out", str(out / "sub")], capsys)
    assert out.read_text() == "mine"


def test_a_failed_start_does_not_block_the_corrected_command(tiny_model, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--n", "2", "--max-tokens", "4", "--max-problems", "1", "--out", str(out)]
    usage_error(["--model", str(tiny_model), "--datasets", "math=/no/such.parquet", *args], capsys)
    assert not out.exists()
    not_a_model = tmp_path / "empty_dir"
    not_a_model.mkdir()
    err = usage_error(["--model", str(not_a_model), "--datasets", MATH, "--backend", "hf", *args], capsys)
    assert "argument --model: cannot load" in err and not out.exists()  # the backend could not load it
    # corrected: a real model and file; --ks in any order, duplicates dropped
    assert evaluation.main(["--model", str(tiny_model), "--datasets", MATH, "--ks", "2,1,1", *args]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["datasets"]["math"]["num_problems"] == 1 and list(metrics["datasets"]["math"]["pass_at_k"]) == [
        "1",
        "2",
    ]
    assert json.loads((out / "config.json").read_text())["model"] == str(tiny_model)


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


def fake_run(folder, pass_at_k):
    """An evaluation's --out as compare reads it: metrics.json in compute_metrics' format, written by hand."""
    folder.mkdir(parents=True)
    config = {"model": "m", "template": "qwen", "n": 4, "temperature": 0.6, "top_p": 0.95, "top_k": -1,
              "max_tokens": 8, "seed": 0, "backend": "hf", "datasets": ["math"], "label": "auto", "max_problems": None}  # fmt: skip
    dataset = {"num_problems": 2, "n": 4, "pass_at_k": pass_at_k, "entropy": None, "missing_answers": 0,
               "grading_timeouts": 0, "truncated": 0, "generation": {}}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps({"config": config, "datasets": {"math": dataset}}))
    return folder


def test_compare_refuses_bad_arguments_with_the_reason(tmp_path, capsys):
    base = str(fake_run(tmp_path / "base", {"1": 0.5, "2": 0.75, "4": 1.0}))
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text("{")
    (tmp_path / "a_file").write_text("")
    plot = ["--out", str(tmp_path / "plot.png")]
    cases = [
        ([str(tmp_path / "empty")], "argument RUN_DIR: " + str(tmp_path / "empty") + " has no metrics.json"),
        ([str(tmp_path / "missing")], f"argument RUN_DIR: {tmp_path / 'missing'} does not exist"),
        ([str(tmp_path / "a_file")], f"argument RUN_DIR: {tmp_path / 'a_file'} is not a folder"),
        ([str(tmp_path / "broken")], "metrics.json is not the metrics.json of an evaluation"),
        ([base, "--labels", "a,b"], "argument --labels: 2 labels ('a,b') for 1 run folder(s)"),
        ([base, base, "--labels", "a"], "argument --labels: 1 labels ('a') for 2 run folder(s)"),
        ([base, base], "the label(s) base name more than one run (folder names): give --labels"),
        ([base, base, "--labels", "x,x"], "argument --labels: the label(s) x name more than one run"),
        (
            [base, "--paper", "llama"],
            "argument --paper: invalid value 'llama': choose one of qwen2.5-math-7b, qwen3-4b",
        ),
        (
            [base, "--paper", "qwen3-4b", "--paper-file", str(tmp_path / "no.csv")],
            "the paper's reference numbers are missing",
        ),
        ([base, "--out", str(tmp_path / "plot.txt")], "argument --out: invalid value"),
        ([base, "--out", str(tmp_path / "no" / "plot.png")], "argument --out: the folder of"),
    ]
    for argv, message in cases:
        extra = [] if "--out" in argv else plot
        assert message in usage_error(["compare", *argv, *extra], capsys), argv
    assert not (tmp_path / "plot.png").exists()
    assert evaluation.main(["compare", base, base, "--labels", "base,nsr", "--paper", "qwen2.5-math-7b", *plot]) == 0
    table = capsys.readouterr().out
    assert "base - paper base" in table and "-13.2" in table  # our 50.0% pass@1 on MATH vs the paper's 63.2


def test_the_paper_reference_file_holds_table_1_and_figure_3():
    assert evaluation.PAPER_FILE == Path(evaluation.__file__).resolve().parent / "paper_passk.csv"  # package data
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


@pytest.mark.parametrize(
    "script,paper", [("reproduce_table1.sh", "qwen2.5-math-7b"), ("reproduce_figure3.sh", "qwen3-4b")]
)
def test_reproduction_scripts_issue_valid_eval_commands(script, paper, tmp_path):
    import shlex
    import subprocess

    from conftest import REPO

    root = tmp_path / "ckpts"
    for run in ("grpo", "ppo", "psr", "nsr", "w_reinforce"):  # every run trained: none skipped
        (root / paper / run / "final").mkdir(parents=True)
    env = {"PATH": "/usr/bin:/bin", "DRY_RUN": "1", "OUT_DIR": str(tmp_path / "runs"), "CHECKPOINT_ROOT": str(root)}
    out = subprocess.run(
        ["bash", str(REPO / "benchmarks" / script)], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "skip" not in out.stdout + out.stderr
    commands = [shlex.split(line) for line in out.stdout.splitlines()]
    evals = [c[c.index("-m") + 2 :] for c in commands if c[c.index("-m") + 2] != "compare"]
    assert len(evals) == {"qwen2.5-math-7b": 6, "qwen3-4b": 5}[paper]
    for argv in evals:  # every flag is one the harness accepts, and the protocol is the paper's
        args = evaluation.run_parser().parse_args(argv)
        assert args.backend == "vllm" and args.datasets == "math,aime2025,amc23"
        assert (args.n, args.temperature, args.top_p) == (
            (256, 0.6, 0.95) if paper == "qwen2.5-math-7b" else (64, 0.7, 0.8)
        )
    assert commands[-1][commands[-1].index("--paper") + 1] == paper


def test_the_compare_plot_tells_runs_and_the_papers_curves_apart():
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    curve = {"1": 0.5, "8": 0.8}
    runs = {name: {"datasets": {"MATH": {"pass_at_k": curve}, "AMC23": {"pass_at_k": curve}}}
            for name in ("nsr", "w_reinforce", "my-run")}  # fmt: skip
    paper = {"nsr": {"MATH": curve}, "w-reinforce": {"MATH": curve}, "psr": {"MATH": curve}, "grpo": {"MATH": curve}}
    fig = evaluation.passk_figure(runs, paper)
    for ax in fig.axes:
        assert ax.get_legend() is not None, ax.get_title()  # every panel
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    look = {label: (to_hex(line.get_color()), line.get_linestyle()) for label, line in lines.items()}
    assert len(set(look.values())) == len(look)  # no two curves look alike
    assert look["nsr"][0] == look["paper nsr"][0] and look["nsr"][1] != look["paper nsr"][1]  # one family
    assert look["w_reinforce"][0] == look["paper w-reinforce"][0]
    assert len({look[k][0] for k in ("nsr", "w_reinforce", "paper psr", "paper grpo")}) == 4  # distinct colours
    plt.close(fig)
