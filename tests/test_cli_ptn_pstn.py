"""End to end through the command line for the polar transformer network and the probabilistic
spatial transformer: train (one tiny epoch) -> evaluate -> inspect -> report -> export (ONNX and
.pt2) -> predict (the run, and each export)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from stn.cli import main
from tests.data.test_distorted import fake_mnist


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_images(folder, count: int = 3):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def whole_pipeline(run_dir, train_args, tmp_path, capsys, what: str) -> None:
    base = ["--epochs", "1", "--batch-size", "16", "--threads", "1", "--amp", "off", "--device", "cpu"]
    code, out, err = run(["train", *train_args, *base, "--out", run_dir, "--no-progress"], capsys)
    assert code == 0, err
    assert "Test set: Average loss: " in out and (run_dir / "report.md").is_file()

    code, out, err = run(["evaluate", run_dir], capsys)
    assert code == 0 and out.splitlines()[1].startswith("Test set: Average loss: "), err
    recorded = json.loads((run_dir / "summary.json").read_text())["final_accuracy"]
    assert f"({recorded:.0f}%)" in out.splitlines()[1]  # the accuracy metrics.csv recorded

    code, out, err = run(["inspect", run_dir], capsys)
    assert code == 0 and what in out, err

    code, out, err = run(["report", run_dir, "--out", tmp_path / "report"], capsys)
    assert code == 0, err
    report = (tmp_path / "report" / "report.md").read_text()
    assert "What the transformer does" in report and "regions.png" in report

    images = write_images(tmp_path / "images")
    for fmt in ("onnx", "pt2"):
        code, out, err = run(["export", run_dir, "--format", fmt], capsys)
        assert code == 0, err
        assert "max |difference|" in out and float(out.split("max |difference| ")[1].split()[0]) < 1e-4
        code, out, err = run(["predict", run_dir / f"model.{fmt}", images, "--top-k", "1"], capsys)
        assert code == 0 and "3 images" in out, err
    code, out, err = run(
        ["predict", run_dir, images, "--out", tmp_path / "pred", "--boxes", "--save-transformed"], capsys
    )
    assert code == 0, err
    assert len(json.loads((tmp_path / "pred" / "predictions.json").read_text())["predictions"]) == 3


def test_polar_transformer_network_end_to_end(tmp_path, monkeypatch, capsys):
    root = fake_mnist(tmp_path / "data", train=40, test=20, monkeypatch=monkeypatch)
    train_args = [
        "--recipe",
        "ptn",
        "--data-root",
        root,
        "--dataset-option",
        "train_size=32",
        "--dataset-option",
        "test_size=16",
        "--model-option",
        "channels=[4,4]",
        "--model-option",
        "strides=[1,2]",
    ]
    whole_pipeline(tmp_path / "run", train_args, tmp_path, capsys, "origin")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"] == "ptn-cnn" and config["dataset"] == "mnist-rot" and config["transform"] == "polar"


def test_probabilistic_spatial_transformer_end_to_end(bars, tmp_path, capsys):
    train_args = [
        "--model",
        "pstn-cnn",
        "--dataset",
        "folder",
        "--data-root",
        bars,
        "--model-option",
        "samples=3",
        "--model-option",
        "kl_anneal_steps=4",
    ]
    whole_pipeline(tmp_path / "run", train_args, tmp_path, capsys, "σ0")
    assert (tmp_path / "report" / "figures" / "samples.png").is_file()
    assert "samples.png" in (tmp_path / "report" / "report.md").read_text()


def test_a_ptn_with_another_transform_is_one_line(bars, capsys, tmp_path):
    argv = ["train", "--model", "ptn-cnn", "--dataset", "folder", "--data-root", bars, "--out", tmp_path / "x"]
    code, _, err = run(argv, capsys)
    assert code == 2 and "transform must be 'polar'" in err and "--recipe ptn" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


@pytest.mark.parametrize("bench", ["ptn", "pstn"])
def test_bench_help(bench, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", bench, "--help"])
    assert exit_.value.code == 0 and f"usage: stn bench {bench}" in capsys.readouterr().out
