"""Plots of the transformer statistics over epochs and histograms of one epoch."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from stn import transforms as T
from stn.engine.statistics import family_keys, transformer_stats
from stn.viz.statistics import histogram_figure, histogram_panels, plot_histograms, plot_statistics


def rows(prefix="stn", family="affine", epochs=3):
    out = []
    for epoch in range(1, epochs + 1):
        params = T.get(family).identity(8, dtype=torch.float64) + 0.05 * epoch * torch.randn(
            8, T.get(family).num_params
        )
        stats = transformer_stats(family, params, (8, 8), (8, 8), prefix=prefix)
        out.append({"epoch": epoch, "test_accuracy": 50.0 + epoch, **stats})
    return out


def drawn(path, size=None):
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        if size:
            assert picture.size == size
        return len(picture.convert("RGB").getcolors(1 << 20))


def test_statistics_plot(tmp_path):
    path = plot_statistics(rows(), tmp_path / "figures" / "statistics.png", title="run")
    assert drawn(path) > 50
    with Image.open(path) as picture:
        wide, high = picture.size
    assert wide > high  # two rows of three panels: scale ... pinned (the TPS panel has no data)


def test_statistics_plot_with_tps_and_parallel(tmp_path):
    both = [{**a, **b} for a, b in zip(rows("stn1"), rows("stn2", "tps"), strict=True)]
    assert drawn(plot_statistics(both, tmp_path / "s.png")) > 50
    only_tps = plot_statistics(rows("stn", "tps"), tmp_path / "t.png")
    with Image.open(only_tps) as picture:  # distance, outside, TPS: one row
        assert picture.size[0] > 2 * picture.size[1]


def test_statistics_plot_needs_statistics(tmp_path):
    with pytest.raises(ValueError, match="no transformer statistics"):
        plot_statistics([{"epoch": 1, "test_accuracy": 3.0}], tmp_path / "x.png")


@pytest.mark.parametrize("family", [*T.names(), "field-diffeomorphic"])
def test_histograms_of_every_family(tmp_path, family):
    transform = T.get("field", diffeomorphic=True) if family == "field-diffeomorphic" else T.get(family)
    params = transform.identity(64) + 0.1 * torch.randn(64, transform.num_params)
    path = plot_histograms(transform, params, tmp_path / "hist.png", title="last epoch")
    assert drawn(path) > 50
    panels = histogram_panels(transform)
    with Image.open(path) as picture:  # one panel of about 420 pixels per histogram
        assert picture.size[0] == pytest.approx(420 * len(panels), abs=10)
    keys = [key for key, _, _ in panels]
    assert keys[-1] == "outside" and set(keys[:-1]) <= set(family_keys(transform))
    assert len(keys) == (2 if family == "polar" else 3)  # the family's one or two, and the share outside


def test_statistics_plot_of_field_and_polar_runs(tmp_path):
    field = rows("stn", "field")
    assert any(key.endswith("folding_share") for key in field[0])
    with Image.open(plot_statistics(field, tmp_path / "f.png")) as picture:  # distance, outside, shares, field
        assert picture.size[1] > picture.size[0] / 2
    polar = rows("stn", "polar")
    with Image.open(plot_statistics(polar, tmp_path / "p.png")) as picture:  # distance, outside, origin: one row
        assert picture.size[0] > 2 * picture.size[1]


def test_histograms_of_parallel_transformers_and_of_the_identity(tmp_path):
    params = T.get("attention").identity(10).view(10, 1, 3).repeat(1, 2, 1)
    params[:, 1, 0] = 2.0  # the second zooms out by 2
    assert drawn(plot_histograms("attention", params, tmp_path / "p.png", (16, 16))) > 50
    with pytest.raises(ValueError, match="params"):
        plot_histograms("affine", torch.zeros(0, 6), tmp_path / "x.png")


def test_histograms_of_shares_start_at_zero():
    """The identity reads nothing outside: the share panel runs from 0%, not from matplotlib's -50%."""
    figure = histogram_figure("affine", T.get("affine").identity(8))
    outside = figure.axes[-1]
    assert outside.get_xlabel() == histogram_panels("affine")[-1][1]
    left, right = outside.get_xlim()
    assert left == 0 and 0 < right <= 1
    params = T.get("affine").identity(8)
    params[:, 0] = params[:, 4] = 4.0  # zoomed out by 4: about 94% of every grid outside
    assert histogram_figure("affine", params).axes[-1].get_xlim()[1] > 0.9
