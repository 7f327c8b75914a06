"""The training engine: data on the device as uint8, batched augmentation and normalisation,
the seed's log lines, per-epoch metrics, atomic checkpoints and exact resume.

Read :func:`train` top to bottom for a whole run.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stn import data as stn_data
from stn import models
from stn.engine import checkpoint
from stn.engine.augment import random_crop, random_flip
from stn.engine.config import TrainConfig
from stn.engine.log import RunLog, test_line, train_line
from stn.engine.precision import autocast, describe_amp
from stn.engine.snapshots import Snapshots
from stn.files import write_text_atomic
from stn.layers import SpatialTransformer

__all__ = [
    "DeviceData",
    "EvalResult",
    "TrainingDiverged",
    "build_model",
    "compile_model",
    "evaluate",
    "make_optimizer",
    "make_scheduler",
    "resolve_device",
    "train",
    "train_step",
]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; otherwise the named device, checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda asked for, but CUDA is not available here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device mps asked for, but MPS is not available here")
    return device


class DeviceData:
    """A data set's tensors on the training device, and the batches drawn from them.

    Images stay uint8 until a batch is taken; augmentation (per sample, from ``generator``) and
    normalisation with the data set's own statistics happen batched on the device.
    """

    def __init__(self, dataset: stn_data.Dataset, device: torch.device, channels_last: bool = False) -> None:
        self.dataset = dataset
        self.device = device
        self.channels_last = channels_last
        self.train_images = dataset.train_images.to(device)
        self.train_labels = dataset.train_labels.to(device)
        self.test_images = dataset.test_images.to(device)
        self.test_labels = dataset.test_labels.to(device)
        mean = torch.tensor(dataset.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(dataset.std, device=device).view(1, -1, 1, 1)
        # (x / 255 - mean) / std as one multiply-add.
        self._scale, self._shift = 1.0 / (255.0 * std), -mean / std

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 ``(N, C, H, W)`` -> normalised float32."""
        x = torch.addcmul(self._shift, images.float(), self._scale)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def denormalize(self, x: Tensor) -> Tensor:
        """Normalised float ``(N, C, H, W)`` -> uint8 on the CPU (clamped to ``[0, 255]``)."""
        raw = (x.float() - self._shift) / self._scale
        return raw.round().clamp(0, 255).to(torch.uint8).cpu().contiguous()

    def train_batches(
        self,
        batch_size: int,
        generator: torch.Generator,
        augment: str = "none",
        padding: int = 4,
        drop_last: bool = False,
    ):
        """Yield ``(images, labels)`` for one epoch in a random order drawn from ``generator``."""
        n = len(self.train_labels)
        order = torch.randperm(n, generator=generator, device=generator.device).to(self.device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            index = order[start : start + batch_size]
            images = self.train_images[index]
            if augment in ("crop", "crop-flip"):
                images = random_crop(images, padding, generator)
            if augment in ("flip", "crop-flip"):
                images = random_flip(images, generator)
            yield self.normalize(images), self.train_labels[index]

    def test_batches(self, batch_size: int):
        for start in range(0, len(self.test_labels), batch_size):
            yield (
                self.normalize(self.test_images[start : start + batch_size]),
                self.test_labels[start : start + batch_size],
            )

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        n = len(self.train_labels)
        return n // batch_size if drop_last else math.ceil(n / batch_size)


@dataclass
class EvalResult:
    """Sum-reduced loss averaged over the test set, correct count, and per-class counts."""

    loss: float
    correct: int
    total: int
    class_correct: list[int]
    class_total: list[int]

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.total

    def line(self) -> str:
        return test_line(self.loss, self.correct, self.total)


@torch.no_grad()
def evaluate(
    model: nn.Module, data: DeviceData, batch_size: int = 1000, amp: str = "off", flip_tta: bool = False
) -> EvalResult:
    """Test-set loss (NLL of the model's log-probabilities), accuracy and per-class accuracy.

    With ``flip_tta`` the prediction is the mean of the probabilities for each image and its
    mirror image (test-time augmentation).
    """
    model.eval()
    num_classes = data.dataset.num_classes
    loss = torch.zeros((), device=data.device, dtype=torch.float64)
    class_correct = torch.zeros(num_classes, device=data.device, dtype=torch.long)
    for images, labels in data.test_batches(batch_size):
        with autocast(data.device, amp):
            output = model(images).float()
            if flip_tta:
                mirrored = model(images.flip(-1)).float()
                output = torch.logaddexp(output, mirrored) - math.log(2.0)
        loss += F.nll_loss(output, labels, reduction="sum")
        # index_add_, not bincount(labels[hits]): a mask and bincount both wait for the device.
        class_correct.index_add_(0, labels, (output.argmax(1) == labels).long())
    class_total = torch.bincount(data.test_labels, minlength=num_classes)
    total = len(data.test_labels)
    per_class = class_correct.cpu().tolist()
    return EvalResult(float(loss) / total, sum(per_class), total, per_class, class_total.cpu().tolist())


def model_options(cfg: TrainConfig, dataset: stn_data.Dataset) -> dict[str, Any]:
    """Factory options for ``cfg.model`` on ``dataset`` (saved in checkpoints)."""
    options: dict[str, Any] = dict(input_shape=dataset.input_shape, num_classes=dataset.num_classes, stn=cfg.stn)
    if cfg.stn:
        options["transform"] = cfg.transform
        if cfg.stn_fill == "black":
            options["fill"] = [(0.0 - m) / s for m, s in zip(dataset.mean, dataset.std, strict=True)]
        elif cfg.stn_fill == "border":
            options["padding_mode"] = "border"
    return {**options, **cfg.extra}


def lr_factor(schedule: str, step: int, total: int, warmup: int) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` of ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "onecycle":
        return max(0.0, 1.0 - progress)
    return 1.0


def build_model(cfg: TrainConfig, dataset: stn_data.Dataset, device: torch.device) -> nn.Module:
    """``cfg.model`` for ``dataset``, on ``device`` in the configured memory format, with the
    transformers' finiteness check off (it syncs every step; the loss is checked at log points)."""
    model = models.create(cfg.model, **model_options(cfg, dataset)).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    for module in model.modules():
        if isinstance(module, SpatialTransformer):
            module.check_finite = False
    return model


def compile_model(model: nn.Module, mode: str = "off") -> nn.Module:
    """``torch.compile(model)`` in ``mode`` (``default``, ``reduce-overhead``: CUDA graphs,
    ``max-autotune``), or ``model`` itself for ``off``.

    Shapes are static: the last, smaller batch of an epoch and evaluation get graphs of their
    own rather than turning every graph dynamic.
    """
    if mode == "off":
        return model
    return torch.compile(model, mode=None if mode == "default" else mode, dynamic=False)


def train_step(
    forward: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    amp: str = "off",
    label_smoothing: float = 0.0,
) -> Tensor:
    """One optimizer step on a batch. Returns the batch's mean loss, detached and left on the
    device: reading it is the caller's (only) sync."""
    with autocast(images.device, amp):
        output = forward(images)
    loss = F.cross_entropy(output.float(), labels, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def make_optimizer(cfg: TrainConfig, model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """The configured optimizer, fused kernels where the device has them.

    Weight decay applies to weights only (not biases, which include the transformer's identity);
    the spatial transformers' parameters learn at ``stn_lr_scale`` times the learning rate.
    """
    in_transformer = {id(p) for m in model.modules() if isinstance(m, SpatialTransformer) for p in m.parameters()}
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}  # (lr scale, decayed) -> parameters
    for p in model.parameters():
        if p.requires_grad:
            scale = cfg.stn_lr_scale if id(p) in in_transformer else 1.0
            groups.setdefault((scale, p.dim() > 1), []).append(p)
    param_groups = [
        {"params": params, "lr": cfg.lr * scale, "weight_decay": cfg.weight_decay if decayed else 0.0}
        for (scale, decayed), params in groups.items()
    ]
    fused = {"fused": True} if device.type in ("cuda", "cpu") else {"foreach": True}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, **fused)
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(param_groups, lr=cfg.lr, **fused)


def make_scheduler(
    cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The configured learning-rate schedule, stepped once per optimizer step."""
    total, warmup = cfg.epochs * steps_per_epoch, round(cfg.warmup_epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg.schedule, step, total, warmup))


METRIC_FIELDS = ["epoch", "train_loss", "test_loss", "test_accuracy", "seconds"]


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRIC_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())


def _write_json(path: Path, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=2) + "\n")


def _rng_state(generator: torch.Generator) -> dict[str, Tensor]:
    state = {"cpu": torch.get_rng_state(), "data": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Tensor], generator: torch.Generator) -> None:
    torch.set_rng_state(state["cpu"])
    generator.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def train(
    cfg: TrainConfig, run_dir: str | os.PathLike, resume: bool = False, log: RunLog | None = None
) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir`` (or continue the run there when ``resume``).

    Writes ``config.json``, ``train.log``, ``metrics.csv``, ``last.pt`` (every epoch),
    ``best.pt`` (best test accuracy), ``snapshots.pt`` (the transformer's view of a fixed batch,
    every epoch) and ``summary.json``; returns the summary.
    """
    cfg.validate()
    cfg.dataset = cfg.dataset or models.describe(cfg.model).default_dataset
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = log or RunLog(run_dir / "train.log")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # Data: decoded once (cached), moved to the device as uint8.
    data_options = {**({"image_size": cfg.image_size} if cfg.image_size else {}), **cfg.dataset_options}
    dataset = stn_data.load(cfg.dataset, cfg.data_root, **data_options)
    data = DeviceData(dataset, device, cfg.channels_last)

    # Model, optimizer, schedule: all seeded, so a run is a function of its config.
    torch.manual_seed(cfg.seed)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    options = model_options(cfg, dataset)
    model = build_model(cfg, dataset, device)
    optimizer = make_optimizer(cfg, model, device)
    steps_per_epoch = data.num_batches(cfg.batch_size, cfg.drop_last)
    scheduler = make_scheduler(cfg, optimizer, steps_per_epoch)
    forward = compile_model(model, cfg.compile)

    start_epoch, metrics, best, elapsed = 1, [], -1.0, 0.0
    if resume:
        state = checkpoint.load(run_dir / "last.pt", map_location=device)
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], generator)
        start_epoch, metrics = state["epoch"] + 1, state["metrics"]
        best, elapsed = state["best_accuracy"], state["elapsed"]
        log(f"Resuming {run_dir} after epoch {state['epoch']} of {cfg.epochs}")
    else:
        _write_json(run_dir / "config.json", cfg.to_dict())
    snapshots = Snapshots.for_run(run_dir / "snapshots.pt", dataset, cfg.snapshot_images, keep_epochs=start_epoch - 1)

    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"stn train: {cfg.model} ({n_params:,} parameters) on {dataset.name} "
        f"({len(dataset.train_labels)} train / {len(dataset.test_labels)} test), recipe {cfg.recipe}, device {device}"
    )
    log(describe_amp(cfg.amp, device))
    meta = dict(
        model=cfg.model,
        model_options=options,
        dataset=cfg.dataset,
        classes=dataset.classes,
        mean=list(dataset.mean),
        std=list(dataset.std),
        config=cfg.to_dict(),
    )

    for epoch in range(start_epoch, cfg.epochs + 1):
        tic = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        seen = 0
        bar = log.bar(
            len(data.train_labels) if not cfg.drop_last else steps_per_epoch * cfg.batch_size, f"epoch {epoch}"
        )
        batches = data.train_batches(cfg.batch_size, generator, cfg.augment, cfg.crop_padding, cfg.drop_last)
        for batch_idx, (images, labels) in enumerate(batches):
            loss = train_step(forward, optimizer, images, labels, cfg.amp, cfg.label_smoothing)
            scheduler.step()
            loss_sum += loss * len(labels)
            seen += len(labels)
            if bar is not None:
                bar.update(len(labels))
            if batch_idx % cfg.log_interval == 0:
                value = loss.item()
                if not math.isfinite(value):
                    raise TrainingDiverged(
                        f"loss is {value} at epoch {epoch}, batch {batch_idx}; "
                        f"last good checkpoint: {run_dir / 'last.pt'}"
                    )
                log(
                    train_line(
                        epoch, batch_idx * len(labels), len(data.train_labels), batch_idx, steps_per_epoch, value
                    )
                )
        log.end_bar()
        train_loss = float(loss_sum) / seen
        if not math.isfinite(train_loss):
            raise TrainingDiverged(
                f"training loss is {train_loss} in epoch {epoch}; last good checkpoint: {run_dir / 'last.pt'}"
            )

        result = evaluate(forward, data, cfg.test_batch_size, cfg.amp, cfg.flip_tta)
        log()
        log(result.line())
        log()
        snapshots.capture(epoch, model, data)
        elapsed += time.perf_counter() - tic
        metrics.append(
            dict(
                epoch=epoch,
                train_loss=round(train_loss, 6),
                test_loss=round(result.loss, 6),
                test_accuracy=round(result.accuracy, 2),
                seconds=round(elapsed, 1),
            )
        )

        # Save: last.pt (atomic) first, then files derived from it, then best.pt.
        is_best = result.accuracy > best
        best = max(best, result.accuracy)
        state = dict(
            meta,
            state_dict=model.state_dict(),
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            rng=_rng_state(generator),
            epoch=epoch,
            metrics=metrics,
            best_accuracy=best,
            elapsed=elapsed,
            class_correct=result.class_correct,
            class_total=result.class_total,
        )
        checkpoint.save(state, run_dir / "last.pt")
        _write_metrics(run_dir / "metrics.csv", metrics)
        snapshots.save()
        if is_best:
            checkpoint.save(
                dict(
                    meta,
                    state_dict=model.state_dict(),
                    epoch=epoch,
                    metrics=metrics,
                    best_accuracy=best,
                    class_correct=result.class_correct,
                    class_total=result.class_total,
                ),
                run_dir / "best.pt",
            )

    final = checkpoint.load(run_dir / "last.pt")
    best_row = max(final["metrics"], key=lambda row: row["test_accuracy"])
    summary = dict(
        model=cfg.model,
        dataset=cfg.dataset,
        recipe=cfg.recipe,
        epochs=cfg.epochs,
        device=str(device),
        final_accuracy=final["metrics"][-1]["test_accuracy"],
        best_accuracy=best_row["test_accuracy"],
        best_epoch=best_row["epoch"],
        seconds=round(final["elapsed"], 1),
        per_class_accuracy={
            name: round(100.0 * c / max(1, t), 2)
            for name, c, t in zip(dataset.classes, final["class_correct"], final["class_total"], strict=True)
        },
    )
    _write_json(run_dir / "summary.json", summary)
    return summary
