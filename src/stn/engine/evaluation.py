"""Test-set evaluation: of a model on device data, and of a trained run or checkpoint."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from stn import data as stn_data
from stn import inference as stn_inference
from stn.engine.config import TrainConfig
from stn.engine.device import DeviceData, resolve_device
from stn.engine.log import test_line
from stn.engine.model import channels_last_format
from stn.engine.precision import autocast, autocast_dtype
from stn.engine.run import RunError, load_model, per_class_accuracy

if TYPE_CHECKING:
    from stn.engine.distributed import Group

__all__ = ["EvalResult", "evaluate", "evaluate_checkpoint"]


@dataclass
class EvalResult:
    """Sum-reduced loss averaged over the test set, correct count, and per-class counts.

    Attributes:
        loss: the mean loss per test image.
        correct: the correctly classified test images.
        total: the test images.
        class_correct: correct images per class.
        class_total: images per class.
        classes: the class names.

    Examples:
        >>> result = EvalResult(0.25, 3, 4, [1, 2], [2, 2], ["cat", "dog"])
        >>> result.accuracy, result.per_class()
        (75.0, {'cat': 50.0, 'dog': 100.0})
        >>> result.line()
        'Test set: Average loss: 0.2500, Accuracy: 3/4 (75%)'
    """

    loss: float
    correct: int
    total: int
    class_correct: list[int]
    class_total: list[int]
    classes: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.total

    def per_class(self) -> dict[str, float]:
        """``{class: accuracy in %}``."""
        return per_class_accuracy(self.classes, self.class_correct, self.class_total)

    def line(self) -> str:
        return test_line(self.loss, self.correct, self.total)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: DeviceData,
    batch_size: int = 1000,
    autocast_dtype: torch.dtype | None = None,
    flip_tta: bool = False,
    group: Group | None = None,
) -> EvalResult:
    """Test-set loss (NLL of the model's log-probabilities), accuracy and per-class accuracy.

    Runs under autocast to ``autocast_dtype`` (``None``: fp32). With ``flip_tta`` the prediction is
    the mean of the probabilities for each image and its mirror image (test-time augmentation).
    With an active ``group`` each rank tests its slice of the test set and the sums are
    all-reduced: every rank gets the whole set's result. ``model`` must then be the unwrapped one
    (not ``DistributedDataParallel``, whose forward is a collective).

    Args:
        model: ``(N, *input_shape)`` normalised images -> ``(N, classes)`` log-probabilities.
        data: the data set on the device; its test split is evaluated.
        batch_size: test images per batch.
        autocast_dtype: the autocast dtype; ``None``: fp32.
        flip_tta: average with the mirror images' predictions.
        group: the processes evaluating together (default: this one alone).

    Examples:
        >>> import stn
        >>> from stn.engine import DeviceData
        >>> data = DeviceData(stn.data.load("glyphs", train_size=32, test_size=32, cache=False), torch.device("cpu"))
        >>> model = stn.models.create("paper-cnn", input_shape=(1, 56, 56), num_classes=10)
        >>> result = evaluate(model, data, batch_size=16)
        >>> result.total, len(result.per_class())
        (32, 10)
    """
    model.eval()
    num_classes = data.dataset.num_classes
    loss = torch.zeros((), device=data.device, dtype=torch.float64)
    class_correct = torch.zeros(num_classes, device=data.device, dtype=torch.long)
    part = group.part(len(data.test_labels)) if group is not None and group.active else None
    for images, labels in data.test_batches(batch_size, part):
        with autocast(data.device, autocast_dtype):
            output = model(images).float()
            if flip_tta:
                output = stn_inference.flip_tta(model, images, output)
        loss += F.nll_loss(output, labels, reduction="sum")
        # index_add_, not bincount(labels[hits]): a mask and bincount both wait for the device.
        class_correct.index_add_(0, labels, (output.argmax(1) == labels).long())
    if part is not None:
        group.sum(loss)
        group.sum(class_correct)
    class_total = torch.bincount(data.test_labels, minlength=num_classes)
    total = len(data.test_labels)
    per_class = class_correct.cpu().tolist()
    return EvalResult(
        float(loss) / total, sum(per_class), total, per_class, class_total.cpu().tolist(), list(data.dataset.classes)
    )


def evaluate_checkpoint(
    target: str | os.PathLike,
    which: str = "best",
    dataset: str | None = None,
    data_root: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    model: str | None = None,
) -> tuple[EvalResult, dict, Path]:
    """Evaluate a run directory's ``best.pt``/``last.pt`` (``which``) or a checkpoint file.

    By default on exactly the test set the run used (its data set, options and data root) and as
    it evaluated (batch size, autocast, flip TTA, memory format), so the accuracy equals what
    ``metrics.csv`` recorded for that epoch on the same device. ``dataset`` names another data
    set with the same image shape and classes (read from ``data_root`` or the default root).
    With ``model``, ``target`` is a plain ``state_dict`` file of that registered model, from stn
    or another program (see :func:`~stn.engine.run.load_model`). Returns the result, the
    checkpoint's payload and its path.

    Args:
        target: a run directory or a checkpoint file (with ``model``: a ``state_dict`` file).
        which: ``best`` or ``last``, the checkpoint of a run directory.
        dataset: another data set to evaluate on (default: the run's own).
        data_root: where the data set is read (default: the run's, else the default root).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        batch_size: test images per batch (default: the run's).
        model: the registered model a plain ``state_dict`` file holds.

    Examples:
        >>> import io, os, tempfile
        >>> from unittest import mock
        >>> from stn.engine import from_recipe, train
        >>> cfg = from_recipe("demo", model="paper-cnn", dataset="glyphs", epochs=1, device="cpu", amp="off",
        ...                   dataset_options=dict(train_size=128, test_size=64))
        >>> folder = tempfile.mkdtemp()
        >>> with mock.patch.dict(os.environ, {"STN_CACHE": folder}):
        ...     _ = train(cfg, os.path.join(folder, "run"), stream=io.StringIO(), progress=False)
        ...     result, payload, path = evaluate_checkpoint(os.path.join(folder, "run"), "last", device="cpu")
        >>> path.name, payload["dataset"], result.total
        ('last.pt', 'glyphs', 64)
    """
    net, payload, path = load_model(target, which, model, dataset, data_root)
    model = net
    cfg = TrainConfig.from_dict(payload["config"]) if "config" in payload else TrainConfig()
    if dataset is None or dataset == payload["dataset"]:
        if "config" not in payload:
            raise RunError(f"{path} does not record its data set's options; name one with --dataset")
        data = stn_data.load(cfg.dataset, data_root or cfg.data_root, **cfg.dataset_options)
    else:
        data = stn_data.load(dataset, data_root)
    expected = tuple(payload["model_options"]["input_shape"])
    if data.input_shape != expected:
        raise ValueError(f"{data.name} images are {data.input_shape}, the model expects {expected}")
    if data.num_classes != payload["model_options"]["num_classes"]:
        raise ValueError(
            f"{data.name} has {data.num_classes} classes, the model {payload['model_options']['num_classes']}"
        )
    data.mean, data.std = tuple(payload["mean"]), tuple(payload["std"])  # the statistics it was trained with
    dev = resolve_device(device)
    model = model.to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=channels_last_format(data))
    result = evaluate(
        model,
        DeviceData(data, dev, cfg.channels_last),
        batch_size or cfg.test_batch_size,
        autocast_dtype(cfg.amp, dev),
        cfg.flip_tta,
    )
    return result, payload, path
