"""`stn train --tensorboard` and `stn inspect`: the transformer statistics of a real short run."""

from __future__ import annotations

import csv

import pytest

from stn.cli import main


@pytest.fixture
def tb_run(bars, tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "--model", "tutorial-mnist", "--dataset", "folder", "--data-root", str(bars), "--epochs", "2",
            "--batch-size", "16", "--optimizer", "adam", "--lr", "3e-3", "--threads", "1", "--out", str(run_dir),
            "--no-progress", "--no-report", "--tensorboard"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    return run_dir


def test_tensorboard_events_hold_scalars_images_and_histograms(tb_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb_run / "tensorboard"), size_guidance={"images": 0, "histograms": 0}).Reload()
    tags = events.Tags()
    assert {"loss/train", "loss/test", "accuracy/test", "lr", "stn/scale_mean", "stn/outside_share"} <= set(
        tags["scalars"]
    )
    assert [e.step for e in events.Scalars("accuracy/test")] == [1, 2]
    assert {"transformer/before_after", "transformer/where_it_looks"} <= set(tags["images"])
    assert any(tag.startswith("theta/stn/") for tag in tags["histograms"])


def test_metrics_hold_the_statistics_and_inspect_prints_them(tb_run, capsys):
    rows = list(csv.DictReader((tb_run / "metrics.csv").read_text().splitlines()))
    assert {"stn_scale_mean", "stn_outside_share", "stn_collapse_share"} <= set(rows[0])
    assert main(["inspect", str(tb_run)]) == 0
    out = capsys.readouterr().out
    assert "Transformer statistics from metrics.csv" in out and "scale" in out and "Warnings: none" in out
    assert out.count("\n    1  ") == 1 and out.count("\n    2  ") == 1  # a line per epoch


def test_a_zooming_out_run_is_flagged(tmp_path, capsys):
    """The constructed case, through the same path a run takes: a metrics.csv whose transformer reads
    far outside the image is flagged by `stn inspect` with the options that help."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    head = "epoch,train_loss,test_loss,test_accuracy,seconds,stn_outside_share,stn_outside_samples,stn_scale_mean"
    (run_dir / "metrics.csv").write_text(head + "\n1,1.0,1.0,50.0,1.0,0.3,0.9,1.3\n")
    assert main(["inspect", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "zooming out" in out and "--stn-fill black" in out
