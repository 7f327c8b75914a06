"""Unsupervised registration: losses and metrics, the synthetic data, the network, training end to
end (volumes, images and congealing to a template) and ``stn register``."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
import torch
import torch.nn.functional as F

from stn import transforms as T
from stn.cli import main
from stn.registration import (
    RegisterConfig,
    RegistrationNet,
    dice_loss,
    dice_score,
    folding,
    load_data,
    local_ncc,
    mse,
    register,
    smoothness,
)
from stn.registration.losses import _box_mean

from ..data.test_distorted import fake_mnist

TINY = dict(epochs=2, threads=1, features=(4, 8), batch_size=4)


# --------------------------------------------------------------------------- losses, metrics


@pytest.mark.parametrize("shape", [(2, 3, 10, 11), (2, 3, 7, 8, 9)])
def test_box_mean_is_average_pooling_cut_at_the_border(shape):
    x = torch.rand(shape, dtype=torch.float64)
    pool = F.avg_pool2d if len(shape) == 4 else F.avg_pool3d
    torch.testing.assert_close(_box_mean(x, 5), pool(x, 5, stride=1, padding=2, count_include_pad=False))


def test_local_ncc_is_zero_for_affine_intensities_and_high_for_noise():
    x = torch.rand(2, 1, 12, 12, 12, dtype=torch.float64)
    assert float(local_ncc(x, 2 * x - 1)) < 1e-3  # the eps of the denominator only
    assert float(local_ncc(x, torch.rand_like(x))) > 0.8
    assert torch.autograd.gradcheck(
        lambda a: local_ncc(a, x[:, :, :6, :6, :6], 3), x[:, :, :6, :6, :6].clone().requires_grad_()
    )
    with pytest.raises(ValueError, match="odd"):
        local_ncc(x, x, window=4)
    with pytest.raises(ValueError, match="one shape"):
        mse(x, x[0])


def test_dice_score_and_loss():
    a = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    b = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    a[..., :2, :] = 1  # 8 pixels
    b[..., 1:3, :] = 1  # 8 pixels, 4 shared
    score = dice_score(a, b, 3)
    assert score[0, 0] == 0.5 and score[0, 1].isnan()  # label 2 in neither map
    onehot = F.one_hot(a[:, 0].long(), 2).movedim(-1, 1).float()
    assert float(dice_loss(onehot, onehot)) < 1e-6
    other = F.one_hot(b[:, 0].long(), 2).movedim(-1, 1).float()
    assert abs(float(dice_loss(onehot, other)) - 0.5) < 1e-5


def test_smoothness_is_in_voxels_and_folding_counts_folds():
    size = (8, 8, 8)
    shift = torch.full((1, *size, 3), 0.3)
    assert float(smoothness(shift)) == 0  # a translation is perfectly smooth
    scale = T.base_grid(size, True) * 0.5  # p -> 1.5 p: each component grows by half a voxel per voxel
    # along its own axis; mean of the squares over the 3 components and the 3 axes: 3 * 0.25 / 9.
    assert abs(float(smoothness(scale.unsqueeze(0))) - 0.25 / 3) < 1e-6
    assert float(folding(scale.unsqueeze(0))) == 0
    flip = (-2 * T.base_grid(size, True)).unsqueeze(0)  # p -> -p: every voxel folds
    assert float(folding(flip)) == 100


# ------------------------------------------------------------------------------ data, network


def test_shapes_are_seeded_with_label_maps():
    a = load_data("shapes3d", size=12, train=3, test=2)
    b = load_data("shapes3d", size=12, train=3, test=2)
    assert a.train_images.shape == (3, 1, 12, 12, 12) and a.num_labels == 5 and a.ndim == 3
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels, b.test_labels)
    assert set(a.train_labels.unique().tolist()) <= {0, 1, 2, 3, 4} and a.train_labels.max() >= 3
    c = load_data("shapes3d", size=12, train=3, test=2, seed=1)
    assert not torch.equal(a.train_labels, c.train_labels)
    flat = load_data("shapes2d", size=16, train=2, test=2)
    assert flat.train_images.shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="unknown registration data set"):
        load_data("brains")
    with pytest.raises(ValueError, match="bad options"):
        load_data("shapes3d", colour="red")


@pytest.mark.parametrize("size", [(12, 12, 12), (14, 15)])
def test_network_starts_at_the_identity(size):
    net = RegistrationNet(size, features=(4, 8))
    moving, fixed = torch.rand(2, 1, *size), torch.rand(2, 1, *size)
    warped, grid = net(moving, fixed)
    assert grid.shape == (2, *size, len(size))
    torch.testing.assert_close(warped, moving, atol=1e-3, rtol=0)
    torch.testing.assert_close(grid, T.base_grid(size, True).expand_as(grid), atol=1e-3, rtol=0)
    (warped.sum() + grid.sum()).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_matrix_registration_starts_at_the_identity():
    net = RegistrationNet((12, 12, 12), transform="affine3d", features=(4, 8))
    moving = torch.rand(1, 1, 12, 12, 12)
    warped, _ = net(moving, moving)
    torch.testing.assert_close(warped, moving, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="3-D matrix family"):
        RegistrationNet((12, 12, 12), transform="affine")
    with pytest.raises(ValueError, match=r"\(N, 1, 12, 12, 12\)"):
        net(torch.rand(1, 1, 8, 8, 8), torch.rand(1, 1, 8, 8, 8))


# -------------------------------------------------------------------------------- training


def test_register_volumes_end_to_end(tmp_path):
    cfg = RegisterConfig(data="shapes3d", data_options=dict(size=12, train=8, test=5), **TINY)
    summary = register(cfg, tmp_path / "run", stream=io.StringIO())
    assert summary["diffeomorphic"] and summary["transform"] == "field3d" and summary["epochs"] == 2
    assert summary["folding_percent"] == 0  # a velocity integrated near the identity never folds
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.json", "train.log", "metrics.csv", "last.pt", "summary.json"} <= files
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,test_similarity,dice_before,dice,folding_percent") and len(rows) == 3
    assert RegisterConfig.from_dict(json.loads((tmp_path / "run" / "config.json").read_text())) == cfg
    with pytest.raises(ValueError, match="already holds a run"):
        register(cfg, tmp_path / "run", stream=io.StringIO())


def test_registration_learns_on_images(tmp_path):
    # 2-D shapes, 30 short epochs: Dice of the fixed test pairs from 0.45 to above 0.55, without folds.
    cfg = RegisterConfig(
        data="shapes2d", data_options=dict(size=24, train=32, test=8), epochs=30, threads=1,
        features=(8, 16, 16), lr=3e-3, dice_weight=1.0,
    )  # fmt: skip
    summary = register(cfg, tmp_path / "run", stream=io.StringIO())
    assert summary["dice"] > summary["dice_before"] + 0.1
    assert summary["folding_percent"] == 0


def test_congealing_mnist_digits_to_a_template(tmp_path, monkeypatch):
    root = fake_mnist(tmp_path / "data", train=40, test=12, monkeypatch=monkeypatch)
    cfg = RegisterConfig(data="mnist", data_root=str(root), data_options={"digit": 1}, template=True, **TINY)
    summary = register(cfg, tmp_path / "run", stream=io.StringIO())
    assert summary["template"] and summary["dice"] > 0.9  # the fake 1s are one disk: aligned from the start
    from stn.registration.report import write_report

    report = write_report(tmp_path / "run")
    assert "congealing.png" in report.read_text() and (tmp_path / "run" / "figures" / "congealing.png").is_file()


def test_stn_register_command(tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["register", "--data", "shapes3d", "--data-option", "size=12", "--data-option", "train=6"]
    flags += ["--data-option", "test=3", "--epochs", "1", "--features", "4,8", "--threads", "1", "--out", str(out)]
    assert main(flags) == 0
    printed = capsys.readouterr().out
    assert "Epoch 1:" in printed and "Report:" in printed
    assert "![slices](figures/slices.png)" in (out / "report.md").read_text()
    assert main(["register", "--features", "4,x"]) == 2
    assert main(["register", "--similarity", "ssim"]) == 2
    assert main(["register", "--window", "4", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.count("stn: error:") == 3 and "window must be odd" in err


@pytest.mark.parametrize("template", [False, True], ids=["pairs", "template"])
def test_a_resumed_registration_is_the_uninterrupted_one(tmp_path, template):
    cfg = RegisterConfig(data="shapes2d", data_options=dict(size=12, train=8, test=5), template=template, **TINY)
    register(cfg, tmp_path / "whole", stream=io.StringIO())
    register(dataclasses.replace(cfg, epochs=1), tmp_path / "part", stream=io.StringIO())
    log = io.StringIO()
    register(cfg, tmp_path / "part", resume=True, stream=log)
    assert "Resuming" in log.getvalue() and "after epoch 1 of 2" in log.getvalue()

    def metrics(run):
        rows = (tmp_path / run / "metrics.csv").read_text().splitlines()
        return [",".join(row.split(",")[:7]) for row in rows]  # all but the seconds

    assert metrics("part") == metrics("whole") and len(metrics("whole")) == 3
    whole, part = (torch.load(tmp_path / run / "last.pt", weights_only=True) for run in ("whole", "part"))
    for name, value in whole["model_state"].items():
        torch.testing.assert_close(part["model_state"][name], value, rtol=0, atol=0, msg=name)
    if template:
        torch.testing.assert_close(part["template"], whole["template"], rtol=0, atol=0)


def test_stn_register_resumes_and_refuses_what_it_cannot(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    flags = ["register", "--data", "shapes2d", "--data-option", "size=12", "--data-option", "train=6"]
    flags += ["--data-option", "test=3", "--epochs", "1", "--features", "4,8", "--threads", "1", "--no-report"]
    assert main([*flags, "--out", str(out)]) == 0
    assert main([*flags, "--out", str(out)]) == 2
    assert f"pick another --out, or go on with it (--resume {out})" in capsys.readouterr().err
    assert main(["register", "--resume", str(out), "--lr", "0.1"]) == 2
    assert main(["register", "--resume", str(out), "--out", str(out), "--epochs", "2"]) == 2
    assert main(["register", "--resume", str(out)]) == 2  # its 1 epoch are done
    assert main(["register", "--resume", str(tmp_path / "nothing"), "--epochs", "2"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and all(line.startswith("stn: error: ") for line in err), err
    assert "these would change: --lr" in err[0] and "drop --out" in err[1] and "trained 1 of 1 epochs" in err[2]
    assert "no registration run to resume" in err[3]

    from stn.registration import train as registration

    real = registration._train_epoch

    def interrupted(reg, optimizer, generator, epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return real(reg, optimizer, generator, epoch)

    monkeypatch.setattr(registration, "_train_epoch", interrupted)
    assert main(["register", "--resume", str(out), "--epochs", "4", "--no-report"]) == 130
    assert f"interrupted; the last finished epoch is saved. Resume with: stn register --resume {out}" in (
        capsys.readouterr().err
    )
    monkeypatch.setattr(registration, "_train_epoch", real)
    assert main(["register", "--resume", str(out), "--epochs", "4"]) == 0
    printed = capsys.readouterr().out
    assert "after epoch 2 of 4" in printed and "Epoch 3:" in printed and "Epoch 4:" in printed and "Report:" in printed
    assert len((out / "metrics.csv").read_text().splitlines()) == 5

    header = (out / "metrics.csv").read_text().splitlines()[0]
    (out / "metrics.csv").write_text(header + "\n")  # the history lost: one line, not a traceback
    assert main(["register", "--resume", str(out), "--epochs", "5"]) == 2
    assert "metrics.csv does not hold the 4 epochs of its last.pt" in capsys.readouterr().err
