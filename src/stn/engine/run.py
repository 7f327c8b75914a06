"""The run directory, owned by one object: :class:`Run` knows its layout and format, rebuilds the
data and the model a run used, and is the only code that names its files.

A run directory holds::

    config.json     the TrainConfig, with the directory's format version
    train.log       the training log (the seed's lines)
    metrics.csv     one row per finished epoch
    last.pt         everything needed to resume (written every epoch)
    best.pt         the model at its best test accuracy
    snapshots.pt    the transformer's view of a fixed test batch, every epoch
    summary.json    final, best and per-class accuracy, the transformers' last statistics and
                    the warnings (written when training ends)
    tensorboard/    TensorBoard event files (with ``stn train --tensorboard``)

Directories of earlier formats open too: format 1 (no format in ``config.json``) and 2 (the data
set options ``image_size`` and ``fresh_distortions`` as config fields).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import io
import json
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stn import data as stn_data
from stn.engine import checkpoint
from stn.engine.config import RESUMABLE_CHANGES, TrainConfig, resume_refusal
from stn.files import write_text_atomic

__all__ = ["FORMAT", "Run", "RunError", "load_model", "per_class_accuracy"]

FORMAT = 3
FILES = dict(
    config="config.json",
    log="train.log",
    metrics="metrics.csv",
    last="last.pt",
    best="best.pt",
    snapshots="snapshots.pt",
    summary="summary.json",
    tensorboard="tensorboard",
    lock=".lock",
)
METRIC_FIELDS = ["epoch", "train_loss", "test_loss", "test_accuracy", "seconds"]


class RunError(ValueError):
    """A run directory that is missing, damaged, busy, or asked for what it cannot do.

    Examples:
        >>> Run.open("no-such-run")
        Traceback (most recent call last):
        ...
        stn.engine.run.RunError: no such run directory: no-such-run does not exist
    """


def per_class_accuracy(classes: Sequence[str], correct: Sequence[int], total: Sequence[int]) -> dict[str, float]:
    """``{class: accuracy in %}``, rounded to 2 digits.

    Args:
        classes: the class names.
        correct: the correct predictions per class.
        total: the images per class (a class without any has accuracy 0).

    Examples:
        >>> per_class_accuracy(["cat", "dog"], [1, 2], [3, 2])
        {'cat': 33.33, 'dog': 100.0}
    """
    return {name: round(100.0 * c / max(1, t), 2) for name, c, t in zip(classes, correct, total, strict=True)}


class Run:
    """A run directory. Make one with :meth:`create`, open one with :meth:`open`.

    Args:
        path: the directory.
        config: the run's configuration.
        format: the directory's format version (:data:`FORMAT` for a new one).

    Examples:
        >>> import tempfile
        >>> from stn.engine import TrainConfig
        >>> folder = Path(tempfile.mkdtemp()) / "run"
        >>> run = Run.create(folder, TrainConfig(epochs=3))
        >>> sorted(p.name for p in folder.iterdir())
        ['config.json']
        >>> again = Run.open(folder)
        >>> again.config.epochs, again.metrics(), again.is_finished, again.can_resume
        (3, [], False, False)
    """

    def __init__(self, path: Path, config: TrainConfig, format: int = FORMAT) -> None:
        self.dir = path
        self.config = config
        self.format = format

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r}, model={self.config.model!r}, dataset={self.config.dataset!r})"

    def path(self, key: str) -> Path:
        """Where the file ``key`` (one of ``config``, ``log``, ``metrics``, ``last``, ``best``,
        ``snapshots``, ``summary``) lives."""
        return self.dir / FILES[key]

    # ------------------------------------------------------------------------------- create, open
    @staticmethod
    def holds_run(path: str | os.PathLike) -> bool:
        """Whether ``path`` holds a run that has saved a checkpoint."""
        return any((Path(path) / FILES[key]).exists() for key in ("last", "best"))

    @classmethod
    def create(cls, path: str | os.PathLike, cfg: TrainConfig, overwrite: bool = False) -> Run:
        """Make the run directory ``path`` for ``cfg`` and write its ``config.json``.

        Refuses (``RunError``) a directory that already holds a run's checkpoints (unless
        ``overwrite``), one that another process is writing, or a path that cannot be a directory."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunError(f"{path} is a file, not a run directory")
        _refuse_if_live(path / FILES["lock"], path)
        if not overwrite and cls.holds_run(path):
            raise RunError(f"{path} already holds a run; resume it with --resume {path} or pick another --out")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), path)
            raise RunError(f"cannot make run directory {path}: {blocker} is a file") from None
        except PermissionError:
            raise RunError(f"cannot make run directory {path}: permission denied") from None
        run = cls(path, cfg)
        run._write_json("config", {"format": FORMAT, **cfg.to_dict()})
        return run

    @classmethod
    def open(cls, path: str | os.PathLike) -> Run:
        """Open the run directory ``path``; ``RunError`` naming what is wrong if it is not one."""
        path = Path(path)
        if not path.is_dir():
            raise RunError(f"no such run directory: {path} does not exist")
        config_path = path / FILES["config"]
        try:
            values = json.loads(config_path.read_text())
        except FileNotFoundError:
            raise RunError(f"{path} is not a run directory (it has no {FILES['config']})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RunError(f"{config_path} is not valid JSON: {err}") from None
        if not isinstance(values, dict):
            raise RunError(f"{config_path} does not hold a config (a JSON object)")
        fmt = values.pop("format", 1)
        if fmt not in range(1, FORMAT + 1):
            raise RunError(f"{path} has run format {fmt!r}; this stn reads formats 1 to {FORMAT}")
        try:
            cfg = TrainConfig.from_dict(values)
        except (TypeError, ValueError) as err:
            raise RunError(f"{config_path}: {err}") from None
        return cls(path, cfg, fmt)

    # ------------------------------------------------------------------------------------ state
    def metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.csv``, numbers parsed; ``[]`` before the first epoch ends."""
        path = self.path("metrics")
        if not path.is_file():
            return []
        rows = []
        try:
            text = path.read_text()
            if text and not text.endswith("\n"):  # every row, the last too, ends a line when written
                raise RunError(f"{path} is damaged (it ends in the middle of a row)")
            reader = csv.DictReader(io.StringIO(text))
            if not set(METRIC_FIELDS) <= set(reader.fieldnames or ()):  # empty, or the header is cut
                raise RunError(f"{path} is damaged (its header lacks columns: needs {', '.join(METRIC_FIELDS)})")
            for row in reader:
                rows.append({k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()})
        except (ValueError, TypeError, UnicodeDecodeError, csv.Error) as err:
            if isinstance(err, RunError):
                raise
            raise RunError(f"{path} is damaged (a row is cut or not numbers)") from None
        return rows

    @property
    def epochs_done(self) -> int:
        rows = self.metrics()
        return int(rows[-1]["epoch"]) if rows else 0

    @property
    def is_finished(self) -> bool:
        """Whether every configured epoch has run."""
        return self.epochs_done >= self.config.epochs

    @property
    def can_resume(self) -> bool:
        """Whether ``--resume`` would continue it: an epoch is saved and epochs are left."""
        return self.path("last").is_file() and not self.is_finished

    def has_checkpoint(self, which: str) -> bool:
        return self.path(which).is_file()

    def checkpoint(self, which: str = "best", map_location: str | torch.device = "cpu") -> dict[str, Any]:
        """The payload of ``best.pt`` or ``last.pt`` (``best`` falls back to ``last``)."""
        if which not in ("best", "last"):
            raise ValueError(f"which must be 'best' or 'last', got {which!r}")
        if which == "best" and not self.has_checkpoint("best"):
            which = "last"
        if not self.has_checkpoint(which):
            raise RunError(f"{self.dir} holds no checkpoint yet (no epoch has finished)")
        return checkpoint.load(self.path(which), map_location=map_location)

    def model(self, which: str = "best") -> nn.Module:
        """The model of :meth:`checkpoint` ``(which)``, on the CPU, weights loaded."""
        return checkpoint.restore_model(self.checkpoint(which))

    def summary(self) -> dict[str, Any]:
        """``summary.json``; for a run still going, the same keys from ``metrics.csv`` and ``last.pt``."""
        if self.path("summary").is_file():
            try:
                return json.loads(self.path("summary").read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise RunError(f"{self.path('summary')} is not valid JSON") from None
        rows = self.metrics()
        if not rows:
            raise RunError(f"{self.dir} has no finished epoch yet")
        best = max(rows, key=lambda row: row["test_accuracy"])
        summary: dict[str, Any] = dict(
            model=self.config.model,
            dataset=self.config.dataset,
            recipe=self.config.recipe,
            epochs=self.config.epochs,
            final_accuracy=rows[-1]["test_accuracy"],
            best_accuracy=best["test_accuracy"],
            best_epoch=int(best["epoch"]),
            seconds=rows[-1]["seconds"],
            per_class_accuracy={},
        )
        if self.has_checkpoint("last"):
            last = self.checkpoint("last")
            summary["per_class_accuracy"] = per_class_accuracy(
                last["classes"], last["class_correct"], last["class_total"]
            )
        return summary

    def snapshots(self) -> dict[str, Any] | None:
        """The run's ``snapshots.pt`` (see :mod:`stn.engine.snapshots`), or ``None`` without one."""
        from stn.engine.snapshots import load_snapshots

        return load_snapshots(self.path("snapshots")) if self.path("snapshots").is_file() else None

    def dataset(self, data_root: str | os.PathLike | None = None) -> stn_data.Dataset:
        """Exactly the data the run trained and tested on (its data set and options), read from
        ``data_root`` (default: the run's own)."""
        cfg = self.config
        return stn_data.load(cfg.dataset, data_root or cfg.data_root, **cfg.dataset_options)

    def refused_changes(self, changes: Mapping[str, Any] | TrainConfig) -> list[str]:
        """The fields that ``changes`` (field -> value, or a whole config) would change and that a
        resumed run may not: all but :data:`~stn.engine.config.RESUMABLE_CHANGES`."""
        values = changes.to_dict() if isinstance(changes, TrainConfig) else changes
        mine = self.config.to_dict()
        return [name for name, value in values.items() if mine[name] != value and name not in RESUMABLE_CHANGES]

    def resume_config(self, changes: Mapping[str, Any]) -> TrainConfig:
        """The config that continues this run: its own, with ``changes`` (field -> value) made.
        The one rule for resuming (``stn train --resume``, :func:`stn.engine.train` with
        ``resume=True``, the paper bench): only :data:`~stn.engine.config.RESUMABLE_CHANGES` may
        differ; ``RunError`` names the others."""
        refused = self.refused_changes(changes)
        if refused:
            raise RunError(resume_refusal(refused))
        return dataclasses.replace(self.config, **changes).validate()

    # ---------------------------------------------------------------------------------- writing
    def _write_json(self, key: str, value: Any) -> None:
        write_text_atomic(self.path(key), json.dumps(value, indent=2) + "\n")

    def write_config(self) -> None:
        self._write_json("config", {"format": FORMAT, **self.config.to_dict()})

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        text = io.StringIO()
        fields = list(dict.fromkeys(key for row in rows for key in row)) or METRIC_FIELDS
        writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(self.path("metrics"), text.getvalue())

    def write_summary(self, summary: dict[str, Any]) -> None:
        self._write_json("summary", summary)

    def save_checkpoint(self, which: str, payload: dict[str, Any]) -> None:
        checkpoint.save(payload, self.path(which))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory for one writer: a second holder gets ``RunError`` naming the
        first. A lock whose process is gone (killed), or whose pid now belongs to another process,
        is taken over; one from another host is refused with how to clear it."""
        path = self.path("lock")
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                _refuse_if_live(path, self.dir)
                path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(_lock_line(os.getpid()))
            break
        try:
            yield
        finally:
            path.unlink(missing_ok=True)


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (``/proc/PID/stat``'s start time, in clock ticks since boot),
    or ``None`` where there is no ``/proc``: with the pid, it names one process even after the pid
    is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22 of stat; the command name may hold spaces


def _lock_line(pid: int) -> str:
    return f"{pid} {socket.gethostname()} {_process_start(pid) or '-'}\n"


def _refuse_if_live(path: Path, run_dir: Path) -> None:
    """``RunError`` if the lock at ``path`` is held by a live process (or one that cannot be checked)."""
    state = _lock_state(path)
    if state == "stale":
        return
    holder = path.read_text().split() if path.exists() else []
    pid, host = [*holder, "?", "?"][:2]
    if state == "elsewhere":
        raise RunError(
            f"{run_dir} is locked by process {pid} on host {host}, which cannot be checked from here; if no stn "
            f"process there is using it, delete {path} and try again"
        )
    raise RunError(f"{run_dir} is in use by another stn process (pid {pid} on {host}); wait for it to end")


def _lock_state(path: Path) -> str:
    """``"live"``, ``"stale"`` (its process is gone, or the pid is another process's now) or
    ``"elsewhere"`` (held on another host)."""
    if not path.exists():
        return "stale"
    try:
        fields = path.read_text().split()
        pid, host = int(fields[0]), fields[1]
    except (OSError, ValueError, IndexError):
        return "stale"  # unreadable or half-written: its writer died between create and write
    if host != socket.gethostname():
        return "elsewhere"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "stale"
    except PermissionError:
        pass  # alive, another user's
    except OSError as err:
        if err.errno == errno.ESRCH:
            return "stale"
    started = fields[2] if len(fields) > 2 else "-"
    now = _process_start(pid)
    if started != "-" and now is not None and now != started:
        return "stale"  # the pid was reused by a process that started later
    return "live"


def load_model(
    target: str | os.PathLike,
    which: str = "best",
    model: str | None = None,
    dataset: str | None = None,
    data_root: str | os.PathLike | None = None,
) -> tuple[nn.Module, dict[str, Any], Path]:
    """The model of a run directory (its ``best.pt``, else ``last.pt``) or of a checkpoint file, on
    the CPU with its weights loaded; with the checkpoint's payload and the file's path.

    With ``model`` (a registered name), ``target`` is a plain ``state_dict`` file, written by stn or
    by another program (the seed's or the PyTorch tutorial's ``Net`` for ``seed-cifar`` and
    ``tutorial-mnist``); the payload is made up from the model's data set (``dataset``, default the
    model's own, read from ``data_root``): its image shape, classes and statistics, as stn trains.

    Args:
        target: a run directory or a checkpoint file (with ``model``: a ``state_dict`` file).
        which: ``best`` or ``last``, the checkpoint of a run directory.
        model: the registered model a plain ``state_dict`` file holds.
        dataset: with ``model``, the data set it was trained on (default: the model's own).
        data_root: where that data set is read.

    Returns:
        ``(model, payload, path)``: the model on the CPU with its weights loaded, the checkpoint's
        payload (a dict: model, options, classes, ...) and the file read.

    Examples:
        >>> from stn.engine import checkpoint
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> path = folder / "mnist.pt"
        >>> net = stn.models.create("tutorial-mnist")
        >>> checkpoint.save(dict(model="tutorial-mnist", model_options={}, state_dict=net.state_dict()), path)
        >>> model, payload, where = load_model(path)
        >>> type(model).__name__, payload["model"], where == path
        ('Net', 'tutorial-mnist', True)
        >>> load_model("no-such-run")
        Traceback (most recent call last):
        ...
        stn.engine.run.RunError: no such run directory or checkpoint: no-such-run does not exist
    """
    target = Path(target)
    if model is not None:
        return _foreign(target, model, dataset, data_root)
    if target.is_dir():
        run = Run.open(target)
        payload = run.checkpoint(which)
        path = run.path("best" if which == "best" and run.has_checkpoint("best") else "last")
    elif target.is_file():
        payload, path = checkpoint.load(target), target
    else:
        raise RunError(f"no such run directory or checkpoint: {target} does not exist")
    return checkpoint.restore_model(payload), payload, path


def _foreign(
    path: Path, name: str, dataset: str | None, data_root: str | os.PathLike | None
) -> tuple[nn.Module, dict[str, Any], Path]:
    """A weights file of model ``name`` from another program, with a payload like a checkpoint's."""
    from stn import models

    if not path.is_file():
        raise RunError(f"no such weights file: {path} does not exist")
    dataset = dataset or models.describe(name).default_dataset
    data = stn_data.load(dataset, data_root)
    options = dict(input_shape=data.input_shape, num_classes=data.num_classes)
    net = models.create(name, weights=path, **options)
    cfg = TrainConfig(model=name, dataset=dataset, data_root=None if data_root is None else str(data_root))
    payload = dict(
        model=name,
        model_options=options,
        dataset=dataset,
        classes=list(data.classes),
        mean=list(data.mean),
        std=list(data.std),
        config=cfg.to_dict(),
        state_dict=net.state_dict(),
    )
    return net, payload, path
