"""Curves from metrics.csv, one colour per run."""

from __future__ import annotations

import pytest
from PIL import Image

from stn.viz.curves import plot_curves, read_metrics, run_labels

CSV = "epoch,train_loss,test_loss,test_accuracy,seconds\n1,2.0,1.5,40.0,1.0\n2,1.0,0.9,70.5,2.0\n"


def run(path, text: str | None = CSV):
    """A run directory with the default config and ``text`` as its metrics.csv (none for ``None``)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    if text is not None:
        (path / "metrics.csv").write_text(text)
    return path


def test_read_metrics_gives_numbers_per_epoch(tmp_path):
    metrics = read_metrics(run(tmp_path / "a"))
    assert metrics["epoch"] == [1.0, 2.0] and metrics["test_accuracy"] == [40.0, 70.5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "no finished epoch yet"),
        ("epoch,x\n1,2\n", "lacks columns"),
        (CSV.replace("70.5", "n/a"), "damaged"),
        (CSV[:-8], "damaged"),  # cut mid-line
    ],
)
def test_read_metrics_names_the_problem(tmp_path, text, message):
    folder = run(tmp_path / "a", text)
    with pytest.raises(ValueError, match=message):
        read_metrics(folder)


def test_several_runs_on_one_png(tmp_path):
    runs = [run(tmp_path / "stn"), run(tmp_path / "no-stn", CSV.replace("70.5", "60.0"))]
    path = plot_curves(runs, tmp_path / "out" / "curves.png")
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.size == (1100, 400)
        assert len(picture.convert("RGB").getcolors(1 << 20)) > 50  # drawn, not blank


def test_labels_are_folder_names_made_distinct(tmp_path):
    assert run_labels([tmp_path / "x" / "run", tmp_path / "y" / "run"]) == ["x/run", "y/run"]
    assert run_labels([tmp_path / "stn", tmp_path / "base"]) == ["stn", "base"]
    with pytest.raises(ValueError, match="labels"):
        plot_curves([run(tmp_path / "a")], tmp_path / "c.png", labels=["a", "b"])


@pytest.mark.parametrize("epochs", [1, 2, 3, 7, 50])
def test_epoch_ticks_are_whole_numbers(tmp_path, monkeypatch, epochs):
    import stn.viz.curves

    drawn = []

    class Recorded(stn.viz.curves.Figure):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            drawn.append(self)

    monkeypatch.setattr(stn.viz.curves, "Figure", Recorded)
    rows = "".join(f"{e},{2 / e},{1.5 / e},{40 + e / 2},{e}\n" for e in range(1, epochs + 1))
    plot_curves([run(tmp_path / "a", CSV.split("\n")[0] + "\n" + rows)], tmp_path / "curves.png")
    for axes in drawn[0].axes:
        low, high = axes.get_xlim()
        ticks = [t for t in axes.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert 1 in ticks or epochs > 20
