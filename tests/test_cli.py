"""The ``stn`` command: help everywhere, one-line errors with exit 2, train -> evaluate -> resume."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

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


@pytest.mark.parametrize("after_epoch", [0, 1])
def test_sigterm_ends_a_run_like_ctrl_c(bars, tmp_path, capsys, monkeypatch, after_epoch):
    """A real run, sent SIGTERM during epoch 1 (nothing saved yet) or right after epoch 1 was saved."""
    import os
    import signal

    from stn.engine import loop

    def kill() -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    save, step = loop._save_epoch, loop.train_step
    if after_epoch:
        monkeypatch.setattr(loop, "_save_epoch", lambda *a, **k: (save(*a, **k), kill())[0])
    else:
        monkeypatch.setattr(loop, "train_step", lambda *a, **k: (kill(), step(*a, **k))[1])
    previous = signal.getsignal(signal.SIGTERM)
    run_dir = tmp_path / "run"
    try:
        argv = ["train", "--model", "tutorial-mnist", "--dataset", "folder", "--data-root", bars, "--epochs", "3"]
        code, _, err = run([*argv, "--out", run_dir, "--no-progress", "--amp", "off"], capsys)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 130
    if after_epoch:
        assert f"Resume with: stn train --resume {run_dir}" in err
        monkeypatch.setattr(loop, "_save_epoch", save)
        assert main(["train", "--resume", str(run_dir), "--no-progress", "--no-report"]) == 0
        assert torch.load(run_dir / "last.pt", weights_only=True)["epoch"] == 3
    else:
        assert "before the first epoch finished" in err and "--resume" not in err


# ------------------------------------------------------------- what a newcomer trips on (issue 23)
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # Names and options are checked before the data: no CIFAR-10 is needed to hear of these.
        (["train", "--transform", "nope"], "unknown transform 'nope'"),
        (["train", "--model-option", "bogus=1"], "model 'seed-cifar' does not take bogus; it takes stn, transform"),
        (["train", "--dataset-option", "seed=3"], "data set 'cifar10' does not take seed"),
        (["train", "--tta"], "unrecognized arguments: --tta (see stn train --help)"),
        (["bench", "paper", "--nope"], "unrecognized arguments: --nope (see stn bench paper --help)"),
        (["evaluate", "{tmp}/nonexistent"], "{tmp}/nonexistent does not exist"),
    ],
)
def test_the_first_problem_is_the_one_reported(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STN_DATA", str(tmp_path / "no-data-here"))
    code, _, err = run([a.format(tmp=tmp_path) for a in argv], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("stn: error: ") and "stn: error: stn:" not in err
    assert message.format(tmp=tmp_path) in err


def test_train_help_has_one_output_group(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert out.count("\noutput:") == 1 and "--tensorboard" in out and "--snapshot-images" in out


def test_export_refuses_a_suffix_that_is_not_its_format_and_writes_nothing(bars, tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "--model", "tutorial-mnist", "--dataset", "folder", "--data-root", bars, "--epochs", "1"]
    assert run([*argv, "--amp", "off", "--out", run_dir, "--no-report", "--no-progress"], capsys)[0] == 0
    for fmt, out in (("pt2", "x.onnx"), ("onnx", "z.pt2")):
        code, _, err = run(["export", run_dir, "--format", fmt, "--out", tmp_path / out], capsys)
        assert code == 2 and err.count("\n") == 1 and f"but --format is {fmt}" in err, err
        assert not (tmp_path / out).exists()
    code, out, err = run(["export", run_dir, "--format", "pt2", "--out", tmp_path / "m.pt2"], capsys)
    assert code == 0 and err == "", err  # no torch warnings about the archive
    assert "max |difference|" in out


def test_inspect_says_why_a_run_without_a_transformer_has_no_statistics(bars, tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "--model", "tutorial-mnist", "--dataset", "folder", "--data-root", bars, "--epochs", "1"]
    assert run([*argv, "--no-stn", "--out", run_dir, "--no-report", "--no-progress"], capsys)[0] == 0
    code, out, _ = run(["inspect", run_dir], capsys)
    assert code == 0 and "No transformer statistics: the model has no spatial transformer (--no-stn)." in out


def test_predict_counts_in_words_and_refuses_an_empty_folder(bars, tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "--model", "tutorial-mnist", "--dataset", "folder", "--data-root", bars, "--epochs", "1"]
    assert run([*argv, "--out", run_dir, "--no-report", "--no-progress"], capsys)[0] == 0
    one = next((bars / "test" / "vertical").iterdir())
    code, out, _ = run(["predict", run_dir, one], capsys)
    assert code == 0 and "\n1 image (pytorch" in out
    (tmp_path / "empty").mkdir()
    code, out, err = run(["predict", run_dir, tmp_path / "empty"], capsys)
    assert code == 2 and out == "" and f"no image files in {tmp_path / 'empty'}" in err


def test_tensorboard_belongs_to_the_run_and_goes_on_after_resume(bars, tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    argv = ["train", "--model", "tutorial-mnist", "--dataset", "folder", "--data-root", bars, "--epochs", "1"]
    assert run([*argv, "--out", run_dir, "--no-report", "--no-progress", "--tensorboard"], capsys)[0] == 0
    assert run(["train", "--resume", run_dir, "--epochs", "2", "--no-report", "--no-progress"], capsys)[0] == 0
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    assert [e.step for e in events.Scalars("accuracy/test")] == [1, 2]
    assert [e.step for e in events.Scalars("final/final_accuracy")] == [1, 2]  # each end once, at its epoch


def test_weights_from_the_tutorials_own_code_through_evaluate_predict_and_export(tmp_path, monkeypatch, capsys):
    """A state_dict saved by the tutorial's own Net, used with --model tutorial-mnist."""
    from tests.data.test_distorted import fake_mnist
    from tests.models.test_tutorial import Net

    root = fake_mnist(tmp_path / "data", train=20, test=10, monkeypatch=monkeypatch)
    torch.manual_seed(0)
    torch.save(Net(cifar=False).state_dict(), tmp_path / "tutorial.pth")
    weights = ["--model", "tutorial-mnist", "--data-root", root]
    code, out, err = run(["evaluate", tmp_path / "tutorial.pth", *weights], capsys)
    assert code == 0, err
    assert "Test set: Average loss: " in out and "/10 (" in out
    code, out, err = run(["export", tmp_path / "tutorial.pth", *weights, "--out", tmp_path / "t.onnx"], capsys)
    assert code == 0 and "max |difference|" in out, err
    image = tmp_path / "digit.png"
    Image.fromarray(np.full((28, 28), 200, dtype=np.uint8)).save(image)
    for target, extra in ((tmp_path / "tutorial.pth", weights), (tmp_path / "t.onnx", [])):
        code, out, err = run(["predict", target, image, *extra], capsys)
        assert code == 0 and "1 image (" in out, err
    code, _, err = run(["evaluate", tmp_path / "tutorial.pth"], capsys)  # without --model: what it is, and what to do
    assert code == 2 and "state_dict" in err


def test_an_error_raised_by_an_interruption_is_the_interruption(monkeypatch, capsys):
    # Ctrl-C while torch.save writes a checkpoint surfaces as a RuntimeError from its C++ writer.
    import os
    import signal
    import time

    from stn import cli

    def interrupted_save(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4480 vs 4400") from None

    monkeypatch.setattr(cli, "_train", interrupted_save)
    assert main(["train"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "stn: interrupted", err
    monkeypatch.setattr(cli, "_train", lambda args: 1 / 0)  # without an interruption it is a bug, as before
    assert main(["train"]) == 1 and "internal error: ZeroDivisionError" in capsys.readouterr().err
