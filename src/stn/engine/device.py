"""The training device, and a data set's tensors on it with the batches drawn from them."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from stn import data as stn_data
from stn.engine.augment import random_crop, random_flip
from stn.normalization import Normalizer

__all__ = ["DeviceData", "resolve_device"]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; otherwise the named device, checked
    (``ValueError`` naming what is missing).

    Args:
        name: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Examples:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("tpu")
        Traceback (most recent call last):
        ...
        ValueError: unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps
    """
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
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name} asked for, but this machine has {torch.cuda.device_count()} CUDA devices")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device mps asked for, but MPS is not available here")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


class DeviceData:
    """A data set's tensors on the training device, and the batches drawn from them.

    Images stay uint8 until a batch is taken; augmentation (per sample, from ``generator``) and
    normalisation with the data set's own statistics happen batched on the device. A data set
    that draws its training images anew (:attr:`~stn.data.Dataset.draw_train`) draws every batch
    on the device from ``generator``, in place of the fixed training images.

    Args:
        dataset: the data set (uint8 images, int64 labels).
        device: where its tensors go.
        channels_last: batches in the channels-last memory format.

    Examples:
        >>> import stn
        >>> data = DeviceData(stn.data.load("glyphs", train_size=40, test_size=10, cache=False), torch.device("cpu"))
        >>> images, labels = next(data.test_batches(4))
        >>> images.dtype, tuple(images.shape), tuple(labels.shape)
        (torch.float32, (4, 1, 56, 56), (4,))
    """

    def __init__(self, dataset: stn_data.Dataset, device: torch.device, channels_last: bool = False) -> None:
        self.dataset = dataset
        self.device = device
        self.channels_last = channels_last
        self.train_images = dataset.train_images.to(device)
        self.train_labels = dataset.train_labels.to(device)
        self.test_images = dataset.test_images.to(device)
        self.test_labels = dataset.test_labels.to(device)
        self.normalizer = Normalizer(dataset.mean, dataset.std)
        self.draw_train = None if dataset.draw_train is None else dataset.draw_train.to(device)

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 ``(N, C, H, W)`` -> normalised float32, in the configured memory format."""
        x = self.normalizer(images)
        if not self.channels_last:
            return x
        return x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)

    def denormalize(self, x: Tensor) -> Tensor:
        """Normalised float ``(N, C, H, W)`` -> uint8 on the CPU (clamped to ``[0, 255]``)."""
        return self.normalizer.invert(x)

    def train_batches(
        self,
        batch_size: int,
        generator: torch.Generator,
        augment: str = "none",
        padding: int = 4,
        drop_last: bool = False,
        part: Callable[[int], slice] | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(images, labels)`` for one epoch in a random order drawn from ``generator``.

        With ``part`` (a rank's :meth:`~stn.engine.distributed.Group.part`), each batch is cut to
        ``part(len(batch))`` after distortion and augmentation, so the union over ranks is the
        whole batch."""
        n = len(self.train_labels)
        order = torch.randperm(n, generator=generator, device=generator.device).to(self.device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            index = order[start : start + batch_size]
            images = self.train_images[index] if self.draw_train is None else self.draw_train(index, generator)
            if augment in ("crop", "crop-flip"):
                images = random_crop(images, padding, generator)
            if augment in ("flip", "crop-flip"):
                images = random_flip(images, generator)
            labels = self.train_labels[index]
            if part is not None:
                cut = part(len(index))
                images, labels = images[cut], labels[cut]
            yield self.normalize(images), labels

    def test_batches(self, batch_size: int, part: slice | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """The test set (or its slice ``part``) in order, in batches of ``batch_size``."""
        images, labels = self.test_images, self.test_labels
        if part is not None:
            images, labels = images[part], labels[part]
        for start in range(0, len(labels), batch_size):
            yield self.normalize(images[start : start + batch_size]), labels[start : start + batch_size]

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        n = len(self.train_labels)
        return n // batch_size if drop_last else math.ceil(n / batch_size)
