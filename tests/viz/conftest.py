"""Tiny trained runs (made once per session) and test models for the pictures and reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from stn import models
from stn.engine import from_recipe, train
from stn.layers import ParallelSpatialTransformers, SpatialTransformer
from tests.conftest import make_bars_folder


class FeatureMapNet(nn.Module):
    """conv -> spatial transformer on the feature map -> classifier."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, stn: bool = True, transform="affine", **st):
        super().__init__()
        c, _, _ = input_shape
        self.features = nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.ReLU())
        localization = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.stn = SpatialTransformer(localization, transform, in_features=64, **st) if stn else None
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        if self.stn is not None:
            x = self.stn(x)
        return torch.log_softmax(self.head(x), dim=1)


class ParallelNet(nn.Module):
    """Two attention transformers on the image, outputs stacked on channels -> classifier."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, stn: bool = True, transform="attention", **st):
        super().__init__()
        c, _, _ = input_shape
        localization = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.stn = ParallelSpatialTransformers(2, localization, transform, (14, 14), in_features=16 * c, **st)
        self.head = nn.Sequential(nn.Conv2d(2 * c, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return torch.log_softmax(self.fc(self.head(self.stn(x))), dim=1)


for _name, _factory in (("viz-test-featuremap", FeatureMapNet), ("viz-test-parallel", ParallelNet)):
    if _name not in models.list_models():
        models.register(_name, "folder", "a test model of tests/viz")(_factory)

RUNS = {
    "affine": dict(model="tutorial-mnist"),
    "tps": dict(model="tutorial-mnist", transform="tps"),
    "no-stn": dict(model="tutorial-mnist", stn=False),
    "colour": dict(model="seed-cifar", data="colour", epochs=1),
    "featuremap": dict(model="viz-test-featuremap"),
    "parallel": dict(model="viz-test-parallel", transform="attention"),
}
EPOCHS = 3


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Callable[[str], Path]:
    """``trained(name)``: the run directory of the tiny run ``name`` of :data:`RUNS`, trained on
    first use (a few seconds on the CPU) on two-class bar images."""
    root = tmp_path_factory.mktemp("viz-runs")
    done: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in done:
            options = dict(RUNS[name])
            data = options.pop("data", "gray")
            folder = root / f"data-{data}"
            if not folder.exists():
                make_bars_folder(folder, train=24, test=12, **(dict(size=32, channels=3) if data == "colour" else {}))
            config = from_recipe(
                "seed",
                **{
                    "dataset": "folder",
                    "data_root": str(folder),
                    "epochs": EPOCHS,
                    "batch_size": 16,
                    "test_batch_size": 24,
                    "lr": 0.02,
                    "threads": 1,
                    "snapshot_images": 6,
                    **options,
                },
            )
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("STN_CACHE", str(root / "cache"))
                patch.setenv("STN_NO_DOWNLOAD", "1")
                train(config, root / name)
            done[name] = root / name
        return done[name]

    return get
