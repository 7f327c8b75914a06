"""``stn bench ptn`` and ``stn bench pstn`` at their smoke budgets on fake MNIST: every run trains,
the tables hold every cell with its command, machine, date and precision, and finished runs are
reused; ECE is computed as defined."""

from __future__ import annotations

import json

import pytest
import torch

from stn.cli import main
from stn.experiments import pstn, ptn
from tests.data.test_distorted import fake_mnist
from tests.data.test_rotated_and_subsets import ten_class_mnist


def test_ptn_bench_smoke(tmp_path, monkeypatch, capsys):
    root = fake_mnist(tmp_path / "data", train=300, test=260, monkeypatch=monkeypatch)
    argv = ["bench", "ptn", "--budget", "smoke", "--data-root", root, "--out", tmp_path / "out"]
    argv += ["--runs", tmp_path / "runs", "--variants", "rot", "R", "--threads", "1"]
    assert main([str(a) for a in argv]) == 0
    out = capsys.readouterr().out
    assert out.count("test error") == 6 and "Table:" in out
    table = json.loads((tmp_path / "out" / "table.json").read_text())
    cells = {(r["model"], r["variant"]): r for r in table["results"]}
    assert set(cells) == {(m, v) for m in ("CNN", "ST-CNN Aff", "PTN") for v in ("rot", "R")}
    assert cells["PTN", "R"]["published"] == 0.62 and cells["CNN", "rot"]["published"] is None
    assert table["precision"] == "fp32 (--amp off)" and table["command"].startswith("stn bench ptn")
    assert table["machine"]["cpu_count"] >= 1 and table["date"]
    config = json.loads((tmp_path / "runs" / "rot-ptn-seed1" / "config.json").read_text())
    assert config["model"] == "ptn-cnn" and config["dataset"] == "mnist-rot" and config["amp"] == "off"
    markdown = (tmp_path / "out" / "table.md").read_text()
    assert "| PTN |" in markdown and "/ 0.62" in markdown and "Command: `stn bench ptn" in markdown

    assert main([str(a) for a in argv]) == 0  # finished runs are reused, not trained again
    assert "Train Epoch" not in (tmp_path / "runs" / "r-cnn-seed1" / "train.log").read_text().split("Test set")[-1]


def test_pstn_bench_smoke(tmp_path, monkeypatch, capsys):
    root = ten_class_mnist(tmp_path / "data", train=60, test=20, monkeypatch=monkeypatch)
    path = pstn.run("smoke", tmp_path / "out", tmp_path / "runs", str(root), sizes=[20], seeds=[1], threads=1)
    out = capsys.readouterr().out
    assert out.count("ECE") == 2
    table = json.loads((tmp_path / "out" / "table.json").read_text())
    models = [(r["size"], r["model"]) for r in table["results"]]
    assert models == [(20, "ST-CNN Aff"), (20, "P-STN Aff"), (20, "P-STN Aff, mean warp only")]
    for r in table["results"]:
        assert 0 <= r["error"] <= 100 and r["nll"] > 0 and 0 <= r["ece"] <= 100
    assert table["precision"] == "fp32 (--amp off)" and table["bins"] == 15
    config = json.loads((tmp_path / "runs" / "20-p-stn-aff-seed1" / "config.json").read_text())
    assert config["model"] == "pstn-cnn" and config["model_options"]["kl_anneal_steps"] == 1
    assert config["dataset_options"]["repeat"] == 7  # 20 images, at least 128 a pass
    assert "| 20 | P-STN Aff |" in path.read_text()


def test_ece_by_hand():
    # Four predictions: two 95% confident (one right), two 55% confident (both right).
    probs = torch.tensor([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.45, 0.55]])
    labels = torch.tensor([0, 1, 0, 1])
    got = pstn.calibration(probs.log(), labels)
    # Bin of 0.95: accuracy 0.5, confidence 0.95 -> gap 0.45, weight 1/2; bin of 0.55: gap 0.45, weight 1/2.
    assert got["ece"] == pytest.approx(45.0) and got["error"] == pytest.approx(25.0)
    assert got["confidence"] == pytest.approx(75.0)  # and 75% right: calibrated on the whole, not per bin
    assert got["nll"] == pytest.approx(float(-(probs[[0, 1, 2, 3], [0, 1, 0, 1]]).log().mean()), abs=1e-4)
    assert pstn.calibration(torch.tensor([[0.0, -50.0]]), torch.tensor([0]))["ece"] == pytest.approx(0.0, abs=1e-6)


def test_bad_arguments_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="budget"):
        ptn.run("huge", tmp_path)
    with pytest.raises(ValueError, match="variant"):
        ptn.run("smoke", tmp_path, variants=["X"])
    with pytest.raises(ValueError, match="model"):
        ptn.run("smoke", tmp_path, models=["resnet"])
    with pytest.raises(ValueError, match="sizes"):
        pstn.run("smoke", tmp_path, sizes=[5])
