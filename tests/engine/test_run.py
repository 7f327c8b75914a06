"""The run directory as one object: create, open, what it rebuilds, and evaluation that matches
what the run recorded."""

from __future__ import annotations

import json
import os
import socket

import pytest

from stn.cli import main
from stn.engine import Run, RunError, evaluate_checkpoint, from_recipe, train
from stn.engine import run as run_module


def glyph_config(**overrides):
    """A tiny glyphs run whose data set options differ from the defaults (its own seed and sizes)."""
    values = dict(
        model="paper-cnn",
        dataset="glyphs",
        dataset_options=dict(train_size=96, test_size=40, canvas=40, seed=7),
        epochs=3,
        batch_size=32,
        test_batch_size=16,
        optimizer="adam",
        lr=3e-3,
        threads=1,
        log_interval=10,
        snapshot_images=4,
    )
    return from_recipe("seed", **{**values, **overrides})


@pytest.fixture(scope="module")
def glyph_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("glyphs") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STN_CACHE", str(tmp_path_factory.mktemp("cache")))
        train(glyph_config(), run_dir)
    return run_dir


@pytest.mark.parametrize("which", ["best", "last"])
def test_evaluate_reproduces_the_recorded_accuracy(glyph_run, which):
    run = Run.open(glyph_run)
    epoch = run.checkpoint(which)["epoch"]
    recorded = next(row for row in run.metrics() if row["epoch"] == epoch)
    result, payload, path = evaluate_checkpoint(glyph_run, which)
    assert path == run.path(which) and payload["epoch"] == epoch
    assert result.total == 40  # the run's own 40 test glyphs, not the data set's default size
    assert round(result.accuracy, 2) == recorded["test_accuracy"]
    assert round(result.loss, 6) == recorded["test_loss"]


def test_the_run_rebuilds_its_own_data(glyph_run):
    run = Run.open(glyph_run)
    data = run.dataset()
    assert (len(data.train_labels), len(data.test_labels), data.input_shape) == (96, 40, (1, 40, 40))
    assert run.is_finished and not run.can_resume and run.epochs_done == 3
    summary = run.summary()
    assert summary["final_accuracy"] == run.metrics()[-1]["test_accuracy"]
    assert set(summary["transformer"]) and all(key.startswith("stn_") for key in summary["transformer"])
    logged = [line.removeprefix("stn: warning: ") for line in run.path("log").read_text().splitlines()]
    assert summary["warnings"] == [line for line in logged if line.startswith("epoch ")]  # what the log warned


def test_evaluate_command_prints_the_recorded_line(glyph_run, capsys):
    assert main(["evaluate", str(glyph_run), "--checkpoint", "last"]) == 0
    out = capsys.readouterr().out
    last = Run.open(glyph_run).metrics()[-1]
    correct = round(last["test_accuracy"] * 40 / 100)
    assert f"Accuracy: {correct}/40 " in out


def test_a_wave_1_run_directory_opens(tmp_path):
    """Wave 1 wrote config.json without a format, with `report` and `extra` (the model options)."""
    config = from_recipe("seed").to_dict()
    config.pop("model_options")
    config.update(report=True, extra={"hidden": 3})
    (tmp_path / "config.json").write_text(json.dumps(config))
    run = Run.open(tmp_path)
    assert run.format == 1 and run.config.model_options == {"hidden": 3}
    assert run.metrics() == [] and not run.can_resume


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "does not hold a config"),
        ('{"epochs": "many"}', "epochs must be a positive integer"),
        ('{"lr": -1}', "lr must be a positive number"),
        ('{"optimizer": "lbfgs"}', "optimizer must be one of"),
        ('{"wobble": 1}', "unknown config keys: wobble"),
        ('{"format": 99}', "run format 99"),
    ],
)
def test_a_damaged_config_is_one_line(tmp_path, text, message):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(RunError, match=message):
        Run.open(tmp_path)


def test_a_second_writer_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path):
    run = Run.create(tmp_path / "run", from_recipe("seed"))
    with run.lock():
        with pytest.raises(RunError, match="in use by another stn process"):
            Run.create(tmp_path / "run", from_recipe("seed"))
        with pytest.raises(RunError, match="in use"), run.lock():
            pass
    assert not run.path("lock").exists()
    run.path("lock").write_text("999999999 " + __import__("socket").gethostname() + "\n")  # no such process
    with run.lock():
        assert run.path("lock").read_text().split()[0] != "999999999"


def test_a_lock_whose_pid_is_another_process_now_is_taken_over(tmp_path):
    """The pid is alive but started after the lock was written: the pid was reused."""
    run = Run.create(tmp_path / "run", from_recipe("seed"))
    me, host = os.getpid(), socket.gethostname()
    if run_module._process_start(me) is None:
        pytest.skip("no /proc: start times cannot be read here")
    run.path("lock").write_text(f"{me} {host} 1\n")  # our pid, but a start time that is not ours
    with run.lock():
        assert run.path("lock").read_text().split()[2] == run_module._process_start(me)
    run.path("lock").write_text(f"{me} {host} {run_module._process_start(me)}\n")  # truly ours: live
    with pytest.raises(RunError, match=f"in use by another stn process \\(pid {me} on {host}\\)"), run.lock():
        pass


def test_a_lock_from_another_host_is_refused_with_how_to_clear_it(tmp_path):
    run = Run.create(tmp_path / "run", from_recipe("seed"))
    run.path("lock").write_text("4242 gpu-node-7 123\n")
    with pytest.raises(RunError, match=r"locked by process 4242 on host gpu-node-7.*delete .*\.lock and try again"):
        Run.create(tmp_path / "run", from_recipe("seed"))
    with pytest.raises(RunError, match="cannot be checked from here"), run.lock():
        pass


def test_a_format_2_run_opens_with_its_data_set_options_moved(tmp_path):
    """Format 2 kept image_size and fresh_distortions as config fields; they are data set options now."""
    saved = from_recipe("seed", dataset="folder").to_dict()
    del saved["tensorboard"]
    saved.update(format=2, image_size=[20, 24], fresh_distortions=False)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    run = Run.open(tmp_path)
    assert run.format == 2 and run.config.dataset_options == {"image_size": [20, 24]}
    saved.update(dataset="mnist-rts", image_size=None, fresh_distortions=True, dataset_options={"seed": 3})
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert Run.open(tmp_path).config.dataset_options == {"fresh_distortions": True, "seed": 3}
