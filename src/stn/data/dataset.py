"""The in-memory data set every loader returns: uint8 image tensors and int64 labels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["Dataset", "FreshDistortion", "TrainDraw", "channel_stats"]


@dataclass
class Dataset:
    """A decoded data set.

    Attributes:
        name: the data set's name.
        train_images: ``(N, C, H, W)`` uint8 images, or ``(N, C, D, H, W)`` volumes.
        train_labels: ``(N,)`` int64 in ``[0, len(classes))``.
        test_images: as ``train_images``.
        test_labels: as ``train_labels``.
        classes: class names, index = label.
        mean: per-channel means of the training images on ``[0, 1]``, used to normalise (default:
            computed by :func:`channel_stats`).
        std: their per-channel standard deviations.
        source: where it was read from, for messages and run configs.
        skipped: unreadable files left out (image folders read with ``skip_bad_images=True``).
        draw_train: for a data set that draws its training images anew for every batch (distorted
            MNIST with ``fresh_distortions=True``), the hook that draws them (:class:`TrainDraw`);
            ``None``: the training images are the fixed ``train_images``. Never cached.

    Examples:
        >>> zeros = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
        >>> data = Dataset("tiny", zeros, torch.tensor([0, 1, 0, 1]), zeros[:2], torch.tensor([0, 1]), ["a", "b"])
        >>> data.input_shape, data.num_classes, data.mean
        ((1, 8, 8), 2, (0.0,))
    """

    name: str
    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    classes: list[str]
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())
    source: str = ""
    skipped: list[str] = field(default_factory=list)
    draw_train: TrainDraw | None = None

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if images.dtype != torch.uint8 or images.dim() not in (4, 5):
                raise ValueError(
                    f"{self.name}: {split} images must be uint8 (N, C, H, W) or volumes (N, C, D, H, W), "
                    f"got {images.dtype} {tuple(images.shape)}"
                )
            if labels.shape != (images.shape[0],):
                raise ValueError(f"{self.name}: {len(labels)} {split} labels for {images.shape[0]} images")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError(f"{self.name}: train and test images differ in shape")
        if self.draw_train is not None and len(self.draw_train) != self.train_images.shape[0]:
            raise ValueError(
                f"{self.name}: the training draw stands for {len(self.draw_train)} images, "
                f"not the {self.train_images.shape[0]} training images"
            )
        if not self.mean:
            self.mean, self.std = channel_stats(self.train_images)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of one image (volumes: ``(C, D, H, W)``)."""
        return tuple(int(n) for n in self.train_images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.train_labels)}, test={len(self.test_labels)}, "
            f"shape={self.input_shape}, classes={self.num_classes})"
        )


class TrainDraw(Protocol):
    """A data set's own way to draw training images: ``draw(index, generator)`` gives uint8 images
    ``(len(index), C, H, W)`` standing for training images ``index``, drawn from ``generator``.
    ``draw.to(device)`` is the same draw with its tensors on ``device``; ``len(draw)`` the number of
    training images it stands for."""

    def __call__(self, index: Tensor, generator: torch.Generator) -> Tensor: ...

    def to(self, device: torch.device) -> TrainDraw: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class FreshDistortion:
    """Training images distorted anew (a :class:`TrainDraw`): ``distort(sources[i], generator)``
    stands for training image ``i``.

    Attributes:
        sources: ``(N, C, h, w)`` uint8, the undistorted images, in the order of the training labels.
        distort: ``(uint8 images, torch.Generator) -> uint8 images`` of the data set's training shape;
            it draws its parameters on the CPU.
    """

    sources: Tensor
    distort: Callable[[Tensor, torch.Generator], Tensor]

    def __post_init__(self) -> None:
        if self.sources.dtype != torch.uint8 or self.sources.dim() != 4:
            raise ValueError(f"fresh distortions need uint8 (N, C, H, W) sources, got {self.sources.dtype}")

    def __len__(self) -> int:
        return self.sources.shape[0]

    def to(self, device: torch.device) -> FreshDistortion:
        return FreshDistortion(self.sources.to(device), self.distort)

    def __call__(self, index: Tensor, generator: torch.Generator) -> Tensor:
        if generator.device.type != "cpu":  # the parameters are drawn on the CPU, from a generator seeded here
            seed = torch.randint(0, 2**62, (), generator=generator, device=generator.device)
            generator = torch.Generator().manual_seed(int(seed))
        return self.distort(self.sources[index], generator)


def channel_stats(images: Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std on ``[0, 1]`` of uint8 images ``(N, C, H, W)`` or volumes ``(N, C, D, H, W)``.

    Args:
        images: the uint8 images.
        chunk: images converted to float at a time (bounds the memory used).

    Returns:
        ``(mean, std)``, a tuple of ``C`` floats each, rounded to 4 digits (a std of 0 is 1).

    Examples:
        >>> images = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
        >>> channel_stats(images)
        ((0.5,), (0.5,))
    """
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].to(torch.float64).div_(255).transpose(0, 1).reshape(c, -1)
        total += x.sum(1)
        squares += x.square().sum(1)
    count = images.numel() / c
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)
