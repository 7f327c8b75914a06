"""``stn predict``: a run directory and its ONNX export agree; boxes, bad images, CSV and JSON."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stn import models
from stn.cli import main
from stn.engine import checkpoint as ckpt
from stn.engine import load_model
from stn.export import export_onnx, export_pt2
from stn.predict import ImageError, image_files, load_predictor, predict, read_image, regions
from tests.conftest import make_bars_folder

SHAPE = (1, 28, 28)
CLASSES = ["horizontal", "vertical"]
CLASS_KEYS = ("classes", "mean", "std")
ZOOM = [0.5, 0.0, 0.25, 0.0, 0.5, -0.25]  # affine: reads x in [-0.25, 0.75], y in [-0.75, 0.25]


def save_run(run_dir: Path, seed: int = 0, bias: list[float] | None = None) -> Path:
    """A run directory holding a ``best.pt`` of a random two-class ``tutorial-mnist``; its transformer
    is moved off the identity (``bias``, with zero weights: a fixed map; else a random nudge)."""
    torch.manual_seed(seed)
    model = models.create("tutorial-mnist", input_shape=SHAPE, num_classes=2)
    last = model.stn.fc_loc[-1]
    with torch.no_grad():
        if bias is None:
            last.bias.add_(0.1 * torch.randn_like(last.bias))
            last.weight.normal_(0, 0.01)
        else:
            last.weight.zero_()
            last.bias.copy_(torch.tensor(bias))
    options = dict(input_shape=SHAPE, num_classes=2, stn=True, transform="affine")
    payload = dict(model="tutorial-mnist", model_options=options, dataset="folder", classes=CLASSES)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt.save(
        {**payload, "mean": [0.2], "std": [0.3], "config": {"flip_tta": False}, "state_dict": model.state_dict()},
        run_dir / "best.pt",
    )
    (run_dir / "config.json").write_text(json.dumps({"model": "tutorial-mnist", "dataset": "folder"}))
    return run_dir


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A run, its ONNX and .pt2 exports, and a folder of 9 images: bars (28x28 grayscale, in two
    sub-folders) and one 40x30 RGB image."""
    root = tmp_path_factory.mktemp("predict")
    run_dir = save_run(root / "run")
    model, payload, _ = load_model(run_dir)
    meta = {key: payload[key] for key in CLASS_KEYS}
    onnx_path = export_onnx(model, SHAPE, root / "model.onnx", metadata=meta)
    pt2_path = export_pt2(model, SHAPE, root / "model.pt2", metadata=meta)
    images = make_bars_folder(root / "bars", train=4, test=0)
    rgb = np.random.default_rng(1).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(images / "train" / "wide.png")
    (images / "train" / "notes.txt").write_text("not an image, and not picked up from a folder")
    return run_dir, onnx_path, pt2_path, images / "train"


def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_folders_are_walked_sorted_and_recursively(files):
    *_, folder = files
    found = [p.relative_to(folder).as_posix() for p in image_files([folder])]
    assert found == [f"horizontal/{i:04d}.png" for i in range(4)] + [f"vertical/{i:04d}.png" for i in range(4)] + [
        "wide.png"
    ]
    with pytest.raises(ValueError, match=r"no such file or folder: .*missing"):
        list(image_files([folder, folder / "missing"]))


def test_images_are_read_as_the_run_read_them(files):
    *_, folder = files
    array, size = read_image(folder / "wide.png", (1, 28, 28))
    assert array.shape == (1, 28, 28) and array.dtype == np.uint8 and size == (40, 30)
    with Image.open(folder / "wide.png") as img:  # L, then bilinear: as stn.data reads a folder
        want = np.asarray(img.convert("L").resize((28, 28), Image.BILINEAR))
    assert np.array_equal(array[0], want)
    array, _ = read_image(folder / "horizontal" / "0000.png", (3, 14, 14))
    assert array.shape == (3, 14, 14) and np.array_equal(array[0], array[2])


@pytest.mark.parametrize("exported", ["onnx", "pt2"])
def test_run_directory_and_export_agree(files, exported):
    run_dir, onnx_path, pt2_path, folder = files
    target = onnx_path if exported == "onnx" else pt2_path
    results = []
    for predictor in (load_predictor(run_dir), load_predictor(target)):
        batches = list(predict(predictor, [folder], top_k=2, batch_size=4, boxes=True))
        assert [len(b.predictions) for b in batches] == [4, 4, 1]
        results.append([p for b in batches for p in b.predictions])
    ours, theirs = results
    assert [p.file for p in ours] == [p.file for p in theirs] == [str(p) for p in image_files([folder])]
    for a, b in zip(ours, theirs, strict=True):
        assert a.top[0][0] == b.top[0][0]
        for (ca, _, pa), (cb, _, pb) in zip(a.top, b.top, strict=True):
            assert ca == cb and abs(pa - pb) < 1e-4
        assert np.allclose(a.regions, b.regions, atol=1e-3)
    assert len({round(p.top[0][2], 4) for p in ours}) > 1  # the images make a difference


def test_boxes_are_the_region_read_in_original_pixels(files, tmp_path, capsys):
    *_, folder = files
    run_dir = save_run(tmp_path / "zoom", bias=ZOOM)
    model, payload, _ = load_model(run_dir)
    onnx_path = export_onnx(model, SHAPE, tmp_path / "zoom.onnx", metadata={k: payload[k] for k in CLASS_KEYS})
    for target, out in ((run_dir, tmp_path / "a"), (onnx_path, tmp_path / "b")):
        code, _, err = run_cli(["predict", target, folder / "wide.png", "--boxes", "--out", out], capsys)
        assert code == 0, err
        record = json.loads((out / "predictions.json").read_text())["predictions"][0]
        assert (record["width"], record["height"]) == (40, 30)
        # x in [-0.25, 0.75] of 40 px, y in [-0.75, 0.25] of 30 px; corners TL, TR, BR, BL.
        want = [[[15.0, 3.75], [35.0, 3.75], [35.0, 18.75], [15.0, 18.75]]]
        assert np.allclose(record["regions"], want, atol=1e-4)


def test_regions_with_align_corners():
    from stn import transforms as T

    params = torch.tensor([[1.0, 0, 0, 0, 1.0, 0]], dtype=torch.float64)
    quad = regions(T.get("affine"), params, (10, 20), [(200, 100)], align_corners=True)
    # ±1 are the centres of the corner pixels of the 10x20 image: half a pixel (10 original) inside.
    assert torch.allclose(quad[0, 0], torch.tensor([[5.0, 5.0], [195.0, 5.0], [195.0, 95.0], [5.0, 95.0]]).double())
    quad = regions(T.get("affine"), params, (10, 20), [(200, 100)], align_corners=False)
    assert torch.allclose(quad[0, 0], torch.tensor([[0.0, 0.0], [200.0, 0.0], [200.0, 100.0], [0.0, 100.0]]).double())


def test_regions_of_polar_are_the_box_around_the_disk_it_reads():
    from stn import transforms as T

    polar = T.get("polar", max_radius=0.5)
    origins = torch.tensor([[0.2, -0.4], [0.0, 0.0]], dtype=torch.float64)
    quad = regions(polar, origins, (28, 28), [(40, 30), (28, 28)])
    # normalised: x in [-0.3, 0.7] of 40 px, y in [-0.9, 0.1] of 30 px; corners TL, TR, BR, BL
    want = torch.tensor([[14.0, 1.5], [34.0, 1.5], [34.0, 16.5], [14.0, 16.5]], dtype=torch.float64)
    torch.testing.assert_close(quad[0, 0], want)
    torch.testing.assert_close(quad[1, 0], torch.tensor([[7.0, 7.0], [21.0, 7.0], [21.0, 21.0], [7.0, 21.0]]).double())
    # every point the polar grid reads lies in the box
    grid = polar.grid(origins[:1], (16, 16)).view(-1, 2)
    pixels = (grid + 1) / 2 * torch.tensor([40.0, 30.0], dtype=torch.float64)
    assert (pixels >= quad[0, 0, 0] - 1e-9).all() and (pixels <= quad[0, 0, 2] + 1e-9).all()


@pytest.mark.parametrize("family", ["tps", "field", "diffeomorphic", "affine"])
def test_regions_of_the_identity_are_the_image_and_parallel_sets_give_one_each(family):
    from stn import transforms as T

    transform = T.get(family)
    params = transform.identity(2, dtype=torch.float64).unsqueeze(1).repeat(1, 3, 1)  # k = 3
    quad = regions(transform, params, (28, 28), [(40, 30), (28, 28)])
    assert quad.shape == (2, 3, 4, 2)
    image = torch.tensor([[0.0, 0.0], [40.0, 0.0], [40.0, 30.0], [0.0, 30.0]], dtype=torch.float64)
    torch.testing.assert_close(quad[0], image.expand(3, 4, 2), atol=1e-6, rtol=0)


def test_csv_json_and_table(files, tmp_path, capsys):
    run_dir, _, _, folder = files
    out = tmp_path / "out"
    code, stdout, err = run_cli(["predict", run_dir, folder, "--top-k", "5", "--out", out, "--batch-size", "3"], capsys)
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0].split() == ["file", "top-1", "prob", "top-2", "prob"]  # top-k clipped to the 2 classes
    assert len(lines) == 1 + 9 + 1 and lines[-1].startswith("9 images (pytorch: ")
    data = json.loads((out / "predictions.json").read_text())
    assert data["classes"] == CLASSES and data["top_k"] == 2 and data["count"] == 9 and data["skipped"] == []
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert list(rows[0]) == ["file", "top1_class", "top1_probability", "top2_class", "top2_probability"]
    assert len(rows) == len(data["predictions"]) == 9
    for row, record, line in zip(rows, data["predictions"], lines[1:], strict=False):
        top = record["top_k"]
        assert row["file"] == record["file"] == line.split()[0]
        assert [t["class"] for t in top] == [row["top1_class"], row["top2_class"]] == [line.split()[1], line.split()[3]]
        assert top[0]["probability"] >= top[1]["probability"]
        assert abs(top[0]["probability"] + top[1]["probability"] - 1) < 1e-5
        assert abs(float(row["top1_probability"]) - top[0]["probability"]) < 1e-5
        assert CLASSES[top[0]["index"]] == top[0]["class"]
        assert "regions" not in record
    assert not list(out.glob(".*tmp"))


def test_save_transformed_writes_crops_and_a_contact_sheet(files, tmp_path, capsys):
    run_dir, _, _, folder = files
    out = tmp_path / "out"
    code, stdout, err = run_cli(["predict", run_dir, folder / "vertical", "--save-transformed", "--out", out], capsys)
    assert code == 0, err
    crops = sorted(p.name for p in (out / "transformed").iterdir())
    assert crops == [f"{i + 1:05d}-{i:04d}.png" for i in range(4)]
    with Image.open(out / "transformed" / crops[0]) as crop:
        assert crop.size == (28, 28) and crop.mode == "L"
    with Image.open(out / "contact-sheet-001.png") as sheet:
        assert sheet.width > 3 * 28 and sheet.height > 4 * 28
    assert "contact-sheet-001.png" in stdout


def bad_images(folder: Path) -> dict[str, Path]:
    good = folder / "horizontal" / "0000.png"
    bad = folder.parent / "bad"
    bad.mkdir(exist_ok=True)
    (bad / "text.png").write_text("hello")
    blob = good.read_bytes()
    (bad / "truncated.png").write_bytes(blob[: len(blob) // 2])
    Image.new("LAB", (28, 28)).save(bad / "lab.tif")
    return {"not an image": bad / "text.png", "truncated": bad / "truncated.png", "cannot convert": bad / "lab.tif"}


@pytest.mark.parametrize("kind", ["not an image", "truncated", "cannot convert"])
def test_a_bad_image_is_one_line_naming_it(files, kind, capsys):
    run_dir, _, _, folder = files
    bad = bad_images(folder)[kind]
    code, _, err = run_cli(["predict", run_dir, folder / "horizontal", bad], capsys)
    assert code == 2
    assert err.count("\n") == 1 and str(bad) in err and kind in err, err
    with pytest.raises(ImageError, match=kind):
        read_image(bad, SHAPE)


def test_skip_bad_images_counts_them(files, tmp_path, capsys):
    run_dir, onnx_path, _, folder = files
    bad = list(bad_images(folder).values())
    for target in (run_dir, onnx_path):
        out = tmp_path / target.name
        argv = ["predict", target, bad[0], folder / "horizontal", *bad[1:], "--skip-bad-images", "--out", out]
        code, stdout, err = run_cli(argv, capsys)
        assert code == 0, err
        assert "4 images, 3 skipped (unreadable)" in stdout
        assert len(err.splitlines()) == 3 and all(str(p) in err for p in bad)
        data = json.loads((out / "predictions.json").read_text())
        assert data["count"] == 4 and data["skipped_count"] == 3
        assert [s["file"] for s in data["skipped"]] == [str(p) for p in bad]


def test_predict_streams_in_batches(files, monkeypatch):
    run_dir, _, _, folder = files
    import stn.predict.images as module

    reads = []
    real = module.read_image
    monkeypatch.setattr(module, "read_image", lambda path, shape: reads.append(path) or real(path, shape))
    batches = predict(load_predictor(run_dir), [folder], batch_size=2, progress=False)
    assert reads == []  # a generator: nothing read yet
    first = next(batches)
    assert len(first.predictions) == 2 and len(reads) == 2
    assert sum(len(b.predictions) for b in batches) == 7 and len(reads) == 9


def test_usage_errors(files, tmp_path, capsys):
    run_dir, _, _, folder = files
    code, _, err = run_cli(["predict", run_dir, folder, "--boxes"], capsys)
    assert code == 2 and "--boxes writes files: give --out DIR" in err
    code, _, err = run_cli(["predict", run_dir, tmp_path / "nothing.png"], capsys)
    assert code == 2 and "no such file or folder" in err and err.count("\n") == 1
    code, _, err = run_cli(["predict", tmp_path / "no-run", folder], capsys)
    assert code == 2 and err.count("\n") == 1
    nostn = tmp_path / "nostn"
    nostn.mkdir()
    model = models.create("tutorial-mnist", input_shape=SHAPE, num_classes=2, stn=False)
    options = dict(input_shape=SHAPE, num_classes=2, stn=False)
    payload = dict(model="tutorial-mnist", model_options=options, dataset="folder", classes=CLASSES)
    ckpt.save({**payload, "mean": [0.2], "std": [0.3], "state_dict": model.state_dict()}, nostn / "best.pt")
    (nostn / "config.json").write_text(json.dumps({"model": "tutorial-mnist", "dataset": "folder"}))
    code, out, err = run_cli(["predict", nostn, folder], capsys)
    assert code == 0 and "9 images" in out
    code, _, err = run_cli(["predict", nostn, folder, "--boxes", "--out", tmp_path / "o"], capsys)
    assert code == 2 and "no spatial transformer" in err


def test_onnx_prediction_imports_no_training_code(files, tmp_path):
    _, onnx_path, _, folder = files
    script = (
        "import sys\n"
        "from stn.predict import load_predictor, predict_files\n"
        f"s = predict_files(load_predictor({str(onnx_path)!r}), [{str(folder)!r}], {str(tmp_path)!r}, boxes=True,"
        " save_transformed=True)\n"
        "assert s.count == 9, s\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('stn.engine', 'stn.models')))\n"
        "assert not loaded, loaded\n"
    )
    src = Path(__file__).resolve().parents[1] / "src"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(src)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "contact-sheet-001.png").is_file()


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--help"])
    assert exit_.value.code == 0 and "--skip-bad-images" in capsys.readouterr().out


def test_the_docs_predict_commands_parse_and_name_files_that_exist():
    from stn.cli import build_parser

    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "predict-and-export.md").read_text()
    section = page.split("## Predict\n", 1)[1].split("\n## ", 1)[0]
    commands = [line.split("#")[0].split() for line in section.splitlines() if line.startswith("stn ")]
    assert [c[1] for c in commands].count("predict") >= 2 and "export" in [c[1] for c in commands]
    for command in commands:
        args = build_parser().parse_args(command[1:])
        for name in getattr(args, "inputs", []):
            assert (root / name).exists(), name
