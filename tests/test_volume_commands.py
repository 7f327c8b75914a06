"""A volume run along every command a user takes with it, in-process through :func:`stn.cli.main`:
``volume-mnist`` on ``mnist3d-rts`` (made from a tiny fake MNIST, so no shared data is needed),
trained once per transformer family (module-scoped), then evaluated, inspected, visualised,
reported, exported, and refused by ``stn predict`` (it reads image files). The 2-D families take
the same commands in :mod:`tests.test_end_to_end`, whose coverage test also checks this file's
:data:`STEPS`. Pinned: ``--amp off``, one thread, the CPU. Marked ``e2e``.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
from pathlib import Path

import pytest
import torch

from tests.data.official_files import trust_idx
from tests.data.test_distorted import fake_mnist
from tests.test_end_to_end import run, varied

pytestmark = pytest.mark.e2e

SHAPE = (1, 16, 16, 16)
DATA = ["--dataset", "mnist3d-rts"] + [
    arg for option in ("train_size=32", "test_size=16", "canvas=16") for arg in ("--dataset-option", option)
]
TRAIN = ["--model", "volume-mnist", *DATA, "--epochs", "2", "--batch-size", "16", "--optimizer", "adam"]
PINNED = ["--lr", "0.001", "--amp", "off", "--device", "cpu", "--threads", "1", "--no-channels-last", "--no-progress"]
# family -> (its statistic in metrics.csv, its column in stn inspect's table, its histogram's label)
FAMILIES = {
    "affine": ("scale_mean", "scale", "scale ∛|det|"),  # volume-mnist's default: affine means affine3d
    "field3d": ("folding_share", "folded", "share of the grid folded"),
}
PICTURES = {"curves.png", "before_after.png", "learning.gif", "learning.png", "statistics.png", "histograms.png"}


def steps(root: Path, family: str) -> dict[str, list[str | Path]]:
    """Every command on the run of ``family`` under ``root``, in order (``stn`` and the subcommand first)."""
    run_dir = root / family
    images = root / "images"
    return {
        "train": ["train", *TRAIN, "--transform", family, *PINNED, "--data-root", root / "data", "--out", run_dir],
        "evaluate": ["evaluate", run_dir, "--device", "cpu"],
        "inspect": ["inspect", run_dir],
        "visualize": ["visualize", run_dir, "--out", root / f"{family}-figures"],
        "report": ["report", run_dir],
        "export": ["export", run_dir, "--format", "pt2", "--out", root / f"{family}.pt2"],
        "predict-run": ["predict", run_dir, images, "--out", root / f"{family}-predict-run"],
        "predict-pt2": ["predict", root / f"{family}.pt2", images, "--out", root / f"{family}-predict-pt2"],
    }


STEPS = steps(Path("root"), "affine")  # what test_end_to_end's coverage test reads


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A fake MNIST, one image file to predict, and a run per family and one without a transformer,
    each trained for 2 epochs."""
    root = tmp_path_factory.mktemp("volume-commands")
    from PIL import Image

    (root / "images").mkdir()
    Image.new("L", (16, 16)).save(root / "images" / "digit.png")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STN_CACHE", str(root / "cache"))
        patch.setenv("STN_NO_DOWNLOAD", "1")
        fake_mnist(root / "data", train=40, test=16, monkeypatch=patch)
        for family in FAMILIES:
            result = run(steps(root, family)["train"])
            assert result.code == 0, result.err
        cnn = ["train", *TRAIN, "--no-stn", *PINNED, "--data-root", root / "data", "--out", root / "cnn", "--no-report"]
        result = run(cnn)
        assert result.code == 0, result.err
    return root


@pytest.fixture(params=list(FAMILIES))
def family(request) -> str:
    return request.param


def metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_train_measures_the_transformer_and_keeps_snapshots(root, family):
    rows = metrics(root / family)
    assert [row["epoch"] for row in rows] == ["1", "2"]
    column = FAMILIES[family][0]
    for row in rows:
        for name in (column, "outside_share", "displacement_mean"):
            assert math.isfinite(float(row[f"stn_{name}"])), name
    snapshots = torch.load(root / family / "snapshots.pt", weights_only=True)
    assert snapshots["epochs"] == [1, 2] and snapshots["transform"] == ("affine3d" if family == "affine" else family)
    assert tuple(snapshots["images"].shape[1:]) == SHAPE and tuple(snapshots["outputs"][-1].shape[1:]) == SHAPE


def test_evaluate(root, family, monkeypatch):
    trust_idx(monkeypatch, "mnist", root / "data" / "mnist")  # evaluate reads the test set again
    result = run(steps(root, family)["evaluate"])
    assert result.code == 0 and re.search(r"Accuracy: \d+/16 ", result.out), result.out


def test_inspect_prints_the_statistics_of_every_epoch(root, family):
    result = run(steps(root, family)["inspect"])
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "volume-mnist on mnist3d-rts, 2 of 2 epochs" in lines[0]
    assert lines[1] == "Transformer statistics from metrics.csv (fixed test images, every epoch):"
    at = lines.index("stn")
    heading = lines[at + 1].split()
    assert heading[0] == "epoch" and FAMILIES[family][1] in heading and "outside" in heading
    for epoch, line in enumerate(lines[at + 2 : at + 4], 1):
        row = line.split()
        assert row[0] == str(epoch) and "-" not in row and "nan" not in line  # every column filled
    assert any(line.startswith("Warnings: ") for line in lines)


def test_visualize_draws_the_middle_slices(root, family):
    result = run(steps(root, family)["visualize"])
    assert result.code == 0, result.err
    written = [Path(line) for line in result.out.splitlines()]
    assert {p.name for p in written} == PICTURES  # no regions.png: outlines are not drawn on volumes
    for path in written:
        assert path.parent == root / f"{family}-figures" and varied(path), path
    from PIL import Image

    with Image.open(root / f"{family}-figures" / "learning.gif") as gif:
        assert gif.n_frames == 2  # one frame per epoch
    with Image.open(root / f"{family}-figures" / "before_after.png") as picture:
        assert picture.width > picture.height  # inputs left, outputs right
    assert result.err.strip().splitlines() == [
        "stn: volumes are drawn as their middle slices (before_after.png); where the transformer looks "
        "(regions.png) is not drawn for volumes"
    ]


def test_report_holds_the_pictures_and_the_statistics(root, family):
    result = run(steps(root, family)["report"])
    report = root / family / "report.md"
    assert result.code == 0 and f"Report: {report}" in result.out and report.with_suffix(".html").is_file()
    text = report.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {Path(link).name for link in links} >= PICTURES
    for link in links:
        assert varied(report.parent / link), link
    assert "### What the transformer does" in text and "### Transformer statistics" in text
    (row,) = [line for line in text.splitlines() if line.startswith(f"| {family} |")]
    assert f"| volume-mnist | mnist3d-rts | {family.removesuffix('3d')}3d |" in row, row  # the family it used
    assert "middle slices across D, H, W" in text and "not drawn for volumes" in text
    (caption,) = [line for line in text.splitlines() if line.startswith("*Per test volume, best checkpoint: ")]
    assert FAMILIES[family][2] in caption and "share of the grid outside the volume" in caption


def test_predict_refuses_a_volume_run_and_its_export(root, family):
    result = run(steps(root, family)["export"])
    assert result.code == 0 and f"input 'images' (N, {', '.join(map(str, SHAPE))})" in result.out, result.err
    for step, target in (("predict-run", root / family), ("predict-pt2", root / f"{family}.pt2")):
        argv = steps(root, family)[step]
        result = run(argv)
        assert result.code == 2 and result.out == "", result.out
        (line,) = result.err.splitlines()  # one line, and nothing read or written before it
        assert line.startswith(f"stn: error: stn predict reads images; {target} is a volume model (1, 16, 16, 16): ")
        assert not Path(argv[-1]).exists()
    from stn.predict import load_predictor, predict, predict_files

    predictor = load_predictor(root / f"{family}.pt2")  # the library refuses as the command does
    with pytest.raises(ValueError, match=r"stn predict reads images; .* is a volume model \(1, 16, 16, 16\)"):
        predict_files(predictor, [root / "images"], root / "library-out")
    with pytest.raises(ValueError, match="is a volume model"):
        next(predict(predictor, [root / "images"]))
    assert not (root / "library-out").exists()


def test_a_run_without_transformer_or_statistics_says_so(root, tmp_path):
    result = run(["inspect", root / "cnn"])
    assert result.code == 0
    assert result.out.splitlines()[1] == "No transformer statistics: the model has no spatial transformer (--no-stn)."
    result = run(["visualize", root / "cnn", "--out", tmp_path / "cnn-figures"])
    assert result.code == 0 and [Path(p).name for p in result.out.split()] == ["curves.png"]
    assert result.err.strip() == "stn: this model has no spatial transformer: only its curves were drawn"
    # a run from before the statistics: no columns in metrics.csv, no snapshots
    old = tmp_path / "old"
    shutil.copytree(root / "affine", old)
    (old / "snapshots.pt").unlink()
    rows = metrics(old)
    keep = [key for key in rows[0] if not key.startswith("stn")]
    with open(old / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, keep, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    result = run(["inspect", old])
    assert result.code == 0 and result.out.splitlines()[1] == (
        "No transformer statistics: its metrics.csv has no statistics columns and it kept no snapshots."
    )
