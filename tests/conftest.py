"""Shared fixtures, kornia's way: device, dtype and precision axes chosen on the command line, and
the machine hidden from every test.

A test never reads the machine to decide what it expects. By construction:

* ``--cpu-as`` (default ``plain``) presents the CPU to stn as that kind (``$STN_CPU_AS``, inherited by
  subprocesses), so ``--amp auto`` resolves the same way on every machine; CI runs the engine and
  CLI tests again with ``--cpu-as amd-avx512-bf16`` (auto is bf16 there).
* ``--device`` (default ``cpu``) is the device of the device-parametrised tests; with ``cpu``, CUDA is
  hidden from the whole suite (subprocesses included), so ``device="auto"`` means the CPU.
* An autouse fixture restores process-wide state after every test (threads, cuDNN benchmark,
  deterministic algorithms, the default dtype), so no test depends on the order of the others.
* Tests marked ``slow`` (benchmark scripts, the end-to-end matrix) run with ``--runslow`` (CI does).
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

from stn.engine.precision import CPU_KINDS

# Property tests draw the same examples on every machine and every run: a failure is reproducible,
# never a matter of luck (set HYPOTHESIS_PROFILE=explore to search afresh).
settings.register_profile("repeatable", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# Tolerances for comparing two computations of the same function in each precision (different
# kernels or memory layouts, the same arithmetic): float32 and float64 to a few ulps of the results
# these tests make, bfloat16 (8 bits of mantissa) to about two of its ulps.
TOLERANCE: dict[torch.dtype, dict[str, float]] = {
    torch.float64: {"atol": 1e-10, "rtol": 1e-10},
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
    torch.bfloat16: {"atol": 2e-2, "rtol": 2e-2},
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="device of the device-parametrised tests: cpu, cuda, cuda:N")
    parser.addoption(
        "--cpu-as",
        default="plain",
        choices=[*CPU_KINDS, "machine"],
        help="present the CPU to stn as this kind, so --amp auto resolves as on it (default plain: fp32); "
        "'machine': this machine's own CPU",
    )
    parser.addoption("--runslow", action="store_true", help="also run the tests marked slow")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a slow test (benchmark scripts, the end-to-end matrix); needs --runslow")
    kind = config.getoption("--cpu-as")
    if kind != "machine":
        os.environ["STN_CPU_AS"] = kind
    else:
        os.environ.pop("STN_CPU_AS", None)
    if not config.getoption("--device").startswith("cuda"):
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before anything asks torch about CUDA


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def device(request: pytest.FixtureRequest) -> torch.device:
    """The device under test (``--device``, default the CPU)."""
    return torch.device(request.config.getoption("--device"))


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request) -> torch.dtype:
    return request.param


@pytest.fixture(params=["off", "bf16"])
def amp(request) -> str:
    """The precision of a training or evaluation path: fp32 (``off``) and bf16 autocast, each
    compared with :data:`TOLERANCE` of its own precision."""
    return request.param


def amp_tolerance(amp: str) -> dict[str, float]:
    """Tolerances for two computations under the same ``amp`` setting."""
    return TOLERANCE[torch.bfloat16 if amp == "bf16" else torch.float32]


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Each test gets its own tensor cache, nothing is ever downloaded, and the process-wide state it
    changes (threads, cuDNN benchmark, deterministic algorithms, default dtype) is restored after it."""
    monkeypatch.setenv("STN_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("STN_NO_DOWNLOAD", "1")
    torch.manual_seed(0)
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    benchmark = torch.backends.cudnn.benchmark
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.set_num_threads(threads)
    torch.set_default_dtype(dtype)
    torch.backends.cudnn.benchmark = benchmark
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def tol(dtype: torch.dtype) -> dict[str, float]:
    """Tolerances for comparing results computed in ``dtype``."""
    return TOLERANCE[dtype]


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
