"""End to end: every transform family and every kind of transformer layer along every command a
user takes, in-process through :func:`stn.cli.main`.

For each case of :data:`CASES` (one per registered family, the field integrated as a velocity, and
parallel and recurrent transformers) a tiny run is trained once (module-scoped), then evaluated,
reported, visualised, inspected, exported to ONNX and ``.pt2``, and used to predict with boxes from
the run and from both exports. Every step must exit 0, and its output is checked for content.
:func:`test_coverage` fails when a family, a layer kind or a command is missing from the matrix,
or a command from the steps of the volume runs (``volume-mnist``: :mod:`tests.test_volume_commands`).
All are marked ``e2e``, the matrix ``slow`` too: ``pytest --runslow -m e2e`` runs it alone.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stn import layers, models
from stn import transforms as T
from stn.cli import build_parser, main

pytestmark = pytest.mark.e2e
matrix = pytest.mark.slow  # the matrix takes minutes: it runs with --runslow; the coverage test always

DATA = ["--dataset", "glyphs"] + [
    arg for option in ("train_size=64", "test_size=32", "canvas=28") for arg in ("--dataset-option", option)
]
TRAIN = ["--model", "paper-cnn", *DATA, "--epochs", "1", "--batch-size", "16"]
PINNED = ["--amp", "off", "--device", "cpu", "--threads", "1", "--no-progress"]
IMAGE_SIZES = [(28, 28), (28, 28), (40, 30)]  # (width, height) of the files predicted; one not square
EXPORT_TOLERANCE = 1e-4  # largest |difference| of an export from PyTorch, float32 log-probabilities


@dataclass(frozen=True)
class Case:
    """One row of the matrix: the family, its model options, and what its statistics show."""

    transform: str
    model_options: dict = field(default_factory=dict)
    column: str = "scale_mean"  # a metrics.csv statistic only this kind of family has
    heading: str = "scale"  # its column in stn inspect's table
    histogram: str = "scale √|det|"  # the label of its histogram (named in the report)

    @property
    def k(self) -> int:
        return int(self.model_options.get("parallel", 1))

    def argv(self) -> list[str]:
        options = [arg for key, value in self.model_options.items() for arg in ("--model-option", _option(key, value))]
        return ["--transform", self.transform, *options]


def _option(key: str, value: object) -> str:
    return f"{key}={json.dumps(value)}"


TPS = dict(column="tps_offset_max", heading="offset", histogram="bending energy")
FIELD = dict(column="folding_share", heading="folded", histogram="share of the grid folded")
POLAR = dict(column="origin_mean", heading="origin", histogram="distance from the centre")
CASES = {
    "translation": Case("translation"),
    "attention": Case("attention"),
    "similarity": Case("similarity"),
    "affine": Case("affine"),
    "projective": Case("projective"),
    "tps": Case("tps", **TPS),
    "diffeomorphic": Case("diffeomorphic"),
    "polar": Case("polar", **POLAR),
    "field": Case("field", **FIELD),
    "field-diffeomorphic": Case("field", {"transform_options": {"diffeomorphic": True}}, **FIELD),
    "parallel": Case("attention", {"parallel": 2}),
    "recurrent": Case("affine", {"recurrent_steps": 4}),
}


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(argv: list[str | Path]) -> Result:
    """``stn ARGV`` in this process on one CPU thread (as ``train --threads 1``; the other commands
    have no such flag): exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    finally:
        torch.set_num_threads(threads)
    return Result(code, out.getvalue(), err.getvalue())


class Pipeline:
    """One case's run directory and the commands on it, each run once, on first use, in order."""

    def __init__(self, name: str, case: Case, root: Path, images: Path) -> None:
        self.name, self.case, self.root, self.images = name, case, root, images
        self.run_dir = root / "run"
        self.results: dict[str, Result] = {}

    def steps(self) -> dict[str, list[str | Path]]:
        """Every step: its command line (``stn`` and the subcommand first)."""
        run_dir, root = self.run_dir, self.root
        predict = ["--top-k", "10", "--boxes"]
        return {
            "train": ["train", *TRAIN, *self.case.argv(), *PINNED, "--out", run_dir],
            "evaluate": ["evaluate", run_dir, "--device", "cpu"],
            "report": ["report", run_dir],
            "visualize": ["visualize", run_dir, "--out", root / "figures"],
            "inspect": ["inspect", run_dir],
            "export-onnx": ["export", run_dir, "--format", "onnx", "--out", root / "model.onnx"],
            "export-pt2": ["export", run_dir, "--format", "pt2", "--out", root / "model.pt2"],
            "predict-run": ["predict", run_dir, self.images, *predict, "--out", root / "predict-run"],
            "predict-onnx": ["predict", root / "model.onnx", self.images, *predict, "--out", root / "predict-onnx"],
            "predict-pt2": ["predict", root / "model.pt2", self.images, *predict, "--out", root / "predict-pt2"],
        }

    def __call__(self, step: str) -> Result:
        """The result of ``step``, which must have exited 0 (as must the steps it needs)."""
        needs = {"predict-onnx": "export-onnx", "predict-pt2": "export-pt2"}
        for before in ("train", needs.get(step)):
            if before and before != step:
                self(before)
        if step not in self.results:
            self.results[step] = run(self.steps()[step])
        result = self.results[step]
        if result.code != 0:
            pytest.fail(f"stn {step} on {self.name} exited {result.code}: {result.err.strip()[-500:]}")
        return result

    def metrics(self) -> list[dict[str, str]]:
        with open(self.run_dir / "metrics.csv", newline="") as f:
            return list(csv.DictReader(f))

    def prefixes(self) -> list[str]:
        return ["stn"] if self.case.k == 1 else [f"stn{i + 1}" for i in range(self.case.k)]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Glyph images to predict, one of them resized to a size the model does not read."""
    from stn.data.glyphs import make_glyphs

    folder = tmp_path_factory.mktemp("images")
    glyphs, _ = make_glyphs(len(IMAGE_SIZES), torch.Generator().manual_seed(5), canvas=28)
    for i, (glyph, size) in enumerate(zip(glyphs, IMAGE_SIZES, strict=True)):
        Image.fromarray(glyph[0].numpy()).resize(size, Image.Resampling.BILINEAR).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module", params=list(CASES))
def pipeline(request, images, tmp_path_factory) -> Pipeline:
    return Pipeline(request.param, CASES[request.param], tmp_path_factory.mktemp(request.param), images)


def varied(path: Path) -> bool:
    """Whether the picture at ``path`` is not blank (its pixels vary)."""
    with Image.open(path) as picture:
        return float(np.asarray(picture.convert("RGB"), dtype=np.float64).var()) > 0


# ------------------------------------------------------------------------------------ the matrix
@matrix
def test_train(pipeline):
    result = pipeline("train")
    assert f"Run directory: {pipeline.run_dir}" in result.out and "Report: " in result.out
    assert (pipeline.run_dir / "report.md").is_file()
    rows = pipeline.metrics()
    assert [row["epoch"] for row in rows] == ["1"]
    for prefix in pipeline.prefixes():  # the family's own statistics, for each transformer
        for column in (pipeline.case.column, "outside_share", "displacement_mean"):
            assert np.isfinite(float(rows[0][f"{prefix}_{column}"])), (prefix, column)
    if pipeline.case.k > 1:
        assert not any(key.startswith("stn_") for key in rows[0])
    config = json.loads((pipeline.run_dir / "config.json").read_text())
    assert config["transform"] == pipeline.case.transform
    assert config["model_options"] == pipeline.case.model_options


@matrix
def test_evaluate(pipeline):
    result = pipeline("evaluate")
    match = re.search(r"Accuracy: (\d+)/(\d+) \(\d+%\)", result.out)
    assert match, result.out
    correct, total = int(match[1]), int(match[2])
    assert total == 32
    assert 100 * correct / total == pytest.approx(float(pipeline.metrics()[-1]["test_accuracy"]), abs=0.01)
    per_class = [line for line in result.out.splitlines()[2:] if line.strip()]
    assert len(per_class) == 10 and sum(int(re.search(r"\((\d+)/", line)[1]) for line in per_class) == correct


@matrix
def test_report(pipeline):
    result = pipeline("report")
    report = pipeline.run_dir / "report.md"
    assert f"Report: {report}" in result.out and report.with_suffix(".html").is_file()
    text = report.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| run | paper-cnn |"))
    assert row.split("|")[4].strip() == pipeline.case.transform
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    names = {Path(link).name for link in links}
    assert {"curves.png", "before_after.png", "regions.png", "statistics.png", "histograms.png"} <= names
    assert {"learning.gif", "learning.png"} <= names
    for link in links:
        assert varied(report.parent / link), link
    assert pipeline.case.histogram in text  # the caption of the histograms names the family's statistics


@matrix
def test_visualize(pipeline):
    result = pipeline("visualize")
    written = [Path(line) for line in result.out.splitlines()]
    assert {p.name for p in written} == {
        "curves.png",
        "before_after.png",
        "regions.png",
        "learning.gif",
        "learning.png",
        "statistics.png",
        "histograms.png",
    }
    for path in written:
        assert path.parent == pipeline.root / "figures" and varied(path), path
    with Image.open(pipeline.root / "figures" / "learning.gif") as gif:
        assert gif.n_frames == 1  # one frame per epoch
    with Image.open(pipeline.root / "figures" / "histograms.png") as picture:
        histograms = picture.size[0] // 400  # one panel of about 420 pixels per statistic
    assert histograms == (2 if pipeline.case.transform == "polar" else 3)


@matrix
def test_inspect(pipeline):
    result = pipeline("inspect")
    lines = result.out.splitlines()
    assert "paper-cnn on glyphs, 1 of 1 epochs" in lines[0]
    assert lines[1] == "Transformer statistics from metrics.csv (fixed test images, every epoch):"
    for prefix in pipeline.prefixes():
        at = lines.index(prefix)
        heading, row = lines[at + 1].split(), lines[at + 2].split()
        assert heading[0] == "epoch" and pipeline.case.heading in heading and "outside" in heading
        assert row[0] == "1" and "-" not in row  # epoch 1, every column filled
    assert any(line.startswith("Warnings: ") for line in lines)


@matrix
@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_export(pipeline, fmt):
    from stn.export import read_metadata

    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    result = pipeline(f"export-{fmt}")
    path = pipeline.root / f"model.{fmt}"
    assert f"Wrote {path}" in result.out
    difference = float(re.search(r"max \|difference\| ([0-9.e+-]+)", result.out)[1])
    assert difference < EXPORT_TOLERANCE
    meta = read_metadata(path)
    assert meta["parity"]["max_abs_difference"] == pytest.approx(difference, rel=0.01, abs=1e-12)
    assert meta["outputs"] == ["output", "params", "transformed"]
    assert meta["transformer"]["transform"] == pipeline.case.transform and meta["transformer"]["k"] == pipeline.case.k


def predictions(pipeline: Pipeline, source: str) -> list[dict]:
    result = pipeline(f"predict-{source}")
    assert f"{len(IMAGE_SIZES)} images" in result.out.splitlines()[-1]
    record = json.loads((pipeline.root / f"predict-{source}" / "predictions.json").read_text())
    assert record["count"] == len(IMAGE_SIZES) == len(record["predictions"]) and record["skipped"] == []
    return record["predictions"]


def area(quad: np.ndarray) -> float:
    """The area of a quadrilateral ``(4, 2)`` (shoelace; positive when clockwise on screen)."""
    x, y = quad[:, 0], quad[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


@matrix
@pytest.mark.parametrize("source", ["run", "onnx", "pt2"])
def test_predict(pipeline, source):
    if source == "onnx":
        pytest.importorskip("onnxruntime")
    ours = predictions(pipeline, source)
    assert [Path(p["file"]).name for p in ours] == [f"{i}.png" for i in range(len(IMAGE_SIZES))]
    for p, (width, height) in zip(ours, IMAGE_SIZES, strict=True):
        assert (p["width"], p["height"]) == (width, height)
        probabilities = [entry["probability"] for entry in p["top_k"]]
        assert len(probabilities) == 10 and sum(probabilities) == pytest.approx(1, abs=1e-4)
        assert probabilities == sorted(probabilities, reverse=True)
        quads = np.asarray(p["regions"], dtype=np.float64)
        assert quads.shape == (pipeline.case.k, 4, 2)
        assert np.isfinite(quads).all()
        assert (np.abs(quads - [width / 2, height / 2]) < [2 * width, 2 * height]).all()  # near the image
        for quad in quads:  # a region, not a line: at least a tenth of the image's area
            assert area(quad) > 0.1 * width * height, quad
    if source != "run":  # the exports predict what the run predicts
        theirs = predictions(pipeline, "run")
        for a, b in zip(ours, theirs, strict=True):
            assert [e["class"] for e in a["top_k"]][:1] == [e["class"] for e in b["top_k"]][:1]
            np.testing.assert_allclose(
                sorted(e["probability"] for e in a["top_k"]), sorted(e["probability"] for e in b["top_k"]), atol=1e-4
            )
            np.testing.assert_allclose(a["regions"], b["regions"], atol=1e-3)


LISTINGS = {"models": "paper-cnn", "datasets": "glyphs"}  # commands that take no run, and a name they list


@pytest.mark.parametrize("command", list(LISTINGS))
def test_listings(command):
    result = run([command])
    assert result.code == 0 and LISTINGS[command] in result.out.split()


# ------------------------------------------------------------------------------------- coverage
NOT_IN_MATRIX = {  # commands that take no family, each with the tests that run it
    "demo": "trains its own affine glyph networks: tests/experiments/test_demo.py",
    "bench": "trains fixed tables on MNIST: tests/experiments/test_paper_bench.py, test_ptn_pstn_bench.py",
    "register": "trains registration networks (field3d, field, matrix families) on its own data, not a classifier: "
    "tests/registration/test_registration.py",
}


def commands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_coverage():
    built = [
        models.create("paper-cnn", input_shape=(1, 28, 28), transform=c.transform, **c.model_options)
        for c in CASES.values()
    ]
    families = {m.stn.transform.name for m in built}
    assert set(T.names()) <= families, f"families missing from the matrix: {set(T.names()) - families}"
    diffeomorphic_field = any(m.stn.transform.name == "field" and m.stn.transform.diffeomorphic for m in built)
    assert diffeomorphic_field, "field with diffeomorphic=true is missing from the matrix"
    kinds = {type(m.stn) for m in built}
    every_kind = {
        cls for cls in vars(layers).values() if isinstance(cls, type) and issubclass(cls, layers.SpatialTransformer)
    }
    assert every_kind <= kinds, f"layer kinds missing from the matrix: {every_kind - kinds}"
    probe = Pipeline("probe", Case("affine"), Path("run"), Path("images"))
    ran = {str(argv[0]) for argv in probe.steps().values()} | set(LISTINGS)
    missing = commands() - ran - set(NOT_IN_MATRIX)
    assert not missing, f"stn commands missing from the matrix: {missing}"
    stale = set(NOT_IN_MATRIX) - (commands() - ran)
    assert not stale, f"NOT_IN_MATRIX names commands that are gone or in the matrix: {stale}"
    from tests.test_volume_commands import STEPS  # the volume runs take the same commands

    volume = {str(argv[0]) for argv in STEPS.values()} | set(LISTINGS)
    missing = commands() - volume - set(NOT_IN_MATRIX)
    assert not missing, f"stn commands missing from the volume runs (tests/test_volume_commands.py): {missing}"
