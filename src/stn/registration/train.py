"""Training a registration network: :func:`register`. Read it top to bottom for a whole run.

A run directory holds ``config.json`` (the :class:`~stn.registration.RegisterConfig`),
``train.log``, ``metrics.csv`` (one row per epoch: losses, Dice before and after, % folding,
seconds), ``last.pt`` (the network, the template, the config), ``summary.json`` and, from
:mod:`stn.registration.report`, ``report.md`` with its pictures. The log, the device, the atomic
writes and the checkpoint format are the engine's (:mod:`stn.engine`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from stn.engine import checkpoint
from stn.engine.config import resume_refusal
from stn.engine.device import resolve_device
from stn.engine.log import RunLog
from stn.files import write_text_atomic
from stn.registration.config import RESUMABLE_CHANGES, RegisterConfig
from stn.registration.data import RegistrationData, load_data
from stn.registration.losses import dice_loss, dice_score, folding, local_ncc, mse, one_hot, smoothness
from stn.registration.network import RegistrationNet

__all__ = ["Evaluation", "Registration", "evaluate", "load_registration", "register", "resume_config"]

TEST_PAIRS = 32  # fixed test pairs (image i onto image i + 1) measured every epoch


@dataclass
class Registration:
    """A trained (or training) registration: the network, the template (congealing only) and the data.

    Attributes:
        cfg: what the registration is.
        net: the network (:class:`RegistrationNet`).
        data: the images and label maps.
        template: the learned fixed image ``(1, 1, *S)`` on ``[0, 1]`` (congealing), or ``None``.

    Examples:
        >>> from stn.registration import RegistrationNet, load_data
        >>> data = load_data("shapes2d", size=16, train=4, test=2)
        >>> reg = Registration(RegisterConfig(data="shapes2d"), RegistrationNet(data.size, features=(4, 8)), data)
        >>> images, labels = reg.images("test", torch.arange(2))
        >>> tuple(images.shape), images.dtype, labels.dtype, reg.device
        ((2, 1, 16, 16), torch.float32, torch.uint8, device(type='cpu'))
    """

    cfg: RegisterConfig
    net: RegistrationNet
    data: RegistrationData
    template: nn.Parameter | None = None

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def images(self, split: str, index: Tensor) -> tuple[Tensor, Tensor]:
        """Images on ``[0, 1]`` and label maps of ``split`` at ``index``, on the device."""
        images = getattr(self.data, f"{split}_images")[index].to(self.device).float() / 255
        return images, getattr(self.data, f"{split}_labels")[index].to(self.device)

    def fixed_for(self, moving: Tensor, split: str, index: Tensor) -> tuple[Tensor, Tensor | None]:
        """The fixed images (and label maps) for ``moving``: the template, or the images at ``index``."""
        if self.template is not None:
            fixed = self.template.clamp(0, 1).expand_as(moving)
            return fixed, (fixed.detach() >= 0.5).to(torch.uint8)
        return self.images(split, index)


def build(cfg: RegisterConfig, device: torch.device | None = None, net: nn.Module | None = None) -> Registration:
    """The data, network (``net`` if given) and template ``cfg`` describes, seeded, on ``device``.

    Args:
        cfg: the registration.
        device: where the network and template go (default: the CPU).
        net: the network to use instead of a new :class:`RegistrationNet`.
    """
    cfg.validate()
    data = load_data(cfg.data, cfg.data_root, **cfg.data_options)
    torch.manual_seed(cfg.seed)
    if net is None:
        net = RegistrationNet(data.size, cfg.transform, cfg.diffeomorphic, cfg.steps, cfg.features, cfg.final)
    net = net.to(device or "cpu")
    template = None
    if cfg.template:  # starts as the mean training image
        template = nn.Parameter(data.train_images.float().mean(0, keepdim=True).to(device or "cpu") / 255)
    return Registration(cfg, net, data, template)


def loss_terms(reg: Registration, moving: Tensor, moving_labels: Tensor, fixed: Tensor, fixed_labels: Tensor | None):
    """The loss of a batch and its parts: similarity, smoothness, Dice (with ``dice_weight``) and
    the mean displacement (with a template)."""
    cfg = reg.cfg
    warped, grid = reg.net(moving, fixed)
    similarity = local_ncc(warped, fixed, cfg.window) if cfg.similarity == "ncc" else mse(warped, fixed)
    terms = {"similarity": similarity}
    if reg.net.dense:
        terms["smoothness"] = cfg.smoothness * smoothness(reg.net.displacement(grid))
    if cfg.dice_weight and fixed_labels is not None:
        k = reg.data.num_labels
        warped_labels = reg.net.sample(one_hot(moving_labels, k), grid)
        terms["dice"] = cfg.dice_weight * dice_loss(warped_labels, one_hot(fixed_labels, k))
    if reg.template is not None and cfg.centre_weight:  # the batch's mean displacement, in voxels
        voxel = grid.new_tensor([(n - 1) / 2 for n in reversed(reg.net.size)])
        terms["centre"] = cfg.centre_weight * (reg.net.displacement(grid).mean(0) * voxel).square().mean()
    return sum(terms.values()), terms


@dataclass
class Evaluation:
    """Measured on the fixed test pairs: Dice per foreground label before and after (mean over pairs),
    % folding (mean and largest), the similarity loss after, and the pairs' grids."""

    dice_before: list[float]
    dice_after: list[float]
    folding_mean: float
    folding_max: float
    similarity: float

    @property
    def dice(self) -> float:
        return float(sum(self.dice_after) / len(self.dice_after))

    @property
    def dice_initial(self) -> float:
        return float(sum(self.dice_before) / len(self.dice_before))


@torch.no_grad()
def evaluate(reg: Registration, pairs: int = TEST_PAIRS, batch_size: int = 4) -> Evaluation:
    """Register test image ``i + 1`` (moving) onto image ``i`` (fixed), or every test image onto
    the template, for the first ``pairs``; label maps warped with nearest sampling.

    Args:
        reg: the registration.
        pairs: test pairs to measure, at most.
        batch_size: pairs at a time.

    Examples:
        >>> from stn.registration import RegistrationNet, load_data
        >>> data = load_data("shapes2d", size=16, train=4, test=4)
        >>> reg = Registration(RegisterConfig(data="shapes2d"), RegistrationNet(data.size, features=(4, 8)), data)
        >>> result = evaluate(reg, pairs=2)
        >>> len(result.dice_after), 0 <= result.dice <= 1, result.folding_max  # four foreground labels
        (4, True, 0.0)
    """
    reg.net.eval()
    n = len(reg.data.test_images) - (0 if reg.template is not None else 1)
    count = min(pairs, n)
    before, after, folds, similarity = [], [], [], 0.0
    for start in range(0, count, batch_size):
        index = torch.arange(start, min(start + batch_size, count))
        moving, moving_labels = reg.images("test", index + (0 if reg.template is not None else 1))
        fixed, fixed_labels = reg.fixed_for(moving, "test", index)
        warped, grid = reg.net(moving, fixed)
        warped_labels = reg.net.sample(moving_labels.float(), grid, mode="nearest").round().to(torch.uint8)
        k = reg.data.num_labels
        before.append(dice_score(moving_labels, fixed_labels, k))
        after.append(dice_score(warped_labels, fixed_labels, k))
        if reg.net.dense:
            folds.append(folding(reg.net.displacement(grid), align_corners=True))
        sim = local_ncc(warped, fixed, reg.cfg.window) if reg.cfg.similarity == "ncc" else mse(warped, fixed)
        similarity += float(sim) * len(index)
    reg.net.train()
    folded = torch.cat(folds) if folds else torch.zeros(1)
    return Evaluation(
        torch.cat(before).nanmean(0).tolist(),
        torch.cat(after).nanmean(0).tolist(),
        float(folded.mean()),
        float(folded.max()),
        similarity / count,
    )


def register(
    cfg: RegisterConfig,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    net: nn.Module | None = None,
    stream: Any = None,
    progress: bool | None = False,
) -> dict[str, Any]:
    """Train the registration ``cfg`` describes into ``run_dir`` and return its summary.

    Everything is checked (config, data, device) before anything is written; ``run_dir`` must not
    already hold a registration run, unless ``resume``: then training goes on after the last epoch
    saved in its ``last.pt`` (weights, template, optimiser and the order of the pairs), as if it
    had not stopped; ``cfg`` may differ from the run's only in :data:`RESUMABLE_CHANGES` (see
    :func:`resume_config`). ``net`` trains another network in the same loop, on the same
    pairs, losses and metrics (a baseline, say): it takes ``(moving, fixed)`` and returns the warped
    image and the sampling grid, with :class:`RegistrationNet`'s ``sample``, ``displacement``,
    ``dense`` and ``family`` (only :class:`RegistrationNet` runs reload with
    :func:`load_registration`).

    Args:
        cfg: the registration.
        run_dir: the run directory to write.
        resume: go on with the run in ``run_dir``.
        net: another network to train (default: :class:`RegistrationNet` as ``cfg`` describes it).
        stream: where the log goes (default standard output).
        progress: a progress bar.

    Returns:
        The summary (``summary.json``): Dice before and after (mean and per label), % folding,
        seconds, the network and its transform.

    Examples:
        >>> import io
        >>> cfg = RegisterConfig(data="shapes3d", data_options=dict(size=8, train=4, test=2),
        ...                      features=(4, 8), final=(4,), epochs=1)  # tiny: 8^3 voxels, one epoch
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> run_dir = folder / "run"
        >>> summary = register(cfg, run_dir, stream=io.StringIO())
        >>> summary["transform"], summary["diffeomorphic"], list(summary["dice_per_label"])
        ('field3d', True, ['body', 'left', 'right', 'core'])
        >>> sorted(p.name for p in run_dir.iterdir())
        ['config.json', 'last.pt', 'metrics.csv', 'summary.json', 'train.log']
    """
    cfg.validate()
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = Path(run_dir)
    saved = _saved_for_resume(run, cfg, net) if resume else None
    if saved is None and (run / "last.pt").exists():
        raise ValueError(f"{run} already holds a run; pick another --out, or go on with it (--resume {run})")
    reg = build(cfg, device, net)
    params = list(reg.net.parameters()) + ([reg.template] if reg.template is not None else [])
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    rows: list[dict[str, Any]] = []
    elapsed, done = 0.0, 0
    if saved is not None:
        _restore(reg, optimizer, generator, saved)
        rows = _metrics_until(run, saved["epoch"])
        elapsed, done = rows[-1]["seconds"], saved["epoch"]
    run.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    log = RunLog(run / "train.log", stream, progress)
    try:
        log(
            f"stn register: {cfg.transform}{' (diffeomorphic)' if cfg.diffeomorphic and reg.net.dense else ''} "
            f"on {reg.data.source}; {'template' if reg.template is not None else 'pairs'}, "
            f"{sum(p.numel() for p in reg.net.parameters()):,} parameters, device {device}, float32"
        )
        if done:
            log(f"Resuming {run} after epoch {done} of {cfg.epochs}")
        else:
            start = evaluate(reg)
            log(f"Before: Dice {start.dice_initial:.4f} (per label {_round(start.dice_before)})")
        for epoch in range(done + 1, cfg.epochs + 1):
            tic = time.perf_counter()
            train_loss, terms = _train_epoch(reg, optimizer, generator, epoch)
            seconds = time.perf_counter() - tic
            elapsed += seconds
            result = evaluate(reg)
            rows.append(_epoch_row(epoch, train_loss, result, seconds, elapsed))
            parts = ", ".join(f"{name} {value:.4f}" for name, value in terms.items())
            log(
                f"Epoch {epoch}: loss {train_loss:.4f} ({parts}), test Dice {result.dice:.4f} "
                f"(before {result.dice_initial:.4f}), folding {result.folding_mean:.3f}% "
                f"(max {result.folding_max:.3f}%), {seconds:.1f} s"
            )
            _write_metrics(run / "metrics.csv", rows)
            checkpoint.save(_payload(reg, epoch, optimizer, generator), run / "last.pt")
    finally:
        log.close()
    summary = _summary(cfg, reg, device, rows, result, elapsed)
    write_text_atomic(run / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _train_epoch(
    reg: Registration, optimizer: torch.optim.Optimizer, generator: torch.Generator, epoch: int
) -> tuple[float, dict[str, float]]:
    """One pass over the training images, each as moving once; the mean loss and the last step's terms."""
    cfg = reg.cfg
    n = len(reg.data.train_images)
    moving_order = torch.randperm(n, generator=generator)
    fixed_order = torch.randperm(n, generator=generator)
    total = 0.0
    for step in range(math.ceil(n / cfg.batch_size)):
        part = slice(step * cfg.batch_size, (step + 1) * cfg.batch_size)
        moving, moving_labels = reg.images("train", moving_order[part])
        fixed, fixed_labels = reg.fixed_for(moving, "train", fixed_order[part])
        loss, terms = loss_terms(reg, moving, moving_labels, fixed, fixed_labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RuntimeError(f"the loss is {value} at epoch {epoch}, step {step}")
        total += value * len(moving)
    return round(total / n, 6), {name: float(v.detach()) for name, v in terms.items()}


def _epoch_row(epoch: int, train_loss: float, result: Evaluation, seconds: float, elapsed: float) -> dict[str, Any]:
    """The epoch's line of ``metrics.csv``."""
    return dict(
        epoch=epoch,
        train_loss=train_loss,
        test_similarity=round(result.similarity, 6),
        dice_before=round(result.dice_initial, 4),
        dice=round(result.dice, 4),
        folding_percent=round(result.folding_mean, 4),
        folding_max_percent=round(result.folding_max, 4),
        epoch_seconds=round(seconds, 1),
        seconds=round(elapsed, 1),
    )


def _summary(
    cfg: RegisterConfig,
    reg: Registration,
    device: torch.device,
    rows: list[dict[str, Any]],
    result: Evaluation,
    elapsed: float,
) -> dict[str, Any]:
    """``summary.json``: the run's configuration in short and its last epoch's metrics."""
    return dict(
        data=cfg.data,
        network=type(reg.net).__name__,
        parameters=sum(p.numel() for p in reg.net.parameters()),
        transform=reg.net.family.name,
        diffeomorphic=bool(cfg.diffeomorphic and reg.net.dense),
        template=cfg.template,
        epochs=cfg.epochs,
        device=str(device),
        precision="float32",
        dice_before=rows[-1]["dice_before"],
        dice=rows[-1]["dice"],
        dice_per_label=dict(zip(reg.data.label_names[1:], _round(result.dice_after), strict=True)),
        folding_percent=rows[-1]["folding_percent"],
        folding_max_percent=rows[-1]["folding_max_percent"],
        seconds=round(elapsed, 1),
        seconds_per_epoch=round(elapsed / cfg.epochs, 1),
    )


def _round(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as file:
        return [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()} for row in csv.DictReader(file)]


def _metrics_until(run: Path, epoch: int) -> list[dict[str, Any]]:
    """The first ``epoch`` rows of the run's ``metrics.csv``: its history up to ``last.pt``."""
    try:
        rows = _read_metrics(run / "metrics.csv")[:epoch]
    except (OSError, ValueError, TypeError):  # missing, or not the table this module writes
        rows = []
    if len(rows) < epoch:
        raise ValueError(f"{run}/metrics.csv does not hold the {epoch} epochs of its last.pt: cannot resume")
    return rows


def _payload(
    reg: Registration, epoch: int, optimizer: torch.optim.Optimizer, generator: torch.Generator
) -> dict[str, Any]:
    return dict(
        kind="registration",
        config=reg.cfg.to_dict(),
        epoch=epoch,
        model_state=reg.net.state_dict(),
        network=type(reg.net).__name__,
        template=None if reg.template is None else reg.template.detach().cpu(),
        optimizer_state=optimizer.state_dict(),
        generator_state=generator.get_state(),
    )


def resume_config(run_dir: str | os.PathLike, changes: dict[str, Any] | None = None) -> RegisterConfig:
    """The config that goes on with the registration run in ``run_dir``: its own, with
    ``changes`` (field -> value) made; only :data:`RESUMABLE_CHANGES` may differ.

    Args:
        run_dir: a run directory of :func:`register`.
        changes: the fields to change (``{"epochs": 20}``).

    Examples:
        >>> import io
        >>> cfg = RegisterConfig(data="shapes2d", data_options=dict(size=8, train=4, test=2),
        ...                      features=(4,), final=(4,), epochs=1)  # tiny: 8x8 pixels, one epoch
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> run_dir = folder / "run"
        >>> _ = register(cfg, run_dir, stream=io.StringIO())
        >>> more = resume_config(run_dir, {"epochs": 2})
        >>> summary = register(more, run_dir, resume=True, stream=io.StringIO())
        >>> summary["epochs"], (run_dir / "metrics.csv").read_text().count("\\n")  # a header and two epochs
        (2, 3)
        >>> resume_config(run_dir, {"lr": 0.1})
        Traceback (most recent call last):
        ...
        ValueError: --resume keeps the run's config; these would change: --lr (only --epochs, ...)
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ValueError(f"{run_dir} holds no registration run to resume (no config.json)")
    saved = RegisterConfig.from_dict(json.loads(path.read_text()))
    cfg = dataclasses.replace(saved, **(changes or {})).validate()
    _check_changes(saved, cfg)
    return cfg


def _check_changes(saved: RegisterConfig, cfg: RegisterConfig) -> None:
    refused = saved.refused_changes(cfg)
    if refused:
        raise ValueError(resume_refusal(refused, RESUMABLE_CHANGES))


def _saved_for_resume(run: Path, cfg: RegisterConfig, net: nn.Module | None) -> dict[str, Any]:
    """The checkpoint to go on from, once it is known that ``cfg`` may go on with it."""
    if not (run / "last.pt").is_file():
        raise ValueError(f"{run} holds no finished epoch to resume (no last.pt)")
    saved = checkpoint.load(run / "last.pt", map_location="cpu")
    if saved.get("kind") != "registration" or "optimizer_state" not in saved:
        raise ValueError(f"{run}/last.pt is not a resumable registration checkpoint")
    network = type(net).__name__ if net is not None else "RegistrationNet"
    if saved.get("network") != network:
        raise ValueError(f"{run} trained a {saved.get('network')}, not a {network}")
    _check_changes(RegisterConfig.from_dict(saved["config"]), cfg)
    if saved["epoch"] >= cfg.epochs:
        raise ValueError(f"{run} has trained {saved['epoch']} of {cfg.epochs} epochs; give more --epochs to go on")
    return saved


def _restore(
    reg: Registration, optimizer: torch.optim.Optimizer, generator: torch.Generator, saved: dict[str, Any]
) -> None:
    reg.net.load_state_dict(saved["model_state"])
    if reg.template is not None:
        with torch.no_grad():
            reg.template.copy_(saved["template"])
    optimizer.load_state_dict(saved["optimizer_state"])
    generator.set_state(saved["generator_state"])


def load_registration(run_dir: str | os.PathLike, device: str = "cpu") -> Registration:
    """The registration saved in ``run_dir`` (its ``last.pt``), data rebuilt, on ``device``.

    Args:
        run_dir: a run directory of :func:`register` (with stn's network).
        device: where the network goes.

    Examples:
        >>> import io
        >>> cfg = RegisterConfig(data="shapes3d", data_options=dict(size=8, train=4, test=2),
        ...                      features=(4, 8), final=(4,), epochs=1)  # tiny: 8^3 voxels, one epoch
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> _ = register(cfg, folder / "run", stream=io.StringIO())
        >>> reg = load_registration(folder / "run")
        >>> type(reg.net).__name__, reg.cfg == cfg, reg.data.size
        ('RegistrationNet', True, (8, 8, 8))
    """
    payload = checkpoint.load(Path(run_dir) / "last.pt", map_location=device)
    if payload.get("kind") != "registration" or payload.get("network") != "RegistrationNet":
        raise ValueError(f"{run_dir} does not hold a registration run of stn's network")
    reg = build(RegisterConfig.from_dict(payload["config"]), torch.device(device))
    reg.net.load_state_dict(payload["model_state"])
    if payload["template"] is not None:
        reg.template = nn.Parameter(payload["template"].to(device))
    return reg
