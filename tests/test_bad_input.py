"""Bad input through the ``stn`` command: every case is one line on stderr, exit 2, no traceback, and a
run directory that existed before is byte-identical after.

The cases are listed in ``CASES`` (argv templates and the words the one line must hold); the cases
that need more set-up (locks, data sets, damaged files) are tests of their own below.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stn.cli import main
from stn.engine import Run

from .conftest import make_bars_folder

TRAIN = ["--model", "tutorial-mnist", "--batch-size", "16", "--threads", "1", "--no-report", "--no-progress"]


def digests(*folders: Path) -> dict[str, str]:
    """sha256 of every file under ``folders`` (hidden files included), by path."""
    found = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
    return found


def refused(argv, capsys, message: str, *keep: Path) -> str:
    """Run ``stn argv``; check one line on stderr holding ``message``, exit 2, no traceback, and
    every file under ``keep`` unchanged. Returns the line."""
    before = digests(*keep)
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("stn: ") and "Traceback" not in err and "Traceback" not in out
    assert message in err, err
    assert digests(*keep) == before
    return err.strip()


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """A finished 1-epoch run of tutorial-mnist on a bars folder: (run directory, data folder)."""
    root = tmp_path_factory.mktemp("finished")
    bars = make_bars_folder(root / "bars", train=24, test=8)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STN_CACHE", str(root / "cache"))
        mp.setenv("STN_NO_DOWNLOAD", "1")
        code = main(
            [
                "train",
                *TRAIN,
                "--dataset",
                "folder",
                "--data-root",
                str(bars),
                "--epochs",
                "1",
                "--out",
                str(root / "run"),
            ]
        )
    assert code == 0
    return root / "run", bars


@pytest.fixture
def run_dir(finished, tmp_path) -> Path:
    """A fresh copy of the finished run."""
    return Path(shutil.copytree(finished[0], tmp_path / "run"))


@pytest.fixture
def unfinished(run_dir) -> Path:
    """A copy of the finished run that asks for 3 epochs: resumable."""
    run = Run.open(run_dir)
    run.config.epochs = 3
    run.write_config()
    return run_dir


@pytest.fixture
def data(finished) -> Path:
    return finished[1]


# ----------------------------------------------------------------------------- the table
# {run}: a finished run (checked byte-identical), {data}: its bars folder, {tmp}: the test's folder.
CASES = {
    # flags of every kind of `stn train`
    "unknown flag": (["train", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    "flag without its value": (["train", "--lr"], "argument --lr: expected one argument"),
    "int: not a number": (["train", "--epochs", "ten"], "argument --epochs: invalid int value: 'ten'"),
    "int: a fraction": (["train", "--batch-size", "1.5"], "argument --batch-size: invalid int value: '1.5'"),
    "int: zero epochs": (["train", "--epochs", "0"], "epochs must be a positive integer"),
    "int: negative batch": (["train", "--batch-size", "-4"], "batch-size must be a positive integer, got -4"),
    "int: negative threads": (["train", "--threads", "-1"], "threads"),
    "int: zero log interval": (["train", "--log-interval", "0"], "log-interval must be a positive integer, got 0"),
    "float: not a number": (["train", "--lr", "abc"], "argument --lr: expected a number, got 'abc'"),
    "float: nan": (["train", "--lr", "nan"], "expected a finite number"),
    "float: inf": (["train", "--momentum", "inf"], "expected a finite number"),
    "float: negative lr": (["train", "--lr", "-0.1"], "lr must be a positive number"),
    "float: momentum above 1": (["train", "--momentum", "1.5"], "momentum must be below 1, got 1.5"),
    "float: label smoothing 1": (["train", "--label-smoothing", "1"], "label-smoothing must be below 1, got 1.0"),
    "float: negative weight decay": (["train", "--weight-decay", "-1"], "weight-decay must be a number >= 0, got -1.0"),
    "size: letters": (["train", "--image-size", "axb"], "expected a size like 32 or 32x48 (HxW), got 'axb'"),
    "size: zero": (["train", "--image-size", "0"], "expected a size like 32 or 32x48"),
    "size: three parts": (["train", "--image-size", "2x3x4"], "expected a size like 32 or 32x48"),
    "bool: given a value": (["train", "--stn=yes"], "argument --stn/--no-stn: ignored explicit argument 'yes'"),
    "choice: optimizer": (["train", "--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
    "choice: amp": (["train", "--amp", "fp8"], "invalid choice: 'fp8'"),
    "choice: recipe": (["train", "--recipe", "slow"], "invalid choice: 'slow'"),
    "key=value: no =": (["train", "--dataset-option", "seed"], "expected KEY=VALUE, got 'seed'"),
    "key=value: no key": (["train", "--model-option", "=3"], "expected KEY=VALUE, got '=3'"),
    "dataset option unknown": (
        ["train", "--dataset", "folder", "--data-root", "{data}", "--dataset-option", "colour=1"],
        "colour",
    ),
    "dataset option wrong type": (
        ["train", "--dataset", "folder", "--data-root", "{data}", "--dataset-option", "skip_bad_images=3"],
        "skip_bad_images",
    ),
    # names that are not registered
    "unknown model": (["train", "--model", "resnet-9000"], "unknown model 'resnet-9000'"),
    "unknown dataset": (["train", "--dataset", "imagenet"], "unknown data set 'imagenet'"),
    "unknown transform": (
        ["train", "--transform", "wobble", "--dataset", "folder", "--data-root", "{data}"],
        "unknown transform",
    ),
    "unknown device": (["train", "--device", "tpu", "--dataset", "folder", "--data-root", "{data}"], "unknown device"),
    "absent device": (["train", "--device", "cuda:7", "--dataset", "folder", "--data-root", "{data}"], "cuda"),
    # data
    "missing folder": (["train", "--dataset", "folder", "--data-root", "{tmp}/nowhere"], "no image folder"),
    "missing mnist": (["train", "--dataset", "mnist", "--data-root", "{tmp}"], "mnist not found; looked for"),
    "image size of mnist": (["train", "--dataset", "mnist", "--image-size", "20"], "image_size"),
    # run directories
    "out inside a file": (
        ["train", "--dataset", "folder", "--data-root", "{data}", "--out", "{tmp}/notes.txt/run"],
        "notes.txt is a file",
    ),
    "out is a file": (
        ["train", "--dataset", "folder", "--data-root", "{data}", "--out", "{tmp}/notes.txt"],
        "is a file, not a run directory",
    ),
    "out holds a run": (
        ["train", "--dataset", "folder", "--data-root", "{data}", "--out", "{run}"],
        "already holds a run",
    ),
    "resume a finished run": (["train", "--resume", "{run}"], "is finished (1 of 1 epochs)"),
    "resume changing flags": (
        ["train", "--resume", "{run}", "--epochs", "2", "--lr", "0.5", "--seed", "3"],
        "would change: --lr, --seed",
    ),
    "resume with --out": (["train", "--resume", "{run}", "--out", "{tmp}/x"], "drop --out"),
    "resume with --recipe": (["train", "--resume", "{run}", "--recipe", "fast"], "drop --recipe"),
    "resume no run": (["train", "--resume", "{tmp}"], "is not a run directory (it has no config.json)"),
    "resume missing": (["train", "--resume", "{tmp}/nowhere"], "no such run directory"),
    "resume a file": (["train", "--resume", "{tmp}/notes.txt"], "no such run directory"),
    # evaluate, export
    "evaluate missing": (["evaluate", "{tmp}/missing.pt"], "no such run directory or checkpoint"),
    "evaluate text": (["evaluate", "{tmp}/notes.pt"], "notes.pt is not a readable checkpoint"),
    "evaluate empty": (["evaluate", "{tmp}/empty.pt"], "it is empty (0 bytes)"),
    "evaluate foreign": (["evaluate", "{tmp}/foreign.pt"], "not an stn checkpoint"),
    "evaluate pickle that runs code": (["evaluate", "{tmp}/evil.pt"], "evil.pt is not a readable checkpoint"),
    "evaluate no run": (["evaluate", "{tmp}"], "is not a run directory"),
    "evaluate unknown dataset": (["evaluate", "{run}", "--dataset", "imagenet"], "unknown data set 'imagenet'"),
    "evaluate other shape": (["evaluate", "{run}", "--dataset", "cifar10", "--data-root", "{tmp}"], "cifar10"),
    "evaluate bad device": (["evaluate", "{run}", "--device", "tpu"], "unknown device"),
    "evaluate bad checkpoint name": (["evaluate", "{run}", "--checkpoint", "first"], "invalid choice: 'first'"),
    "evaluate zero batch": (["evaluate", "{run}", "--batch-size", "0"], "expected a positive integer"),
    "export text": (["export", "{tmp}/notes.pt"], "not a readable checkpoint"),
    "export bad opset": (["export", "{run}", "--opset", "11", "--out", "{tmp}/m.onnx"], "opset"),
    "export opset of pt2": (
        ["export", "{run}", "--format", "pt2", "--opset", "17", "--out", "{tmp}/m.pt2"],
        "--opset is for --format onnx",
    ),
    # visualize, report
    "visualize no run": (["visualize", "{tmp}"], "is not a run directory"),
    "visualize too many": (
        ["visualize", "{run}", "--count", "100000", "--out", "{tmp}/fig"],
        "count 100000 is too many to draw; at most 1024",
    ),
    "report no run": (["report", "{tmp}/nowhere"], "no such run directory: "),
    # predict
    "predict missing image": (["predict", "{run}", "{tmp}/missing.png"], "missing.png"),
    "predict text as image": (["predict", "{run}", "{tmp}/notes.png"], "notes.png"),
    "predict truncated image": (["predict", "{run}", "{tmp}/cut.png"], "cut.png"),
    "predict boxes without out": (["predict", "{run}", "{tmp}/notes.png", "--boxes"], "give --out DIR"),
    "predict bad top-k": (["predict", "{run}", "{tmp}/notes.png", "--top-k", "0"], "expected a positive integer"),
    "predict text model": (["predict", "{tmp}/notes.pt", "{tmp}/notes.png"], "notes.pt"),
    # no command at all
    "unknown command": (["frobnicate"], "invalid choice: 'frobnicate'"),
}


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def damaged_files(tmp: Path) -> None:
    (tmp / "notes.txt").write_text("not a folder\n")
    (tmp / "notes.pt").write_text("These are my notes about the run.\n")
    (tmp / "notes.png").write_text("not an image\n")
    (tmp / "empty.pt").write_bytes(b"")
    torch.save({"state_dict": {}}, tmp / "foreign.pt")
    import pickle

    (tmp / "evil.pt").write_bytes(pickle.dumps({"model": _Evil()}))
    picture = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(picture).save(tmp / "cut.png")
    (tmp / "cut.png").write_bytes((tmp / "cut.png").read_bytes()[:200])


@pytest.mark.parametrize("name", list(CASES))
def test_case(name, run_dir, data, tmp_path, capsys, monkeypatch):
    argv, message = CASES[name]
    work = tmp_path / "work"
    work.mkdir()
    damaged_files(work)
    monkeypatch.chdir(work)
    argv = [a.format(run=run_dir, data=data, tmp=work) for a in argv]
    refused(argv, capsys, message, run_dir, data, work)
    assert not (work / "pwned").exists() and not (work / "nowhere").exists()


# ------------------------------------------------------------ a failed train leaves nothing
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device", "tpu"], "unknown device"),
        (["--transform", "wobble"], "unknown transform"),
        (["--model", "resnet-9000"], "unknown model"),
        (["--data-root", "{tmp}/nowhere"], "no image folder"),
        (["--dataset-option", "colour=1"], "colour"),
        (["--drop-last", "--batch-size", "1000"], "leaves no batch"),
    ],
)
def test_failed_train_makes_no_run_directory(flags, message, data, tmp_path, capsys):
    out = tmp_path / "out" / "run"
    flags = [f.format(tmp=tmp_path) for f in flags]
    refused(["train", *TRAIN, "--dataset", "folder", "--data-root", data, *flags, "--out", out], capsys, message, data)
    assert not out.exists() and not out.parent.exists()


def test_fast_recipe_with_a_batch_larger_than_the_folder(tmp_path, capsys):
    bars = make_bars_folder(tmp_path / "bars", train=150, test=4, size=16)  # 300 training images
    line = refused(
        [
            "train",
            "--recipe",
            "fast",
            "--model",
            "tutorial-mnist",
            "--dataset",
            "folder",
            "--data-root",
            bars,
            "--image-size",
            "28",
            "--batch-size",
            "512",
            "--out",
            tmp_path / "run",
            "--no-progress",
        ],
        capsys,
        "--drop-last leaves no batch: 300 training images, batch size 512",
        bars,
    )
    assert "ZeroDivision" not in line and not (tmp_path / "run").exists()


# -------------------------------------------------------------------------- locks
@pytest.fixture
def live_pid():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()


def dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def test_second_train_into_a_locked_run_refuses(unfinished, data, live_pid, capsys):
    (unfinished / ".lock").write_text(f"{live_pid} {socket.gethostname()}\n")
    refused(["train", "--resume", unfinished, "--no-progress"], capsys, "is in use by another stn process", unfinished)
    shutil.rmtree(unfinished / "best.pt", ignore_errors=True)
    for name in ("best.pt", "last.pt", "metrics.csv", "snapshots.pt", "summary.json"):
        (unfinished / name).unlink()
    refused(
        ["train", *TRAIN, "--dataset", "folder", "--data-root", data, "--out", unfinished],
        capsys,
        "is in use by another stn process",
        unfinished,
    )


def test_a_stale_lock_does_not_block(unfinished, live_pid, capsys):
    (unfinished / ".lock").write_text(f"{dead_pid()} {socket.gethostname()}\n")
    code = main(["train", "--resume", str(unfinished), "--epochs", "2", "--no-progress", "--no-report"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Resuming" in out and not (unfinished / ".lock").exists()
    assert Run.open(unfinished).epochs_done == 2


# ------------------------------------------------------------------ damaged run files
def flip(path: Path, at: float = 0.5) -> None:
    blob = bytearray(path.read_bytes())
    blob[int(len(blob) * at)] ^= 0xFF
    path.write_bytes(bytes(blob))


DAMAGE = {
    "config not json": (lambda d: (d / "config.json").write_text("{not json"), "config.json is not valid JSON"),
    "config a list": (lambda d: (d / "config.json").write_text("[1, 2]"), "does not hold a config"),
    "config wrong type": (lambda d: (d / "config.json").write_text('{"epochs": "ten"}'), "epochs"),
    "config unknown key": (lambda d: (d / "config.json").write_text('{"colour": 1}'), "colour"),
    "metrics cut": (lambda d: (d / "metrics.csv").write_bytes((d / "metrics.csv").read_bytes()[:-9]), "damaged"),
    "best cut": (lambda d: (d / "best.pt").write_bytes((d / "best.pt").read_bytes()[:5000]), "best.pt is not a"),
    "best flipped": (lambda d: flip(d / "best.pt"), "best.pt is not a readable checkpoint"),
    "last cut": (lambda d: (d / "last.pt").write_bytes((d / "last.pt").read_bytes()[:-100]), "last.pt is not a"),
    "summary not json": (lambda d: (d / "summary.json").write_text("{"), "summary.json is not valid JSON"),
}
READS = {  # which damage each command meets (it reads that file)
    "evaluate": ["config not json", "config a list", "config wrong type", "config unknown key", "best cut",
                 "best flipped"],
    "report": ["config not json", "config a list", "metrics cut", "best cut", "best flipped", "summary not json"],
    "visualize": ["config not json", "config a list", "config wrong type", "metrics cut", "best cut", "best flipped"],
    "resume": ["config not json", "config a list", "config wrong type", "config unknown key", "metrics cut",
               "last cut"],
    "inspect": ["config not json", "config a list", "metrics cut"],
}  # fmt: skip


@pytest.mark.parametrize(("command", "damage"), [(c, d) for c, names in READS.items() for d in names])
def test_damaged_run_files(command, damage, run_dir, capsys):
    from stn.cli import build_parser

    if command != "resume" and command not in build_parser()._subparsers._group_actions[0].choices:
        pytest.skip(f"no stn {command} in this version")
    write, message = DAMAGE[damage]
    write(run_dir)
    argv = {
        "evaluate": ["evaluate", run_dir],
        "report": ["report", run_dir],
        "visualize": ["visualize", run_dir],
        "resume": ["train", "--resume", run_dir, "--epochs", "5", "--no-progress"],
        "inspect": ["inspect", run_dir],
    }[command]
    refused(argv, capsys, message, run_dir)


# ------------------------------------------------------------------ data sets
def test_evaluate_an_mnist_run_on_fashion_mnist(tmp_path, capsys, monkeypatch):
    from .data.official_files import trust_idx
    from .data.test_readers import write_mnist

    write_mnist(tmp_path / "digits", train=40, test=20)  # at the root, where fashion-mnist looks too
    trust_idx(monkeypatch, "mnist", tmp_path / "digits")
    run = tmp_path / "run"
    code = main(
        [
            "train",
            *TRAIN,
            "--dataset",
            "mnist",
            "--data-root",
            str(tmp_path / "digits"),
            "--epochs",
            "1",
            "--out",
            str(run),
        ]
    )
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    refused(
        ["evaluate", run, "--dataset", "fashion-mnist", "--data-root", tmp_path / "digits"],
        capsys,
        "not Fashion-MNIST's",
        run,
        tmp_path / "digits",
    )


@pytest.fixture
def broken_folder(tmp_path) -> Path:
    bars = make_bars_folder(tmp_path / "bars", train=12, test=4)
    for i in range(3):
        picture = np.random.default_rng(i).integers(0, 256, (28, 28, 3), dtype=np.uint8)
        path = bars / "train" / "vertical" / f"broken{i}.jpg"
        Image.fromarray(picture).save(path, quality=90)
        path.write_bytes(path.read_bytes()[:-400])
    return bars


def test_a_folder_with_truncated_jpegs_names_them(broken_folder, tmp_path, capsys):
    line = refused(
        ["train", *TRAIN, "--dataset", "folder", "--data-root", broken_folder, "--out", tmp_path / "run"],
        capsys,
        "broken0.jpg",
        broken_folder,
    )
    assert "broken1.jpg" in line and "broken2.jpg" in line and "--skip-bad-images" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag", [["--skip-bad-images"], ["--dataset-option", "skip_bad_images=true"]])
def test_skip_bad_images_goes_on(flag, broken_folder, tmp_path, capsys):
    before = digests(broken_folder)
    code = main(
        [
            str(a)
            for a in [
                "train",
                *TRAIN,
                "--dataset",
                "folder",
                "--data-root",
                broken_folder,
                *flag,
                "--epochs",
                "1",
                "--out",
                tmp_path / "run",
            ]
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "skipped 3 unreadable" in out + err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dataset_options"] == {"skip_bad_images": True}
    assert digests(broken_folder) == before


# ------------------------------------------------------------------ a full disk
def test_a_full_disk_while_saving_an_epoch_keeps_the_run(unfinished, capsys, monkeypatch):
    import errno

    import stn.files

    saved = {name: (unfinished / name).read_bytes() for name in ("last.pt", "best.pt", "metrics.csv", "config.json")}

    write_atomic = stn.files.write_atomic

    def full(path, write):  # the run directory's disk is full (the data cache lives elsewhere)
        def no_space(file):
            file.write(b"\x00" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")

        return write_atomic(path, no_space if Path(path).parent == unfinished else write)

    with monkeypatch.context() as mp:
        mp.setattr(stn.files, "write_atomic", full)
        code = main(["train", "--resume", str(unfinished), "--no-progress", "--no-report"])
    out, err = capsys.readouterr()
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "could not write" in err and "last.pt: No space left on device" in err
    assert "saved up to epoch 1 (last.pt, best.pt, metrics.csv intact)" in err
    assert f"resume with: stn train --resume {unfinished}" in err
    assert {name: (unfinished / name).read_bytes() for name in saved} == saved
    assert not list(unfinished.glob(".*.tmp")) and not (unfinished / ".lock").exists()

    code = main(["train", "--resume", str(unfinished), "--epochs", "2", "--no-progress", "--no-report"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Train Epoch: 2 " in out and Run.open(unfinished).epochs_done == 2


def test_predict_skips_bad_images_when_asked(run_dir, tmp_path, capsys):
    damaged_files(tmp_path)
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(good)
    argv = ["predict", run_dir, good, tmp_path / "cut.png", tmp_path / "notes.png"]
    refused(argv, capsys, "cut.png", run_dir, tmp_path)
    before = digests(run_dir)
    code = main([str(a) for a in [*argv, "--skip-bad-images"]])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "1 image, 2 skipped (unreadable)" in out and "cut.png" in err and "notes.png" in err
    assert digests(run_dir) == before
