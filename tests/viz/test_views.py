"""What a transformer did to a batch: from a model, and from each epoch of snapshots.pt."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stn import transforms as T
from stn.layers import SpatialTransformer
from stn.observe import first_transformer, observe
from stn.viz.views import TransformerView, load_snapshots, snapshot_views
from tests.viz.conftest import FeatureMapNet, ParallelNet

MEAN, STD = (0.2,), (0.3,)


def test_an_identity_transformer_gives_back_the_images():
    localization = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten())
    model = nn.Sequential(SpatialTransformer(localization, "affine", in_features=16))
    images = torch.randint(0, 256, (5, 1, 12, 12), dtype=torch.uint8)
    view = observe(model.train(), images, MEAN, STD)
    assert model.training  # left as it was
    assert view.params.shape == (5, 1, 6) and view.k == 1
    torch.testing.assert_close(view.params[:, 0], T.get("affine").identity(5))
    assert view.outputs.shape == (5, 1, 1, 12, 12) and view.outputs.dtype == torch.uint8
    assert (view.outputs[:, 0].int() - images.int()).abs().max() <= 1


def test_parallel_transformers_give_k_parameter_sets_and_outputs():
    images = torch.randint(0, 256, (3, 3, 20, 20), dtype=torch.uint8)
    view = observe(ParallelNet((3, 20, 20), 2), images, (0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
    assert view.k == 2 and view.params.shape == (3, 2, 3)
    assert view.outputs.shape == (3, 2, 3, 14, 14)
    assert isinstance(view.transform, T.Attention)


def test_a_feature_map_transformer_has_no_pictures():
    view = observe(FeatureMapNet((1, 12, 12), 2), torch.zeros(2, 1, 12, 12, dtype=torch.uint8), MEAN, STD)
    assert view.outputs is None and view.params.shape == (2, 1, 6)


def test_a_model_without_a_transformer_has_no_view():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    assert first_transformer(model) is None
    assert observe(model, torch.zeros(1, 1, 4, 4, dtype=torch.uint8), MEAN, STD) is None


def snapshots(epochs: int = 3, outputs: bool = True, transform: T.Transform | None = None) -> dict:
    """A ``snapshots.pt`` dict as the engine writes it (tuples of options saved as lists)."""
    transform = transform or T.get("attention")
    images = torch.randint(0, 256, (4, 1, 10, 10), dtype=torch.uint8)
    params = [transform.identity(4) + 0.05 * e for e in range(epochs)]
    options = {k: list(v) if isinstance(v, tuple) else v for k, v in transform.options.items()}
    return dict(
        images=images,
        labels=torch.arange(4),
        classes=["a", "b", "c", "d"],
        mean=[0.5],
        std=[0.25],
        transform=transform.name,
        transform_options=options,
        epochs=list(range(1, epochs + 1)),
        outputs=[images.clone() if outputs else torch.empty(0, dtype=torch.uint8) for _ in range(epochs)],
        params=params,
    )


def test_snapshot_views_rebuild_the_transform_and_each_epoch():
    tps = T.get("tps", grid_size=(3, 5), max_offset=0.5)
    views = snapshot_views(snapshots(4, transform=tps))
    assert [epoch for epoch, _ in views] == [1, 2, 3, 4]
    _, view = views[2]
    assert view.transform.options == tps.options
    assert view.outputs.shape == (4, 1, 1, 10, 10) and view.params.shape == (4, 1, tps.num_params)


def test_snapshots_of_a_feature_map_transformer_have_no_outputs():
    assert all(view.outputs is None for _, view in snapshot_views(snapshots(2, outputs=False)))


def test_load_snapshots_names_a_bad_file(tmp_path):
    torch.save({"images": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a snapshots file"):
        load_snapshots(tmp_path / "foreign.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable snapshots file"):
        load_snapshots(tmp_path / "junk.pt")


def test_a_view_checks_its_shapes():
    with pytest.raises(ValueError, match="params"):
        TransformerView(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), T.get("affine"), torch.zeros(3, 6))
