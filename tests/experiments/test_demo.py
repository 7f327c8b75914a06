"""``stn demo`` end to end in its small size: two runs on drawn glyphs, and the report."""

from __future__ import annotations

import json

import pytest

from stn.cli import main
from stn.experiments import demo


def test_small_demo_trains_both_networks_and_writes_the_report(tmp_path, capsys):
    assert main(["demo", "--size", "small", "--out", str(tmp_path / "demo"), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "with the spatial transformer" in out and "Report: " in out
    assert "Train Epoch: 1 [0/2000 (0%)]" in out and "Test set: Average loss: " in out  # progress, seed format

    runs = {name: tmp_path / "demo" / name for name in ("with-stn", "without-stn")}
    for name, run in runs.items():
        config = json.loads((run / "config.json").read_text())
        assert config["dataset"] == "glyphs" and config["model"] == "paper-cnn"
        assert config["stn"] == (name == "with-stn")
        assert json.loads((run / "summary.json").read_text())["epochs"] == demo.SIZES["small"].epochs
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "with-stn" in report and "without-stn" in report
    assert (tmp_path / "demo" / "report.html").is_file()
    pictures = {p.name for p in (tmp_path / "demo" / "figures").rglob("*") if p.is_file()}
    assert {"curves.png", "learning.gif"} <= pictures and any("before" in p for p in pictures)

    with pytest.raises(ValueError, match="already holds a run"):
        demo.run(tmp_path / "demo", size="small", threads=1, report=False, log=lambda line: None)
    assert main(["demo", "--size", "huge"]) == 2
