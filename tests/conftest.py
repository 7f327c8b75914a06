"""Shared fixtures: device and dtype parametrisation (kornia's habit) and an isolated data cache."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

# Property tests draw the same examples on every machine and every run: a failure is reproducible,
# never a matter of luck (set HYPOTHESIS_PROFILE=explore to search afresh).
settings.register_profile("repeatable", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request) -> torch.dtype:
    return request.param


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Each test gets its own tensor cache, and nothing is ever downloaded."""
    monkeypatch.setenv("STN_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("STN_NO_DOWNLOAD", "1")
    torch.manual_seed(0)


def tol(dtype: torch.dtype) -> dict[str, float]:
    """Tolerances for comparing results computed in ``dtype``."""
    return {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-10, "rtol": 1e-10}


def make_bars_folder(root, train: int = 48, test: int = 16, size: int = 28, channels: int = 1, seed: int = 0):
    """An image-folder data set of two easy classes: a horizontal or a vertical bar at a random
    place. Returns ``root`` holding ``train/<class>/*.png`` and ``test/<class>/*.png``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("test", test)):
        for label, name in enumerate(("horizontal", "vertical")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                img = rng.integers(0, 40, (size, size), dtype=np.uint8)
                at = rng.integers(4, size - 8)
                if label == 0:
                    img[at : at + 4, 3:-3] = 255
                else:
                    img[3:-3, at : at + 4] = 255
                array = img if channels == 1 else np.stack([img] * channels, -1)
                Image.fromarray(array).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture
def bars(tmp_path):
    """A tiny two-class grayscale 28x28 image-folder data set."""
    return make_bars_folder(tmp_path / "bars")
