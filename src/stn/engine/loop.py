"""The training loop. Read :func:`train` top to bottom for a whole run: data on the device as
uint8, batched augmentation and normalisation, the seed's log lines, per-epoch metrics, atomic
checkpoints and exact resume."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stn import data as stn_data
from stn import models
from stn import transforms as T
from stn.engine.config import TrainConfig
from stn.engine.device import DeviceData, resolve_device
from stn.engine.distributed import Group, Silent
from stn.engine.evaluation import EvalResult, evaluate
from stn.engine.log import RunLog, train_line
from stn.engine.machine import keep_freed_memory
from stn.engine.model import build_model, compile_model, model_options
from stn.engine.optim import make_optimizer, make_scheduler
from stn.engine.precision import autocast, autocast_dtype, describe_amp
from stn.engine.run import Run, RunError, per_class_accuracy
from stn.engine.snapshots import Snapshots
from stn.engine.state import TrainState
from stn.engine.statistics import Monitor, measure
from stn.observe import TransformerView

__all__ = [
    "Callback",
    "EpochEnd",
    "Setup",
    "TrainingDiverged",
    "check_names",
    "configure_process",
    "extra_loss",
    "prepare",
    "train",
    "train_one_epoch",
    "train_step",
]

STATS_IMAGES = 256  # fixed test images on which the transformers' statistics are measured every epoch


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite.

    Examples:
        >>> import io
        >>> from stn.engine import DeviceData, Run, TrainConfig, TrainState
        >>> from stn.engine.log import RunLog
        >>> glyphs = stn.data.load("glyphs", train_size=16, test_size=8, canvas=28, cache=False)
        >>> data = DeviceData(glyphs, torch.device("cpu"))
        >>> model = stn.models.create("tutorial-mnist")
        >>> _ = torch.nn.init.constant_(model.fc2.bias, float("nan"))  # a broken model
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.01)
        >>> state = TrainState(model, opt, torch.optim.lr_scheduler.ConstantLR(opt, 1.0), torch.Generator())
        >>> cfg = TrainConfig(batch_size=8)
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> run = Run.create(folder / "run", cfg)
        >>> train_one_epoch(model, state, data, cfg, 1, RunLog(None, io.StringIO(), False), run)
        Traceback (most recent call last):
        ...
        stn.engine.loop.TrainingDiverged: loss is nan at epoch 1, batch 0; last good checkpoint: ...last.pt
    """


@dataclass
class EpochEnd:
    """What a finished epoch hands to callbacks: its ``metrics.csv`` row (losses, accuracy,
    seconds and the transformers' statistics), the learning rate, the warnings it raised, the
    model, the snapshot batch seen through the first transformer (``None`` without one), and
    the run directory."""

    epoch: int
    row: dict[str, Any]
    lr: float
    warnings: list[str]
    model: nn.Module
    view: TransformerView | None
    run: Run


class Callback(Protocol):
    """Something that watches a run (TensorBoard, for one: :mod:`stn.viz.tensorboard`)."""

    def on_epoch(self, end: EpochEnd) -> None: ...

    def on_end(self, cfg: TrainConfig, summary: dict[str, Any]) -> None: ...


def extra_loss(model: nn.Module) -> Tensor | None:
    """The sum of the extra losses that ``model``'s modules report after a forward pass: every
    module with an ``extra_loss()`` method (e.g. the KL term of a
    :class:`~stn.probabilistic.ProbabilisticSpatialTransformer`) returns a scalar tensor or
    ``None``. ``None`` when none reports one."""
    losses = [
        loss for m in model.modules() if callable(fn := getattr(m, "extra_loss", None)) and (loss := fn()) is not None
    ]
    return torch.stack([loss.float() for loss in losses]).sum() if losses else None


def train_step(
    forward: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    autocast_dtype: torch.dtype | None = None,
    label_smoothing: float = 0.0,
    scale: float = 1.0,
) -> Tensor:
    """One optimizer step on a batch, under autocast to ``autocast_dtype`` (``None``: fp32; see
    :func:`~stn.engine.precision.autocast_dtype`). Returns the batch's mean loss, detached and left
    on the device: reading it is the caller's (only) sync. The gradient is that of ``scale`` times
    the loss (a rank's share of a global batch, see :mod:`stn.engine.distributed`).

    The loss is the cross-entropy of the output, plus the :func:`extra_loss` the model's modules
    report. A model may give several predictions per image in training, ``(k*N, classes)``
    stacked sample-major (a :class:`~stn.probabilistic.ProbabilisticSpatialTransformer`'s
    samples): each is scored against its image's label.

    Args:
        forward: the model, ``(N, *input_shape)`` images -> ``(N, classes)`` log-probabilities
            (or ``(k*N, classes)``, see above).
        optimizer: steps the model's parameters.
        images: the batch, normalised, ``(N, C, H, W)`` (volumes: ``(N, C, D, H, W)``).
        labels: ``(N,)`` int64 class indices.
        autocast_dtype: the autocast dtype of the forward pass; ``None``: fp32.
        label_smoothing: of the cross-entropy loss.
        scale: the loss's factor in the gradient.

    Returns:
        The mean loss, a 0-d tensor on the device.

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> images, labels = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
        >>> before = model[1].weight.clone()
        >>> loss = train_step(model, optimizer, images, labels)
        >>> loss.shape, loss.requires_grad, bool((model[1].weight != before).any())
        (torch.Size([]), False, True)
    """
    with autocast(images.device, autocast_dtype):
        output = forward(images)
    if output.shape[0] != labels.shape[0] and output.shape[0] % labels.shape[0] == 0:
        labels = labels.repeat(output.shape[0] // labels.shape[0])
    loss = F.cross_entropy(output.float(), labels, label_smoothing=label_smoothing)
    extra = extra_loss(forward)
    if extra is not None:
        loss = loss + extra
    optimizer.zero_grad(set_to_none=True)
    (loss * scale if scale != 1.0 else loss).backward()
    optimizer.step()
    return loss.detach()


def train_one_epoch(
    forward: nn.Module,
    state: TrainState,
    data: DeviceData,
    cfg: TrainConfig,
    epoch: int,
    log: RunLog,
    run: Run,
    group: Group | None = None,
    dtype: torch.dtype | None = None,
) -> float:
    """One pass over the training set; returns its mean loss. Logs the seed's line every
    ``cfg.log_interval`` batches, where it also checks that the loss is finite. Autocasts to
    ``dtype`` (``None``: fp32; :attr:`Setup.autocast_dtype` resolves ``cfg.amp`` once). With an
    active ``group``, this rank trains on its slice of every global batch (``forward`` is then the
    ``DistributedDataParallel`` model) and the logged losses are the global batch's.

    Args:
        forward: the model to train (``state.model``, compiled or wrapped).
        state: the training state; its optimizer, schedule and generator step.
        data: the data set on the device.
        cfg: the run's configuration (batch size, augmentation, log interval, ...).
        epoch: the epoch's number, from 1, for the log.
        log: where the log lines go.
        run: the run directory, named in the error when the loss is not finite.
        group: the processes training together (default: this one alone).
        dtype: the autocast dtype; ``None``: fp32.

    Raises:
        TrainingDiverged: the loss is NaN or infinite.

    Examples:
        >>> import io
        >>> from stn.engine import DeviceData, Run, TrainConfig, TrainState
        >>> from stn.engine.log import RunLog
        >>> glyphs = stn.data.load("glyphs", train_size=32, test_size=8, canvas=28, cache=False)
        >>> data = DeviceData(glyphs, torch.device("cpu"))
        >>> model = stn.models.create("tutorial-mnist")
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.01)
        >>> state = TrainState(model, opt, torch.optim.lr_scheduler.ConstantLR(opt, 1.0), torch.Generator())
        >>> cfg = TrainConfig(batch_size=16)
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> run, log = Run.create(folder / "run", cfg), RunLog(None, io.StringIO(), False)
        >>> loss = train_one_epoch(model, state, data, cfg, 1, log, run)
        >>> loss > 0, log.stream.getvalue().startswith("Train Epoch: 1 [0/32 (0%)]")
        (True, True)
    """
    group = group or Group()
    state.model.train()
    loss_sum, seen = torch.zeros((), device=data.device), 0
    steps = data.num_batches(cfg.batch_size, cfg.drop_last)
    total = len(data.train_labels)
    bar = log.bar(steps * cfg.batch_size if cfg.drop_last else total, f"epoch {epoch}")
    part = group.part if group.active else None
    batches = data.train_batches(cfg.batch_size, state.generator, cfg.augment, cfg.crop_padding, cfg.drop_last, part)
    for batch_idx, (images, labels) in enumerate(batches):
        size = min(cfg.batch_size, total - batch_idx * cfg.batch_size)  # the global batch's
        scale = group.world_size * len(labels) / size
        loss = train_step(forward, state.optimizer, images, labels, dtype, cfg.label_smoothing, scale)
        state.scheduler.step()
        loss_sum += loss * len(labels)
        seen += size
        if bar is not None:
            bar.update(size)
        if batch_idx % cfg.log_interval == 0:
            value = group.mean_loss(loss, len(labels), size).item()
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"loss is {value} at epoch {epoch}, batch {batch_idx}; last good checkpoint: {run.path('last')}"
                )
            log(train_line(epoch, batch_idx * size, total, batch_idx, steps, value))
    log.end_bar()
    train_loss = float(group.sum(loss_sum)) / seen
    if not math.isfinite(train_loss):
        raise TrainingDiverged(
            f"training loss is {train_loss} in epoch {epoch}; last good checkpoint: {run.path('last')}"
        )
    return train_loss


@dataclass
class Setup:
    """Everything a run needs, built and checked before anything is written: the device, the data
    on it (and the fixed test images the statistics are measured on), the model and its compiled
    form, the training state, and the description that every checkpoint carries. Under torchrun,
    this process's ``group`` and ``train_forward``, the model in ``DistributedDataParallel``
    (otherwise ``forward`` itself)."""

    cfg: TrainConfig
    device: torch.device
    data: DeviceData
    probe: Tensor
    forward: nn.Module
    state: TrainState
    meta: dict[str, Any]
    autocast_dtype: torch.dtype | None = None
    group: Group = field(default_factory=Group)
    train_forward: nn.Module | None = None


def check_names(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with its data set filled in (the model's own by default), after checking every name
    and option it gives: the model and its options, the transform family, the data set and its
    options. ``ValueError`` (``DataError`` for the data set) naming the first problem, before any
    data is read.

    Args:
        cfg: the configuration to check.

    Examples:
        >>> from stn.engine import TrainConfig
        >>> check_names(TrainConfig(model="tutorial-mnist")).dataset
        'mnist'
        >>> check_names(TrainConfig(model="tutorial-mnist", transform="twirl"))
        Traceback (most recent call last):
        ...
        ValueError: unknown transform 'twirl'; choose one of: translation, attention, ...
    """
    cfg = dataclasses.replace(cfg.validate(), dataset=cfg.dataset or models.describe(cfg.model).default_dataset)
    models.check_options(cfg.model, cfg.model_options)
    if cfg.stn:
        T.get(cfg.transform, **cfg.model_options.get("transform_options", {}))
    stn_data.check_options(cfg.dataset, cfg.dataset_options)
    return cfg


def configure_process(cfg: TrainConfig, device: torch.device | str | None = None) -> None:
    """What a run of ``cfg`` sets for the whole process: torch's CPU threads (``cfg.threads``, when
    given), cuDNN's autotuner on CUDA, and, on the CPU, glibc's malloc keeping freed memory
    (``cfg.keep_freed_memory``). ``stn train``, ``stn demo`` and the benchmarks call it before
    :func:`train`, which itself sets nothing process-wide; a library caller decides.

    Args:
        cfg: the run's configuration.
        device: the run's device (default: ``cfg.device``, resolved).

    Examples:
        >>> from stn.engine import from_recipe
        >>> configure_process(from_recipe("seed", threads=1), "cpu")
        >>> torch.get_num_threads()
        1
    """
    device = resolve_device(cfg.device) if device is None else torch.device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if device.type == "cpu" and cfg.keep_freed_memory:
        keep_freed_memory()


def prepare(cfg: TrainConfig, group: Group | None = None) -> Setup:
    """Check ``cfg`` and build what training it needs (``ValueError`` naming the first problem); in
    ``group`` (default: the one torchrun started this process in, else a group of one). ``cfg`` is
    not changed: :attr:`Setup.cfg` is the config completed (its data set filled in). Seeds torch's
    global generator with ``cfg.seed`` (:func:`train` runs inside a fork of it)."""
    cfg = check_names(cfg)
    group = group or Group.from_env()
    device = group.start(resolve_device(cfg.device))
    if group.active and cfg.batch_size < group.world_size:
        raise ValueError(f"--batch-size {cfg.batch_size} is below the number of processes ({group.world_size})")

    # Data: decoded once (cached), moved to the device as uint8.
    dataset = stn_data.load(cfg.dataset, cfg.data_root, **cfg.dataset_options)
    if dataset.train_images.dim() == 5 and cfg.augment != "none":
        raise ValueError(f"--augment {cfg.augment} crops and flips images; volumes take --augment none")
    if cfg.drop_last and len(dataset.train_labels) < cfg.batch_size:
        raise ValueError(
            f"--drop-last leaves no batch: {len(dataset.train_labels)} training images, batch size {cfg.batch_size}; "
            "lower --batch-size or pass --no-drop-last"
        )
    data = DeviceData(dataset, device, cfg.channels_last)

    # Model, optimizer, schedule: all seeded, so a run is a function of its config.
    torch.manual_seed(cfg.seed)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    model = build_model(cfg, dataset, device)
    optimizer = make_optimizer(cfg, model, device)
    scheduler = make_scheduler(cfg, optimizer, data.num_batches(cfg.batch_size, cfg.drop_last))
    meta = dict(
        model=cfg.model,
        model_options=model_options(cfg, dataset),
        dataset=cfg.dataset,
        classes=dataset.classes,
        mean=list(dataset.mean),
        std=list(dataset.std),
        config=cfg.to_dict(),
    )
    probe = data.normalize(data.test_images[:STATS_IMAGES])
    state = TrainState(model, optimizer, scheduler, generator)
    forward = compile_model(model, cfg.compile)
    dtype = autocast_dtype(cfg.amp, device)
    return Setup(cfg, device, data, probe, forward, state, meta, dtype, group, group.wrap(forward, cfg.seed))


def train(
    cfg: TrainConfig,
    run_dir: str | os.PathLike,
    resume: bool = False,
    *,
    stream: Any = None,
    progress: bool | None = None,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Train ``cfg`` into the run directory ``run_dir`` (see :class:`~stn.engine.run.Run`), or
    continue the run there when ``resume`` (``cfg`` may then change only
    :data:`~stn.engine.config.RESUMABLE_CHANGES`: :meth:`~stn.engine.run.Run.resume_config`).
    Returns the summary.

    Everything is checked (config, device, data, model) before anything is written. The log goes
    to ``stream`` (standard output by default, with a progress bar when ``progress``) and to
    ``train.log``. Every epoch the transformers' statistics on a fixed set of test images join
    its metrics row (see :mod:`stn.engine.statistics`), and a transformer drifting into a known
    failure (zooming out, collapse, ...) is warned about once in the log; ``callbacks`` see each
    finished epoch and the summary.

    Nothing process-wide is changed: the run seeds and uses its own fork of torch's random state
    (the caller's is as it was afterwards), and threads, cuDNN and the allocator are left to
    :func:`configure_process`.

    Args:
        cfg: the run's configuration (see :func:`~stn.engine.config.from_recipe`).
        run_dir: the run directory to create (or, with ``resume``, to continue).
        resume: continue the run in ``run_dir``.
        stream: where the log goes (default standard output).
        progress: a progress bar (default: when ``stream`` is a terminal).
        callbacks: objects with ``on_epoch(EpochEnd)`` and ``on_end(cfg, summary)``.

    Returns:
        The run's summary (``summary.json``): final and best accuracy, best epoch, per-class
        accuracy, seconds, the transformer's last statistics and the warnings raised.

    Examples:
        >>> import io, os, tempfile
        >>> from unittest import mock
        >>> from stn.engine import Run, evaluate_checkpoint, from_recipe
        >>> cfg = from_recipe("demo", model="paper-cnn", dataset="glyphs", epochs=1, device="cpu", amp="off",
        ...                   dataset_options=dict(train_size=128, test_size=64))
        >>> folder = tempfile.mkdtemp()
        >>> with mock.patch.dict(os.environ, {"STN_CACHE": folder}):  # the drawn glyphs are cached there
        ...     summary = train(cfg, os.path.join(folder, "run"), stream=io.StringIO(), progress=False)
        ...     result, _, path = evaluate_checkpoint(os.path.join(folder, "run"), device="cpu")
        >>> summary["epochs"], Run.open(os.path.join(folder, "run")).is_finished
        (1, True)
        >>> path.name, result.total, round(result.accuracy, 2) == summary["best_accuracy"]
        ('best.pt', 64, True)
    """
    group = Group.from_env()  # several processes only under torchrun (stn.engine.distributed)
    device = group.start(resolve_device(cfg.device)) if group.active else resolve_device(cfg.device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return _train(cfg, run_dir, resume, group, stream, progress, callbacks)


def _train(
    cfg: TrainConfig,
    run_dir: str | os.PathLike,
    resume: bool,
    group: Group,
    stream: Any,
    progress: bool | None,
    callbacks: Sequence[Callback],
) -> dict[str, Any]:
    previous = group.share(lambda: _check_resume(cfg, run_dir)) if resume else None
    setup = prepare(cfg, group)
    cfg, state = setup.cfg, setup.state
    run = group.share(lambda: Run.create(run_dir, cfg)) if previous is None else previous
    callbacks = callbacks if group.is_main else ()  # rank 0 alone writes
    with run.lock() if group.is_main else contextlib.nullcontext():
        log = RunLog(run.path("log"), stream, progress) if group.is_main else RunLog(None, Silent(), False)
        try:
            if previous is not None:
                _resume(setup, run, log)
            _header(setup, log)
            count = cfg.snapshot_images if group.is_main else 0
            snapshots = Snapshots.for_run(run.path("snapshots"), setup.data.dataset, count, state.epoch)
            monitor = Monitor(cfg.stn_fill, cfg.stn_lr_scale, ndim=setup.probe.dim() - 2)
            for row in state.metrics:  # on resume: conditions already warned about stay quiet
                monitor.update(row)
            for epoch in range(state.epoch + 1, cfg.epochs + 1):
                end = _epoch(setup, run, snapshots, monitor, epoch, log)
                for callback in callbacks:
                    callback.on_epoch(end)
        finally:
            log.close()
        summary = _summary(cfg, state, setup.data.dataset.classes, setup.device, monitor.warnings)
        if group.is_main:
            run.write_summary(summary)
    for callback in callbacks:
        callback.on_end(cfg, summary)
    return summary


def _epoch(setup: Setup, run: Run, snapshots: Snapshots, monitor: Monitor, epoch: int, log: RunLog) -> EpochEnd:
    """One epoch: train, test, look at the transformer, measure it, save (rank 0), warn."""
    cfg, state, group = setup.cfg, setup.state, setup.group
    tic = time.perf_counter()
    dtype = setup.autocast_dtype
    train_loss = train_one_epoch(setup.train_forward, state, setup.data, cfg, epoch, log, run, group, dtype)
    result = evaluate(setup.forward, setup.data, cfg.test_batch_size, dtype, cfg.flip_tta, group)
    log()
    log(result.line())
    log()
    view = snapshots.capture(epoch, state.model)
    stats = {key: round(value, 6) for key, value in measure(state.model, setup.probe).items()}
    state.elapsed += time.perf_counter() - tic
    row = _save_epoch(run if group.is_main else None, state, setup.meta, snapshots, train_loss, result, epoch, stats)
    warned = monitor.update(row)
    for line in warned:
        log(f"stn: warning: {line}")
    return EpochEnd(epoch, row, state.scheduler.get_last_lr()[0], warned, state.model, view, run)


def _resume(setup: Setup, run: Run, log: RunLog) -> None:
    """Load ``last.pt`` into the training state; record the changes ``--resume`` may make."""
    group = setup.group
    location = "cpu" if group.active else setup.device  # rank 0 reads it, every rank loads it
    setup.state.load_state_dict(group.share(lambda: run.checkpoint("last", map_location=location)))
    group.seed_local(setup.cfg.seed, setup.state.epoch)
    if run.config != setup.cfg and group.is_main:
        run.config = setup.cfg
        run.write_config()
    log(f"Resuming {run.dir} after epoch {setup.state.epoch} of {setup.cfg.epochs}")


def _header(setup: Setup, log: RunLog) -> None:
    cfg, dataset = setup.cfg, setup.data.dataset
    n_params = sum(p.numel() for p in setup.state.model.parameters())
    log(
        f"stn train: {cfg.model} ({n_params:,} parameters) on {dataset.name} ({len(dataset.train_labels)} "
        f"train / {len(dataset.test_labels)} test), recipe {cfg.recipe}, device {setup.device}"
        + (f", {setup.group.world_size} processes" if setup.group.active else "")
    )
    log(describe_amp(cfg.amp, setup.device))


def _check_resume(cfg: TrainConfig, run_dir: str | os.PathLike) -> Run:
    """The run to resume in ``run_dir``; ``RunError`` if there is none, it is finished, or ``cfg``
    changes what :meth:`Run.resume_config` does not allow."""
    run = Run.open(run_dir)
    if not run.has_checkpoint("last"):
        raise RunError(f"{run.dir} has no finished epoch to resume from; start it again without --resume")
    run.resume_config(cfg.to_dict())
    done = run.epochs_done
    if done >= cfg.epochs:
        raise RunError(f"{run.dir} is finished ({done} of {cfg.epochs} epochs); to train on, pass a larger --epochs")
    return run


def _save_epoch(
    run: Run | None,
    state: TrainState,
    meta: dict[str, Any],
    snapshots: Snapshots,
    train_loss: float,
    result: EvalResult,
    epoch: int,
    stats: dict[str, float],
) -> dict[str, Any]:
    """Record the epoch, then save (unless ``run`` is ``None``: a rank other than 0): ``last.pt``
    (atomic) first, the files derived from it, ``best.pt``. Returns the epoch's metrics row."""
    row = dict(
        epoch=epoch,
        train_loss=round(train_loss, 6),
        test_loss=round(result.loss, 6),
        test_accuracy=round(result.accuracy, 2),
        seconds=round(state.elapsed, 1),
        **stats,
    )
    is_best = state.record(row, result.class_correct, result.class_total)
    if run is None:
        return row
    run.save_checkpoint("last", dict(meta, **state.state_dict()))
    run.write_metrics(state.metrics)
    snapshots.save()
    if is_best:
        run.save_checkpoint("best", dict(meta, **state.best_state_dict()))
    return row


def _summary(
    cfg: TrainConfig, state: TrainState, classes: list[str], device: torch.device, warnings: list[str]
) -> dict[str, Any]:
    best = max(state.metrics, key=lambda row: row["test_accuracy"])
    last = state.metrics[-1]
    return dict(
        model=cfg.model,
        dataset=cfg.dataset,
        recipe=cfg.recipe,
        epochs=cfg.epochs,
        device=str(device),
        final_accuracy=state.metrics[-1]["test_accuracy"],
        best_accuracy=best["test_accuracy"],
        best_epoch=best["epoch"],
        seconds=round(state.elapsed, 1),
        per_class_accuracy=per_class_accuracy(classes, state.class_correct, state.class_total),
        transformer={key: value for key, value in last.items() if key.startswith("stn")},
        warnings=warnings,
    )
