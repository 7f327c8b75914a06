"""Registration data sets, made here: images or volumes with label maps.

* ``shapes3d`` / ``shapes2d``: an anatomy of ellipsoids (ellipses in 2-D) -- a body, two
  "ventricles" of one brightness and a darker core -- each subject with its own sizes and positions,
  then deformed by its own smooth random diffeomorphism (a random velocity field, integrated). The
  label maps (0 background, 1 body, 2 left, 3 right, 4 core) are exact, evaluated at the deformed
  coordinates; the images are the labels' intensities, blurred by a voxel and with noise.
* ``mnist``: MNIST digits of one class (``digit``), label maps the digit's pixels (``>= 128``),
  for congealing to a template.

Every set is a function of its options and seed. Images are uint8 ``(N, 1, *S)``, label maps uint8.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from stn import transforms as T

__all__ = ["DATASETS", "RegistrationData", "load_data", "mnist_digits", "shapes"]


@dataclass
class RegistrationData:
    """Images and label maps, ``(N, 1, *S)`` uint8 each, for training and testing.

    Attributes:
        name: the data set's name.
        train_images: uint8 ``(N, 1, H, W)`` images or ``(N, 1, D, H, W)`` volumes.
        train_labels: uint8 label maps of the same shape (0 the background).
        test_images: as ``train_images``.
        test_labels: as ``train_labels``.
        label_names: one name per label, the background's first.
        source: where it came from, for messages.

    Examples:
        >>> data = load_data("shapes2d", size=16, train=4, test=2)
        >>> data.size, data.ndim, data.num_labels, tuple(data.test_labels.shape)
        ((16, 16), 2, 5, (2, 1, 16, 16))
    """

    name: str
    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    label_names: list[str]
    source: str = ""

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if images.dtype != torch.uint8 or images.dim() not in (4, 5) or images.shape[1] != 1:
                raise ValueError(f"{self.name}: {split} images must be uint8 (N, 1, *S), got {tuple(images.shape)}")
            if labels.shape != images.shape or labels.dtype != torch.uint8:
                raise ValueError(f"{self.name}: {split} label maps must be uint8 of the images' shape")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError(f"{self.name}: train and test images differ in shape")

    @property
    def ndim(self) -> int:
        return self.train_images.dim() - 2

    @property
    def size(self) -> tuple[int, ...]:
        return tuple(self.train_images.shape[2:])

    @property
    def num_labels(self) -> int:
        """Labels including the background 0."""
        return len(self.label_names)


# Each shape: (label, centre (x, y, z), radii (x, y, z), intensity); later shapes lie on earlier ones.
_ANATOMY = [
    (1, (0.0, 0.0, 0.0), (0.72, 0.58, 0.62), 0.45),
    (2, (-0.3, -0.05, 0.0), (0.17, 0.3, 0.26), 0.9),
    (3, (0.3, -0.05, 0.0), (0.17, 0.3, 0.26), 0.9),
    (4, (0.0, 0.36, 0.0), (0.15, 0.13, 0.15), 0.15),
]
_NAMES = ["background", "body", "left", "right", "core"]


def shapes(
    ndim: int = 3,
    size: int = 32,
    train: int = 64,
    test: int = 16,
    seed: int = 0,
    deformation: float = 0.15,
    noise: float = 0.03,
) -> RegistrationData:
    """The ``shapes3d`` (``ndim=3``) or ``shapes2d`` set: ``size`` voxels a side.

    Args:
        ndim: 3 (volumes) or 2 (images).
        size: voxels a side.
        train: training subjects.
        test: test subjects.
        seed: of the subjects' shapes, deformations and noise.
        deformation: amplitude of the random velocity (normalised units; at 0.15 two subjects'
            labels overlap with a mean Dice of about 0.45 before registration).
        noise: standard deviation of the Gaussian noise on ``[0, 1]`` intensities.
    """
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")
    for what, value, low in (("size", size, 8), ("train", train, 1), ("test", test, 2)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{what} must be an int >= {low}, got {value!r}")
    g = torch.Generator().manual_seed(seed)
    images, labels = _subjects(train + test, ndim, size, deformation, noise, g)
    name = f"shapes{ndim}d"
    return RegistrationData(
        name,
        images[:train],
        labels[:train],
        images[train:],
        labels[train:],
        list(_NAMES),
        source=f"{name}: {train} + {test} subjects of {size}^{ndim}, seed {seed}",
    )


def _subjects(
    n: int, ndim: int, size: int, deformation: float, noise: float, g: torch.Generator
) -> tuple[Tensor, Tensor]:
    sides = (size,) * ndim
    base = T.base_grid(sides, dtype=torch.float64)
    # A smooth random velocity per subject: coarse noise, upsampled, integrated into a diffeomorphism.
    coarse = torch.randn(n, ndim, *(5,) * ndim, generator=g, dtype=torch.float64)
    mode = "bilinear" if ndim == 2 else "trilinear"
    velocity = deformation * F.interpolate(coarse, size=sides, mode=mode, align_corners=True).movedim(1, -1)
    points = base + T.integrate_velocity(velocity, 7)
    jitter = torch.rand(n, len(_ANATOMY), 2, ndim, generator=g, dtype=torch.float64) * 2 - 1
    labels = torch.zeros(n, *sides, dtype=torch.uint8)
    values = torch.zeros(n, *sides, dtype=torch.float64)
    for k, (label, centre, radii, intensity) in enumerate(_ANATOMY):
        c = torch.tensor(centre[:ndim], dtype=torch.float64) + 0.05 * jitter[:, k, 0]
        r = torch.tensor(radii[:ndim], dtype=torch.float64) * (1 + 0.1 * jitter[:, k, 1])
        shape = (n, *(1,) * ndim, ndim)
        inside = (((points - c.view(shape)) / r.view(shape)) ** 2).sum(-1) <= 1
        labels[inside] = label
        values[inside] = intensity
    pool = F.avg_pool2d if ndim == 2 else F.avg_pool3d
    blurred = pool(values.unsqueeze(1), 3, stride=1, padding=1, count_include_pad=False)
    noisy = blurred + noise * torch.randn(blurred.shape, generator=g, dtype=torch.float64)
    images = (noisy.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels.unsqueeze(1)


def mnist_digits(
    root: str | os.PathLike | None = None, digit: int = 3, train: int = 1000, test: int = 200
) -> RegistrationData:
    """The first ``train`` / ``test`` MNIST digits of class ``digit`` (MNIST found as by
    ``stn.data.load("mnist", root)``), label maps their pixels ``>= 128``.

    Args:
        root: where MNIST is read.
        digit: the class, 0 to 9.
        train: training images at most.
        test: test images at most.
    """
    from stn import data as stn_data

    if not isinstance(digit, int) or not 0 <= digit <= 9:
        raise ValueError(f"digit must be an int 0-9, got {digit!r}")
    mnist = stn_data.load("mnist", root)
    pick = {
        "train": mnist.train_images[mnist.train_labels == digit][:train],
        "test": mnist.test_images[mnist.test_labels == digit][:test],
    }
    if len(pick["test"]) < 2:
        raise ValueError(f"MNIST has too few test images of digit {digit}")
    masks = {k: (v >= 128).to(torch.uint8) for k, v in pick.items()}
    return RegistrationData(
        "mnist",
        pick["train"],
        masks["train"],
        pick["test"],
        masks["test"],
        ["background", f"digit {digit}"],
        source=f"{mnist.source}: digit {digit}, {len(pick['train'])} + {len(pick['test'])} images",
    )


DATASETS: dict[str, Callable[..., RegistrationData]] = {
    "shapes3d": lambda root=None, **options: shapes(3, **options),
    "shapes2d": lambda root=None, **options: shapes(2, **options),
    "mnist": mnist_digits,
}


def load_data(name: str, root: str | os.PathLike | None = None, **options: object) -> RegistrationData:
    """The registration data set ``name`` (one of :data:`DATASETS`) with its ``options``.

    Args:
        name: ``shapes3d``, ``shapes2d`` or ``mnist``.
        root: where MNIST is read (``mnist`` only).
        **options: the arguments of :func:`shapes` (``size``, ``train``, ``test``, ``seed``, ...)
            or of :func:`mnist_digits` (``digit``, ``train``, ``test``).

    Examples:
        >>> data = load_data("shapes3d", size=8, train=2, test=2)
        >>> tuple(data.train_images.shape), data.label_names
        ((2, 1, 8, 8, 8), ['background', 'body', 'left', 'right', 'core'])
        >>> load_data("brains")
        Traceback (most recent call last):
        ...
        ValueError: unknown registration data set 'brains'; choose one of: shapes3d, shapes2d, mnist
    """
    if name not in DATASETS:
        raise ValueError(f"unknown registration data set {name!r}; choose one of: {', '.join(DATASETS)}")
    try:
        return DATASETS[name](root, **options)
    except TypeError as err:
        raise ValueError(f"bad options for registration data set {name!r}: {err}") from None
