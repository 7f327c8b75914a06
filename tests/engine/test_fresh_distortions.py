"""``--fresh-distortions``: distorted MNIST whose training images are distorted anew every batch,
on the device, from the run's generator; the test set stays the fixed, seeded one."""

from __future__ import annotations

import json

import pytest
import torch

from stn import data
from stn.cli import main
from stn.data import distorted
from stn.engine import Run, TrainConfig, from_recipe, train
from stn.engine import checkpoint as ckpt
from stn.engine.device import DeviceData
from tests.data.test_distorted import fake_mnist


@pytest.fixture
def mnist_root(tmp_path, monkeypatch):
    return fake_mnist(tmp_path / "data", train=24, test=8, monkeypatch=monkeypatch)


def config(root, fresh: bool = False, **overrides) -> TrainConfig:
    values = dict(data_root=str(root), dataset="mnist-rts", threads=1, batch_size=8, epochs=2, snapshot_images=2)
    values.update(device="cpu", amp="off", dataset_options=dict(fresh_distortions=True) if fresh else {})
    return from_recipe("paper-smoke", **{**values, **overrides})


def load(cfg: TrainConfig) -> data.Dataset:
    return data.load(cfg.dataset, cfg.data_root, **cfg.dataset_options)


def epoch_keys(device_data: DeviceData, generator: torch.Generator) -> list[float]:
    """One key per training image of an epoch, sorted: equal for the same images in any order."""
    weights = torch.rand((1, 42, 42), generator=torch.Generator().manual_seed(0))
    batches = device_data.train_batches(5, generator)
    keys = [(images.double().cpu() * weights).sum((1, 2, 3)) for images, _ in batches]
    return sorted(torch.cat(keys).tolist())


def test_fresh_data_set_keeps_the_fixed_one_and_adds_the_undistorted_images(mnist_root):
    fixed = data.load("mnist-rts", mnist_root, seed=3)
    fresh = data.load("mnist-rts", mnist_root, seed=3, fresh_distortions=True)
    assert fixed.draw_train is None and fresh.draw_train is not None
    assert torch.equal(fresh.draw_train.sources, data.load("mnist", mnist_root).train_images)
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(fresh, name), getattr(fixed, name))
    assert fresh.mean == fixed.mean and fresh.input_shape == (1, 42, 42)
    with pytest.raises(ValueError, match="distorted MNIST"):
        distorted.fresh(data.load("mnist", mnist_root), mnist_root)


def test_fresh_distortions_change_training_images_every_epoch_but_not_the_test_set(mnist_root, device):
    fixed = load(config(mnist_root))
    fresh = load(config(mnist_root, fresh=True))
    generator = torch.Generator(device=device).manual_seed(1)  # the run's generator is on its device
    still, moving = DeviceData(fixed, device), DeviceData(fresh, device)
    assert epoch_keys(still, generator) == epoch_keys(still, generator)
    first, second = epoch_keys(moving, generator), epoch_keys(moving, generator)
    assert first != second and first != epoch_keys(still, generator)
    assert torch.equal(moving.test_images, still.test_images)
    # Labels follow their images: only the digits (label 1) have ink; every batch has the test shape.
    for images, labels in moving.train_batches(5, generator):
        assert images.shape[1:] == (1, 42, 42)
        ink = (images > images.min()).flatten(1).any(1)
        assert torch.equal(ink, labels == 1)


def test_fresh_distortions_are_an_option_of_the_distorted_data_sets_only(mnist_root):
    with pytest.raises(ValueError, match="data set 'mnist' does not take fresh_distortions"):
        data.load("mnist", mnist_root, fresh_distortions=True)
    with pytest.raises(ValueError, match="fresh_distortions must be true or false"):
        data.load("mnist-rts", mnist_root, fresh_distortions="yes")


def test_resumed_fresh_run_equals_an_uninterrupted_one(mnist_root, tmp_path):
    whole = train(config(mnist_root, fresh=True), tmp_path / "whole", progress=False)
    train(config(mnist_root, fresh=True, epochs=1), tmp_path / "split", progress=False)
    split = train(config(mnist_root, fresh=True), tmp_path / "split", resume=True, progress=False)
    assert split["final_accuracy"] == whole["final_accuracy"]
    a, b = ckpt.load(tmp_path / "whole" / "last.pt"), ckpt.load(tmp_path / "split" / "last.pt")
    for key in a["state_dict"]:
        torch.testing.assert_close(b["state_dict"][key], a["state_dict"][key], rtol=0, atol=0)
    # ... and differs from a run on the fixed images.
    train(config(mnist_root), tmp_path / "fixed", progress=False)
    c = ckpt.load(tmp_path / "fixed" / "last.pt")
    assert any(not torch.equal(a["state_dict"][key], c["state_dict"][key]) for key in a["state_dict"])


def test_cli_flag_reaches_the_config(mnist_root, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--model", "paper-cnn", "--dataset", "mnist-r", "--data-root", str(mnist_root), "--epochs", "1"]
    assert main([*args, "--threads", "1", "--batch-size", "8", "--fresh-distortions", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["dataset_options"] == {"fresh_distortions": True}
    rebuilt = Run.open(out).dataset()  # what the run trained on: drawn anew, from the undistorted digits
    assert rebuilt.draw_train is not None and len(rebuilt.draw_train) == len(rebuilt.train_labels)
