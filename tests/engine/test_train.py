"""The training engine on a tiny data set: it learns, logs in the seed's format, checkpoints
atomically and resumes exactly."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from stn.engine import RunError, TrainConfig, from_recipe, load_model, train
from stn.engine import checkpoint as ckpt
from stn.engine import log as seed_log
from stn.engine import run as run_format


def tiny_config(root, **overrides) -> TrainConfig:
    values = dict(
        model="tutorial-mnist",
        dataset="folder",
        data_root=str(root),
        epochs=3,
        batch_size=16,
        test_batch_size=10,
        log_interval=2,
        optimizer="adam",  # SGD with momentum 0.9 at lr 0.05 collapses on some CPUs' float paths
        lr=3e-3,
        threads=1,
        snapshot_images=4,
        device="cpu",
        amp="off",
    )
    return from_recipe("seed", **{**values, **overrides})


def test_log_lines_are_the_seeds():
    line = seed_log.train_line(2, 32000, 50000, 500, 782, 1.923332)
    assert line == "Train Epoch: 2 [32000/50000 (64%)]\tLoss: 1.923332"
    assert seed_log.test_line(1.02204, 6586, 10000) == "Test set: Average loss: 1.0220, Accuracy: 6586/10000 (66%)"


def test_seed_recipe_defaults():
    cfg = from_recipe("seed")
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.batch_size, cfg.test_batch_size, cfg.log_interval) == (
        "sgd",
        0.01,
        0.0,
        64,
        1000,
        500,
    )
    assert (cfg.schedule, cfg.augment, cfg.label_smoothing, cfg.weight_decay) == ("constant", "none", 0.0, 0.0)


def test_short_run_learns_and_writes_its_run_directory(bars, tmp_path):
    run = tmp_path / "run"
    summary = train(tiny_config(bars, epochs=4), run)
    rows = list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert list(rows[0])[:5] == ["epoch", "train_loss", "test_loss", "test_accuracy", "seconds"]
    assert "stn_scale_mean" in rows[0] and "stn_outside_share" in rows[0]  # the transformer's statistics
    # Chance is a loss of ln 2 = 0.69 and 50%; seeds 1-3 reach 0.06-0.11 and 100% on every float path tried.
    assert float(rows[-1]["train_loss"]) < 0.3
    assert summary["best_accuracy"] >= 90.0
    logged = (run / "train.log").read_text().splitlines()
    lines = [line for line in logged if line.startswith(("Train Epoch", "Test set"))]
    assert any(line.startswith("precision: ") for line in logged)  # what amp chose, and why
    assert lines[0].startswith("Train Epoch: 1 [0/96 (0%)]\tLoss: ")
    assert sum(line.startswith("Test set: Average loss: ") for line in lines) == 4
    config = json.loads((run / "config.json").read_text())
    assert config.pop("format") == run_format.FORMAT and TrainConfig.from_dict(config).to_dict() == config
    for name in ("last.pt", "best.pt"):
        payload = torch.load(run / name, weights_only=True)  # plain tensors and numbers only
        assert payload["format"] == ckpt.FORMAT and payload["model"] == "tutorial-mnist"
    model = ckpt.restore_model(ckpt.load(run / "best.pt"))
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 2)
    snapshots = torch.load(run / "snapshots.pt", weights_only=True)
    assert snapshots["epochs"] == [1, 2, 3, 4] and snapshots["outputs"][0].shape == (4, 1, 28, 28)


def test_resume_ends_where_an_uninterrupted_run_ends(bars, tmp_path, monkeypatch):
    cfg = tiny_config(bars, epochs=3, augment="crop-flip", schedule="cosine")
    train(cfg, tmp_path / "whole")

    from stn.engine import loop

    calls = {"n": 0}
    real = loop.evaluate

    def evaluate_then_stop(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # in epoch 2, after its training steps: a crash before it is saved
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", evaluate_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(bars, epochs=3, augment="crop-flip", schedule="cosine"), tmp_path / "split")
    assert ckpt.load(tmp_path / "split" / "last.pt")["epoch"] == 1
    monkeypatch.setattr(loop, "evaluate", real)
    train(
        TrainConfig.from_dict(json.loads((tmp_path / "split" / "config.json").read_text())),
        tmp_path / "split",
        resume=True,
    )

    whole, split = ckpt.load(tmp_path / "whole" / "last.pt"), ckpt.load(tmp_path / "split" / "last.pt")
    for key in whole["state_dict"]:
        torch.testing.assert_close(split["state_dict"][key], whole["state_dict"][key], rtol=0, atol=0)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in whole["metrics"]]
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in split["metrics"]] == strip
    assert torch.load(tmp_path / "split" / "snapshots.pt", weights_only=True)["epochs"] == [1, 2, 3]


def test_checkpoint_errors(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ckpt.CheckpointError, match="not a readable checkpoint"):
        ckpt.load(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(ckpt.CheckpointError, match="not an stn checkpoint"):
        ckpt.load(tmp_path / "foreign.pt")
    with pytest.raises(RunError, match="no such run directory or checkpoint"):
        load_model(tmp_path / "missing")
    with pytest.raises(RunError, match="not a run directory"):
        load_model(tmp_path)


def test_atomic_save_leaves_the_old_file_on_failure(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save({"epoch": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        ckpt.save({"epoch": 2, "bad": Unpicklable()}, path)
    assert ckpt.load(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lr": -1.0}, "lr must be a positive"),
        ({"epochs": 0}, "epochs must be"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"momentum": 1.5}, "below 1"),
        ({"nesterov": True}, "nesterov needs"),
    ],
)
def test_bad_config_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        from_recipe("seed", **overrides)
    with pytest.raises(ValueError, match="unknown recipe"):
        from_recipe("slow")
