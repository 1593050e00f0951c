"""The CPU miniature of the paper's experiment (the README's main command)."""

import json

import pytest
import torch

from openrlhf_nsr import mini


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("mini")
    assert mini.main(["--smoke", "--out", str(out)]) == 0
    return out


def test_smoke_run_writes_the_whole_report(smoke):
    results = json.loads((smoke / "results.json").read_text())
    assert set(results["summary"]) == {"base", *mini.RUNS}
    for run, s in results["summary"].items():
        assert list(s["pass_at_k"]) == ["1", "2", "4", "8", "16", "32", "64"]
        values = list(s["pass_at_k"].values())
        assert all(0 <= v <= 1 for v in values) and values == sorted(values)  # pass@k grows with k
        assert s["entropy"] > 0
    history = results["per_seed"]["0"]["nsr"]["history"]
    assert len(history["correct_frac"]) == len(history["entropy"]) == mini.SMOKE["steps"]
    assert [c["claim"][0] for c in results["claims"]] == ["1", "2", "3"]
    report = (smoke / "report.md").read_text()
    assert "| nsr |" in report and "The paper's claims" in report
    for png in ("passk.png", "training.png"):
        assert (smoke / png).read_bytes()[:4] == b"\x89PNG"


def test_the_same_seed_gives_the_same_numbers(smoke, tmp_path):
    mini.main(["--smoke", "--out", str(tmp_path), "--runs", "nsr,psr"])
    again = json.loads((tmp_path / "results.json").read_text())["summary"]
    first = json.loads((smoke / "results.json").read_text())["summary"]
    for run in ("base", "nsr", "psr"):
        assert again[run]["pass_at_k"] == first[run]["pass_at_k"] and again[run]["entropy"] == first[run]["entropy"]


def test_several_seeds_report_mean_and_spread(tmp_path):
    mini.main(["--smoke", "--out", str(tmp_path), "--seeds", "0,1", "--runs", "nsr"])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["seeds"] == [0, 1] and set(results["per_seed"]) == {"0", "1"}
    a, b = (results["per_seed"][s]["nsr"]["pass_at_k"]["64"] for s in ("0", "1"))
    assert results["summary"]["nsr"]["pass_at_k"]["64"] == pytest.approx((a + b) / 2)
    assert "± " in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--steps", "0"], "must be positive: --steps 0"),
        (["--lam", "-1"], "--lam must be >= 0"),
        (["--runs", "nsr,dpo"], "unknown runs ['dpo']"),
        (["--eval-samples", "32"], "must be >= 64"),
        (["--ignored-samples", "keep"], "--ignored-samples must be one of"),
        (["--seeds", "a"], "--seeds must be comma-separated integers"),
    ],
)
def test_invalid_values_are_clear_errors(flags, message, capsys):
    with pytest.raises(SystemExit):
        mini.main(flags)
    assert message in capsys.readouterr().err


def test_advantages_come_from_the_registered_objectives():
    correct = torch.tensor([True, False, True, True, False, False, False, False])
    config = mini.Config()
    adv, counted = mini.advantages_for("nsr", correct, config, 4)
    assert adv.tolist() == [0, -1, 0, 0, -1, -1, -1, -1] and counted.tolist() == (~correct).tolist()
    adv, counted = mini.advantages_for("reinforce", correct, config, 4)
    assert adv.tolist() == [1 if c else -1 for c in correct.tolist()] and counted.all()
    adv, _ = mini.advantages_for("w_reinforce", correct, config, 4)
    assert adv[0].item() == pytest.approx(0.1)
    adv, counted = mini.advantages_for("grpo", correct, config, 4)
    assert adv[4:].tolist() == [0, 0, 0, 0] and adv[0] > 0 > adv[1] and counted.all()
    _, counted = mini.advantages_for("psr", correct, mini.Config(ignored_samples="zero"), 4)
    assert counted.all()


def test_the_surrogate_normalises_by_the_kept_tokens():
    log_probs = torch.zeros(2, 3, requires_grad=True)
    mask = torch.tensor([[1.0, 1, 0], [0, 0, 0]])  # the second sample dropped
    loss = mini.clipped_surrogate(log_probs, torch.zeros(2, 3), torch.tensor([-1.0, -1.0]), mask)
    loss.backward()
    assert loss.item() == pytest.approx(1.0)  # -(ratio 1 x advantage -1), mean over the 2 kept tokens
    assert log_probs.grad.tolist() == [[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]
