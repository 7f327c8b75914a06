"""The TensorBoard logger writes what tensorboard's own reader reads back."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from stn.engine import tensorboard as tb

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2


def read(log_dir) -> EventAccumulator:
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0, "histograms": 0})
    events.Reload()
    return events


def test_logger_writes_scalars_images_histograms_and_hparams(tmp_path):
    with tb.TensorBoardLogger(tmp_path) as log:
        for epoch in (1, 2):
            log.scalars(
                epoch,
                {
                    "epoch": epoch,
                    "train_loss": 2.0 / epoch,
                    "test_loss": 1.5,
                    "test_accuracy": 40.0 + epoch,
                    "lr": 0.01,
                    "stn_scale_mean": 1.1,
                    "stn2_outside_share": 0.2,
                    "note": "skipped",
                },
            )
            log.image("before_after", epoch, Image.new("RGB", (20, 10), (255, 0, 0)))
            log.image("regions", epoch, torch.zeros(6, 8, dtype=torch.uint8))
            log.params(epoch, torch.randn(16, 6))
        log.params(2, torch.randn(16, 2, 3), prefix="stn")
        log.hparams(
            {"lr": 0.01, "model": "seed-cifar", "tensorboard": None, "nesterov": False},
            {"test_accuracy": 42.0, "test_loss": float("nan")},
        )
    events = read(tmp_path)
    tags = events.Tags()
    assert {"loss/train", "loss/test", "accuracy/test", "lr", "stn/scale_mean", "stn2/outside_share"} <= set(
        tags["scalars"]
    )
    assert "note" not in tags["scalars"] and "epoch" not in tags["scalars"]
    assert [(e.step, e.value) for e in events.Scalars("loss/train")] == [(1, 2.0), (2, 1.0)]
    assert events.Scalars("final/accuracy/test")[0].value == 42.0
    assert "final/loss/test" not in tags["scalars"]
    assert {"before_after", "regions"} <= set(tags["images"])
    image = events.Images("before_after")[-1]
    assert (image.step, image.width, image.height) == (2, 20, 10)
    assert {"theta/stn/0", "theta/stn/5", "theta/stn1/2", "theta/stn2/0"} <= set(tags["histograms"])
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["lr"].number_value == 0.01 and hparams["model"].string_value == "seed-cifar"
    assert hparams["tensorboard"].string_value == "None"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert [m.name.tag for m in experiment.metric_infos] == ["final/accuracy/test"]


def test_bad_images_and_params(tmp_path):
    with tb.TensorBoardLogger(tmp_path) as log:
        with pytest.raises(ValueError, match="uint8"):
            log.image("x", 1, np.zeros((4, 4, 3), dtype=np.float32))
        with pytest.raises(ValueError, match="params"):
            log.params(1, torch.zeros(4))
        with pytest.raises(ValueError, match="names"):
            log.params(1, torch.zeros(4, 2), names=["a"])


def test_tag_for():
    assert tb.tag_for("test_accuracy") == "accuracy/test"
    assert tb.tag_for("stn12_tps_bending") == "stn12/tps_bending"
    assert tb.tag_for("stn_scale_mean") == "stn/scale_mean"
    assert tb.tag_for("custom") == "custom"


def test_missing_package_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    with pytest.raises(tb.TensorBoardUnavailable, match=r"pip install 'torch-stn\[tensorboard\]'") as err:
        tb.TensorBoardLogger(tmp_path)
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)


def test_import_stn_does_not_import_tensorboard():
    code = "import sys, stn, stn.engine, stn.engine.tensorboard; print('tensorboard' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
