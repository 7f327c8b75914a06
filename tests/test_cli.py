"""The ``stn`` command: help everywhere, one-line errors with exit 2, train -> evaluate -> resume."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from stn.cli import main


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["export"], ["models"], ["datasets"]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0 and "usage: stn" in capsys.readouterr().out


def test_listings(capsys):
    code, out, _ = run(["models"], capsys)
    assert code == 0 and "seed-cifar" in out and "tutorial-mnist" in out
    code, out, _ = run(["datasets"], capsys)
    assert code == 0 and "cifar10" in out and "fashion-mnist" in out and "folder" in out


def test_train_evaluate_and_resume(bars, tmp_path, capsys):
    run_dir = tmp_path / "run"
    base = [
        "train",
        "--model",
        "tutorial-mnist",
        "--dataset",
        "folder",
        "--data-root",
        bars,
        "--batch-size",
        "16",
        "--log-interval",
        "3",
        "--threads",
        "1",
        "--out",
        run_dir,
        "--no-report",
        "--no-progress",
    ]
    code, out, err = run([*base, "--epochs", "1"], capsys)
    assert code == 0, err
    assert "Train Epoch: 1 [0/96 (0%)]\tLoss: " in out and "\nTest set: Average loss: " in out
    assert f"Run directory: {run_dir}" in out

    code, out, err = run(["evaluate", run_dir], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].startswith("Test set: Average loss: ") and lines[1].endswith("%)")
    assert lines[2].strip().startswith("horizontal") and lines[3].strip().startswith("vertical")

    code, _, err = run([*base, "--epochs", "1"], capsys)  # the same --out again: refuse, keep the run
    assert code == 2 and "already holds a run" in err and (run_dir / "last.pt").is_file()

    code, _, err = run(["train", "--resume", run_dir, "--no-progress"], capsys)  # nothing left to do
    assert code == 2 and "is finished (1 of 1 epochs)" in err
    code, _, err = run(["train", "--resume", run_dir, "--epochs", "2", "--lr", "0.5"], capsys)
    assert code == 2 and "would change: --lr" in err
    code, out, err = run(["train", "--resume", run_dir, "--epochs", "2", "--no-progress", "--no-report"], capsys)
    assert code == 0, err
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == 2
    assert "Resuming" in out and "Train Epoch: 2 [0/96 (0%)]" in out and "Train Epoch: 1 " not in out
    assert torch.load(run_dir / "last.pt", weights_only=True)["epoch"] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--model", "resnet-9000"], "unknown model 'resnet-9000'"),
        (["train", "--dataset", "imagenet"], "unknown data set 'imagenet'"),
        (["train", "--lr", "abc"], "argument --lr: expected a number, got 'abc'"),
        (["train", "--lr", "nan"], "expected a finite number"),
        (["train", "--lr", "-0.1"], "lr must be a positive number"),
        (["train", "--epochs", "0"], "epochs must be a positive integer"),
        (["train", "--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
        (["train", "--transform", "wobble", "--dataset", "folder", "--data-root", "{bars}"], "unknown transform"),
        (["train", "--dataset", "folder", "--data-root", "{tmp}/nowhere"], "no image folder"),
        (["train", "--dataset", "mnist", "--data-root", "{tmp}"], "mnist not found; looked for"),
        (["train", "--resume", "{tmp}"], "is not a run directory (it has no config.json)"),
        (["train", "--resume", "{tmp}", "--recipe", "fast"], "drop --recipe"),
        (["train", "--device", "tpu", "--dataset", "folder", "--data-root", "{bars}"], "unknown device"),
        (["evaluate", "{tmp}/missing.pt"], "no such run directory or checkpoint"),
        (["evaluate", "{tmp}/junk.pt"], "not a readable checkpoint"),
        (["evaluate", "{tmp}/foreign.pt"], "not an stn checkpoint"),
        (["export", "{tmp}/junk.pt"], "not a readable checkpoint"),
        (["export", "{tmp}", "--opset", "11"], "is not a run directory"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, bars, tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    argv = [a.format(tmp=tmp_path, bars=bars) for a in argv]
    code, _, err = run(
        [*argv, "--out", tmp_path / "out"] if argv[0] == "train" and "--resume" not in argv else argv, capsys
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err and "Traceback" not in err


def test_console_script_exits_2_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "stn.cli", "evaluate", str(tmp_path / "nothing")], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.startswith("stn: error: no such run directory") and "Traceback" not in result.stderr


def test_sigterm_ends_a_run_like_ctrl_c(bars, tmp_path, capsys, monkeypatch):
    import os
    import signal

    import stn.engine

    def killed(cfg, run_dir, resume=False, **options):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(stn.engine, "train", killed)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        argv = ["train", "--dataset", "folder", "--data-root", bars, "--out", tmp_path / "run", "--no-progress"]
        code, _, err = run(argv, capsys)
    finally:
        signal.signal(signal.SIGTERM, previous)
    # Killed before an epoch was saved: nothing to resume, and it says so.
    assert code == 130 and "before the first epoch finished" in err and "--resume" not in err
