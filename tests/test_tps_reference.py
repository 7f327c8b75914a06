"""stn's thin-plate spline is the textbook one (SciPy's), and not kornia's: the FAQ's claims, held.

The comparison itself is ``docs/scripts/tps_reference.py`` (``python docs/scripts/tps_reference.py``
prints the numbers the FAQ quotes); this test runs it on a few seeded trials.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from stn import transforms as T

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "scripts" / "tps_reference.py"


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("tps_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("grid_size", [4, (3, 5), 2])
def test_tps_equals_scipy_rbf_interpolator_at_random_points(reference, grid_size):
    pytest.importorskip("scipy")
    family = T.get("tps", grid_size=grid_size)
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        params = reference.offsets(family.num_params, 0.15, generator)
        points = reference.random_points(300, generator)
        assert reference.scipy_difference(family, params, points) < 1e-8


def test_kornia_agrees_at_the_control_points_only(reference):
    pytest.importorskip("kornia")
    family = T.get("tps")
    generator = torch.Generator().manual_seed(2)
    between = []
    for _ in range(5):
        params = reference.offsets(family.num_params, 0.15, generator)
        points = reference.random_points(300, generator)
        at_controls, elsewhere = reference.kornia_differences(family, params, points)
        assert at_controls < 1e-8  # the same pairs are interpolated
        between.append(elsewhere)
    assert min(between) > 0.05  # kernels centred at c + d, not at c: another function in between


def test_a_zero_offset_spline_is_the_identity_in_both(reference):
    pytest.importorskip("kornia")
    family = T.get("tps")
    points = reference.random_points(100, torch.Generator().manual_seed(3))
    _, elsewhere = reference.kornia_differences(family, torch.zeros(1, family.num_params, dtype=torch.float64), points)
    assert elsewhere < 1e-8
