"""report.md and report.html for one run or several, and the ``stn visualize`` / ``stn report``
commands."""

from __future__ import annotations

import re
import shutil

import pytest
from PIL import Image

from stn.cli import main
from stn.engine import Run
from stn.viz.report import run_summary, write_report
from tests.conftest import make_bars_folder


def links(markdown: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)


def test_one_run(trained):
    run = trained("affine")
    path = write_report([run])
    assert path == run / "report.md"
    markdown, page = path.read_text(), (run / "report.html").read_text()
    summary = run_summary(run)
    assert f"{summary['final_accuracy']:.2f}" in markdown and "Per-class accuracy" in markdown
    assert "| horizontal |" in markdown and "| vertical |" in markdown  # the classes, one row each
    assert "| transform | affine |" in markdown  # the config
    pictures = links(markdown)
    assert {p.rsplit("/", 1)[-1] for p in pictures} == {
        "curves.png",
        "before_after.png",
        "regions.png",
        "learning.gif",
        "learning.png",
        "statistics.png",
        "histograms.png",
    }
    assert "Transformer statistics" in markdown and "Warnings: " in markdown
    for link in pictures:
        with Image.open(run / link) as picture:
            assert picture.width > 100
    # The HTML stands alone: every picture inline, none linked.
    assert page.count("<img ") == len(pictures) and "figures/" not in page
    assert page.count('src="data:image/png;base64,') == 6 and page.count('src="data:image/gif;base64,') == 1


def test_several_runs_in_their_own_folder(trained, tmp_path):
    runs = [trained("affine"), trained("no-stn"), trained("featuremap")]
    path = write_report(runs, tmp_path / "compare")
    markdown = path.read_text()
    assert path == tmp_path / "compare" / "report.md" and (tmp_path / "compare" / "report.html").is_file()
    for link in links(markdown):
        assert (path.parent / link).is_file()
    assert links(markdown)[0] == "figures/curves.png"  # all runs on one plot
    assert (tmp_path / "compare" / "figures" / "affine" / "before_after.png").is_file()
    assert "| no-stn | tutorial-mnist | folder | none |" in markdown
    assert "no spatial transformer" in markdown and "feature map" in markdown
    assert not (tmp_path / "compare" / "figures" / "featuremap" / "before_after.png").exists()
    assert not (tmp_path / "compare" / "figures" / "no-stn").exists()


def test_an_unfinished_run_is_summarised_from_its_metrics_and_checkpoint(trained, tmp_path):
    run = shutil.copytree(trained("tps"), tmp_path / "unfinished")
    (run / "summary.json").unlink()
    summary = run_summary(run)
    assert summary["epochs_done"] == 3 and set(summary["per_class_accuracy"]) == {"horizontal", "vertical"}
    assert summary["transformer"] == "tps"
    assert "Per-class accuracy" in write_report([run]).read_text()


def test_report_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="at least one run"):
        write_report([])
    with pytest.raises(ValueError, match="is not a run directory"):
        write_report([tmp_path])


def test_visualize_and_report_commands(trained, tmp_path, capsys):
    run = trained("affine")
    assert main(["visualize", str(run), "--out", str(tmp_path / "pictures"), "--count", "9"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "pictures" / "learning.gif") in out
    with Image.open(tmp_path / "pictures" / "before_after.png") as wide:
        assert wide.height > 3 * 84  # 9 images (more than the 6 of the snapshot batch): a 3 x 3 grid

    assert main(["visualize", str(trained("no-stn")), "--out", str(tmp_path / "none")]) == 0
    assert "no spatial transformer" in capsys.readouterr().err

    assert main(["report", str(run), str(trained("tps")), "--out", str(tmp_path / "both")]) == 0
    assert "Report: " in capsys.readouterr().out and (tmp_path / "both" / "report.html").is_file()

    assert main(["visualize", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("stn: error: no such run directory")
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["visualize", "report"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and "RUN_DIR" in capsys.readouterr().out


def test_training_ends_with_a_report(tmp_path, capsys):
    data = make_bars_folder(tmp_path / "bars", train=8, test=4)
    argv = ["train", "--model", "tutorial-mnist", "--dataset", "folder", "--data-root", str(data)]
    argv += ["--epochs", "1", "--threads", "1", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(argv) == 0
    assert f"Report: {tmp_path / 'run' / 'report.md'}" in capsys.readouterr().out
    report = (tmp_path / "run" / "report.md").read_text()
    summary = Run.open(tmp_path / "run").summary()
    assert "tutorial-mnist" in report and f"{summary['final_accuracy']:.2f}" in report
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert "figures/learning.gif" in linked and "figures/before_after.png" in linked
    for link in linked:  # every picture it shows is there, and is a picture
        with Image.open(tmp_path / "run" / link) as picture:
            assert picture.size[0] > 50 and picture.size[1] > 50
