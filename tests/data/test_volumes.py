"""``mnist3d-rts`` (built from a tiny fake MNIST), volumes in ``Dataset`` and the 3-D models."""

from __future__ import annotations

import dataclasses
import io
import math

import pytest
import torch

import stn
from stn import data, models
from stn.data.volumes import extrude, rotate_scale_translate_3d
from stn.normalization import Normalizer

from .test_distorted import fake_mnist


@pytest.fixture
def mnist_root(tmp_path, monkeypatch):
    return fake_mnist(tmp_path / "data", monkeypatch=monkeypatch)


def test_mnist3d_volumes_labels_and_seeds(mnist_root):
    ds = data.load("mnist3d-rts", mnist_root, train_size=20, test_size=8, canvas=16)
    assert ds.train_images.shape == (20, 1, 16, 16, 16) and ds.train_images.dtype == torch.uint8
    assert ds.test_images.shape == (8, 1, 16, 16, 16) and ds.input_shape == (1, 16, 16, 16)
    mnist = data.load("mnist", mnist_root)
    torch.testing.assert_close(ds.train_labels, mnist.train_labels[:20])
    bright = ds.train_labels == 1  # the fake digit 1 is a disk; 0 is empty
    assert (ds.train_images[bright].flatten(1).amax(1) > 100).all()
    assert (ds.train_images[~bright] == 0).all()
    again = data.load("mnist3d-rts", mnist_root, train_size=20, test_size=8, canvas=16, cache=False)
    assert torch.equal(again.train_images, ds.train_images)
    other = data.load("mnist3d-rts", mnist_root, train_size=20, test_size=8, canvas=16, seed=1)
    assert not torch.equal(other.train_images, ds.train_images)
    with pytest.raises(ValueError, match="canvas"):
        data.load("mnist3d-rts", mnist_root, canvas=4)


def test_extruded_digit_is_a_slab_that_the_distortion_moves_in_3d():
    image = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    image[..., 4:24, 4:24] = 255
    slab = extrude(image, thickness=6)
    assert slab.shape == (1, 1, 28, 28, 28)
    depth_profile = slab[0, 0, :, 14, 14]
    assert depth_profile.nonzero().flatten().tolist() == list(range(11, 17))

    def depths(volumes: torch.Tensor) -> list[int]:
        return [int((v[0] > 64).any(-1).any(-1).sum()) for v in volumes]

    batch = image.expand(12, -1, -1, -1)
    flat = rotate_scale_translate_3d(batch, torch.Generator().manual_seed(0), canvas=24, max_degrees=0)
    tilted = rotate_scale_translate_3d(batch, torch.Generator().manual_seed(0), canvas=24)
    # Unrotated the square stays a thin slab; rotated about a random axis it is tilted out of plane.
    assert max(depths(flat)) <= 5 and max(depths(tilted)) > max(depths(flat)) + 3
    assert all(v.sum() > 0 for v in tilted)


def test_normalizer_takes_volumes():
    norm = Normalizer((0.5,), (0.25,))
    x = torch.randint(0, 256, (2, 1, 3, 4, 5), dtype=torch.uint8)
    y = norm(x)
    torch.testing.assert_close(y, (x.float() / 255 - 0.5) / 0.25)
    assert torch.equal(norm.invert(y), x)


@pytest.mark.parametrize("stn_on", [False, True])
def test_volume_mnist_model(stn_on):
    model = models.create("volume-mnist", input_shape=(1, 20, 20, 20), num_classes=3, stn=stn_on)
    x = torch.rand(2, 1, 20, 20, 20)
    out = model(x)
    assert out.shape == (2, 3) and torch.allclose(out.exp().sum(1), torch.ones(2))
    out.sum().backward()
    assert (model.stn is not None) == stn_on
    if stn_on:
        assert model.stn.transform.name == "affine3d"  # "affine", stn train's default, means affine3d here
        model.eval()
        model(x)
        torch.testing.assert_close(model.stn.last_params, model.stn.transform.identity(2))  # starts at the identity


def test_volume_model_options_are_checked():
    with pytest.raises(ValueError, match="volume family"):
        models.create("volume-mnist", transform="tps")
    with pytest.raises(ValueError, match="too small"):
        models.create("volume-mnist", input_shape=(1, 8, 8, 8))
    with pytest.raises(ValueError, match=r"\(C, D, H, W\)"):
        models.create("volume-mnist", input_shape=(1, 24, 24))
    rigid = models.create("volume-mnist", transform="rigid3d")
    assert rigid.stn.transform.num_params == 6


def test_conv_localization3d_feature_count():
    from stn.models.volume import conv_localization3d

    net, features = conv_localization3d((2, 16, 20, 24))
    assert net(torch.rand(1, 2, 16, 20, 24)).numel() == features
    assert math.prod(net(torch.rand(3, 2, 16, 20, 24)).shape[1:]) == features
    assert isinstance(
        stn.SpatialTransformer(net, "rigid3d", in_features=features)(torch.rand(1, 2, 16, 20, 24)), torch.Tensor
    )


def test_stn_train_and_evaluate_run_on_volumes(mnist_root, tmp_path):
    from stn.engine import evaluate_checkpoint, from_recipe, train

    cfg = from_recipe(
        "seed",
        model="volume-mnist",
        dataset="mnist3d-rts",
        data_root=str(mnist_root),
        dataset_options={"train_size": 24, "test_size": 8, "canvas": 16},
        epochs=2,
        batch_size=8,
        test_batch_size=8,
        log_interval=1,
        optimizer="adam",
        lr=1e-3,
        threads=1,
        device="cpu",
        amp="off",
    )
    with open(tmp_path / "log.txt", "w") as log:
        summary = train(cfg, tmp_path / "run", stream=log)
    assert summary["epochs"] == 2 and "Train Epoch: 2" in (tmp_path / "log.txt").read_text()
    assert (tmp_path / "run" / "best.pt").is_file()
    snapshots = torch.load(tmp_path / "run" / "snapshots.pt", weights_only=True)  # volumes are kept as they are
    assert snapshots["epochs"] == [1, 2] and snapshots["transform"] == "affine3d"
    assert tuple(snapshots["images"].shape) == (8, 1, 16, 16, 16) and tuple(snapshots["outputs"][0].shape) == (
        8,
        1,
        16,
        16,
        16,
    )
    assert math.isfinite(summary["transformer"]["stn_scale_mean"])  # the statistics of the last epoch
    result, payload, _ = evaluate_checkpoint(tmp_path / "run", device="cpu")
    assert tuple(payload["model_options"]["input_shape"]) == (1, 16, 16, 16)
    assert result.total == 8 and round(result.accuracy, 2) == summary["best_accuracy"]
    with pytest.raises(ValueError, match="volumes take --augment none"):
        train(dataclasses.replace(cfg, augment="crop-flip"), tmp_path / "augmented", stream=io.StringIO())
