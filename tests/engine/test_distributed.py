"""Data-parallel training (torchrun, gloo on the CPU): two processes train what one trains, one
writer, checkpoints that resume on any number of processes, and a killed rank leaves a
resumable run. Each test starts real processes, so they take seconds, not milliseconds."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from stn import data as stn_data
from stn.engine import DeviceData, Run, train
from stn.engine.distributed import Group

from .test_train import tiny_config

SRC = str(Path(__file__).resolve().parents[2] / "src")
# How far the logged losses of one and two processes may drift apart, per precision: the sums run in
# another order. fp32: identical to the printed 6 digits for the first steps, then up to 2.2e-4 over
# 32 steps of SGD with momentum; bf16 autocast rounds every product to 8 bits of mantissa and drifts
# up to about 7.5e-3 by epoch 2. The bounds have wide margins over both.
LOSS_TOLERANCE = {"off": 2e-3, "bf16": 3e-2}


def _flags(root, **overrides) -> list[str]:
    values = dict(
        model="paper-fcn",
        dataset="folder",
        data_root=str(root),
        epochs=2,
        batch_size=13,  # 96 images: the last batch (5) splits unevenly over 2 ranks
        test_batch_size=7,
        log_interval=1,
        optimizer="adam",
        lr=1e-3,
        augment="crop-flip",
        threads=1,
        snapshot_images=4,
        device="cpu",
        amp="off",
    )
    values.update(overrides)
    return [f"--{k.replace('_', '-')}={v}" for k, v in values.items()]


def _config(root, **overrides):
    values = dict(epochs=2, batch_size=13, test_batch_size=7, log_interval=1, optimizer="adam", lr=1e-3, amp="off")
    return tiny_config(root, **{**values, "model": "paper-fcn", "augment": "crop-flip", **overrides})


def _stn(*args: str, cwd: Path, **popen) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    return subprocess.Popen([sys.executable, "-m", "stn", "train", *args], cwd=cwd, env=env, text=True, **popen)


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = _stn(*args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _losses(run_dir: Path) -> list[float]:
    return [float(x) for x in re.findall(r"Loss: ([0-9.]+)", (run_dir / "train.log").read_text())]


def _test_lines(run_dir: Path) -> list[str]:
    return re.findall(r"Test set: .*", (run_dir / "train.log").read_text())


def test_one_process_is_a_group_of_one_and_imports_no_more_of_torch_distributed():
    # torch itself imports torch.distributed; stn must add none of it (no DDP, no launcher).
    code = (
        "import sys, torch; before = {m for m in sys.modules if m.startswith('torch.distributed')}; "
        "import stn, stn.engine, stn.cli; from stn.engine.distributed import Group; "
        "g = Group.from_env(); assert not g.active and g.is_main and g.part(5) == slice(0, 5); "
        "extra = {m for m in sys.modules if m.startswith('torch.distributed')} - before; "
        "assert not extra, extra"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = SRC
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_parts_cover_a_batch_once():
    for n in (1, 5, 13, 64):
        for world in (1, 2, 3):
            parts = [Group(rank, world).part(n) for rank in range(world)]
            assert [i for p in parts for i in range(n)[p]] == list(range(n))


def test_the_ranks_batches_are_the_one_process_batches_cut():
    g = torch.Generator().manual_seed(0)
    dataset = stn_data.Dataset(
        "random",
        torch.randint(0, 256, (23, 3, 8, 8), generator=g, dtype=torch.uint8),
        torch.randint(0, 4, (23,), generator=g),
        torch.randint(0, 256, (7, 3, 8, 8), generator=g, dtype=torch.uint8),
        torch.randint(0, 4, (7,), generator=g),
        classes=list("abcd"),
    )
    data = DeviceData(dataset, torch.device("cpu"))

    def batches(part=None):
        return list(data.train_batches(10, torch.Generator().manual_seed(3), "crop-flip", 2, part=part))

    whole = batches()
    for world in (2, 3):
        ranks = [batches(Group(rank, world).part) for rank in range(world)]
        for i, (images, labels) in enumerate(whole):  # batches of 10, 10, 3: the last splits unevenly
            assert torch.equal(torch.cat([r[i][0] for r in ranks]), images)
            assert torch.equal(torch.cat([r[i][1] for r in ranks]), labels)
        tests = [torch.cat([y for _, y in data.test_batches(3, Group(rank, world).part(7))]) for rank in range(world)]
        assert torch.equal(torch.cat(tests), dataset.test_labels)


def _complaints(stderr: str) -> list[str]:
    """Lines of ``stderr`` that report a problem (torch's harmless warnings are not among them)."""
    return [line for line in stderr.splitlines() if line.startswith("stn:") or "Traceback" in line or "rror" in line]


def test_two_processes_train_as_one_in_bf16_too(bars, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    train(_config(bars, amp="bf16", epochs=2), one, stream=open(os.devnull, "w"))  # noqa: SIM115
    done = _run("--nproc-per-node", "2", *_flags(bars, amp="bf16"), "--out", "two", "--no-report", cwd=tmp_path)
    assert done.returncode == 0 and not _complaints(done.stderr), done.stderr
    assert "bf16 autocast" in (two / "train.log").read_text()
    a, b = _losses(one), _losses(two)
    assert len(a) == len(b) == 2 * 8
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < LOSS_TOLERANCE["bf16"], (a, b)


def test_two_processes_train_as_one_and_resume_on_any_number(bars, tmp_path):
    one = tmp_path / "one"
    train(_config(bars), one, stream=open(os.devnull, "w"))  # noqa: SIM115
    assert not torch.distributed.is_initialized()  # one process: no process group

    done = _run("--nproc-per-node", "2", *_flags(bars), "--out", "two", "--no-report", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    two = tmp_path / "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bars", "one", "two"]  # one run directory
    assert done.stdout.count("Run directory:") == 1 and done.stdout.count("Train Epoch: 1 [0/96") == 1
    assert not _complaints(done.stderr), done.stderr
    assert "2 processes" in (two / "train.log").read_text()
    a, b = _losses(one), _losses(two)
    assert len(a) == len(b) == 2 * 8
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < LOSS_TOLERANCE["off"], (a, b)
    assert _test_lines(one) == _test_lines(two)
    assert Run.open(two).epochs_done == 2
    again = _run("--nproc-per-node", "2", *_flags(bars), "--out", "two", "--no-report", cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.count("stn: error:") == 1, again.stderr  # said once, by rank 0
    assert "already holds a run" in again.stderr and again.stdout == ""

    # Two processes -> one, and one process -> two: both continue to epoch 3, and agree.
    train(_config(bars, epochs=3), two, resume=True, stream=open(os.devnull, "w"))  # noqa: SIM115
    done = _run("--nproc-per-node", "2", "--resume", "one", "--epochs", "3", "--no-report", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert Run.open(one).epochs_done == Run.open(two).epochs_done == 3
    a, b = _losses(one), _losses(two)
    assert len(a) == len(b) == 3 * 8
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < LOSS_TOLERANCE["off"], (a, b)


def _rank_pid(launcher: int, rank: int) -> int | None:
    """The pid of the worker with ``RANK=rank`` among the children of ``launcher``."""
    children = Path(f"/proc/{launcher}/task/{launcher}/children")
    for pid in children.read_text().split() if children.exists() else []:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return int(pid)
    return None


@pytest.mark.skipif(
    not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
    reason="finds the rank's process through /proc/PID/task/PID/children, which this kernel lacks",
)
def test_a_killed_rank_stops_the_run_and_leaves_it_resumable(bars, tmp_path):
    proc = _stn(
        "--nproc-per-node", "2", *_flags(bars, epochs=1000, log_interval=100), "--out", "run", "--no-report",
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        run_dir = tmp_path / "run"
        deadline = time.monotonic() + 120
        while not (run_dir / "metrics.csv").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        victim = _rank_pid(proc.pid, 1)
        assert victim is not None and (run_dir / "last.pt").exists(), "training did not start"
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)  # the others stop within a minute
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    assert err.count("\n") == 1, err  # one line, as the README promises
    assert "rank 1 of 2" in err and "SIGKILL" in err and "--resume run" in err, err
    assert "internal error" not in err and "Traceback" not in err, err
    run = Run.open(run_dir)
    assert run.can_resume
    done = run.epochs_done
    assert run.checkpoint("last")["epoch"] >= done  # intact: it loads, without torch.distributed
    cfg = _config(bars, epochs=done + 2, log_interval=100)
    train(cfg, run_dir, resume=True, stream=open(os.devnull, "w"))  # noqa: SIM115
    assert Run.open(run_dir).epochs_done == done + 2


def test_an_interrupted_launcher_says_so_once_and_the_run_resumes(bars, tmp_path):
    proc = _stn(
        "--nproc-per-node", "2", *_flags(bars, epochs=1000, log_interval=100), "--out", "run", "--no-report",
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        run_dir = tmp_path / "run"
        deadline = time.monotonic() + 120
        while not (run_dir / "metrics.csv").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert (run_dir / "last.pt").exists(), "training did not start"
        proc.send_signal(signal.SIGINT)  # Ctrl-C at the launcher: torchrun passes it on to the ranks
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted; the last finished epoch is saved" in lines[0], err
    assert Run.open(tmp_path / "run").can_resume


class _Failure:
    def __init__(self, exitcode: int, name: str = "") -> None:
        self.exitcode, self.name = exitcode, name

    def signal_name(self) -> str:
        return self.name


class _Failed:
    def __init__(self, failures: dict[int, _Failure]) -> None:
        self.failures = failures

    def get_first_failure(self) -> tuple[int, _Failure]:
        return min(self.failures.items())


def test_the_failure_named_is_the_one_that_stopped_the_run():
    from stn.engine.distributed import _root_failure

    killed, said, aborted = _Failure(-9, "SIGKILL"), _Failure(2), _Failure(-6, "SIGABRT")
    assert _root_failure(_Failed({0: said, 1: killed, 2: aborted})) == (1, killed)
    assert _root_failure(_Failed({0: aborted, 1: said})) == (1, said)  # rank 1 reported; rank 0 collateral
    assert _root_failure(_Failed({0: aborted, 1: _Failure(-15, "SIGTERM")})) == (0, aborted)
