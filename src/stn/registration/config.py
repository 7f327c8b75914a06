"""What a registration run is: :class:`RegisterConfig` (saved as ``config.json`` in its run directory).

Every field carries its command-line help in its metadata; ``stn register``'s flags are made
from it (:mod:`stn.registration.cli`). This module imports no torch, so ``stn --help`` stays quick.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RESUMABLE_CHANGES", "SIMILARITIES", "RegisterConfig"]

SIMILARITIES = ("ncc", "mse")


# What a resumed run may change: how long it trains, and where; not what it is.
RESUMABLE_CHANGES = ("epochs", "device", "threads", "data_root")


def option(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata=dict(help=help, choices=choices))


@dataclass
class RegisterConfig:
    """An unsupervised registration run: a network that aligns a moving volume (or image) to a
    fixed one, trained on pairs of a data set (or, with ``template``, on every image against one
    learned template: congealing).

    Every field is an option of ``stn register`` (its help is the field's ``help`` metadata).

    Attributes:
        data: the data set: ``shapes3d``, ``shapes2d`` or ``mnist`` (:func:`load_data`).
        data_root: the folder holding MNIST (data set ``mnist``).
        data_options: the data set's options.
        transform: ``field`` (a dense field; ``field3d`` for volumes) or a matrix family
            (``affine3d``, ``affine``, ...).
        diffeomorphic: integrate the field as a stationary velocity (scaling and squaring).
        steps: scaling-and-squaring steps.
        features: the U-Net's encoder widths, one per level.
        final: widths of the U-Net's convolutions at full size.
        template: align every image to one learned template (congealing) instead of pairs.
        similarity: ``ncc`` (local normalised cross-correlation) or ``mse``.
        window: the NCC window, pixels per side (odd).
        smoothness: weight of the field's smoothness (mean squared gradient, in voxels).
        dice_weight: weight of the Dice loss on the label maps (0: unsupervised).
        centre_weight: with ``template``, weight of the batch's mean displacement, in voxels
            (keeps the template central).
        epochs: epochs (one pass over the training images as moving images).
        batch_size: pairs per step.
        lr: Adam's learning rate.
        seed: the random seed (pairs, initial weights).
        device: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``.
        threads: torch's CPU threads (``None``: torch's default).

    Examples:
        >>> cfg = RegisterConfig(data="shapes2d", epochs=2).validate()
        >>> cfg.transform, cfg.similarity, RegisterConfig.from_dict(cfg.to_dict()) == cfg
        ('field', 'ncc', True)
        >>> RegisterConfig(window=8).validate()
        Traceback (most recent call last):
        ...
        ValueError: window must be odd, got 8
    """

    data: str = option("shapes3d", "registration data set: shapes3d, shapes2d, mnist (stn.registration.data)")
    data_root: str | None = option(None, "folder holding MNIST (data set mnist)")
    data_options: dict[str, Any] = field(
        default_factory=dict, metadata=dict(help="an option of the data set, repeatable: KEY=VALUE")
    )
    transform: str = option("field", "field (dense, field3d for volumes) or a matrix family (affine3d, affine, ...)")
    diffeomorphic: bool = option(True, "integrate the field as a stationary velocity (scaling and squaring)")
    steps: int = option(7, "scaling-and-squaring steps")
    features: tuple[int, ...] = field(
        default=(16, 32, 32, 32), metadata=dict(help="U-Net encoder widths, one per level (comma-separated)")
    )
    final: tuple[int, ...] = field(
        default=(16, 16), metadata=dict(help="widths of the U-Net's convolutions at full size (comma-separated)")
    )
    template: bool = option(False, "align every image to one learned template (congealing) instead of pairs")
    similarity: str = option(
        "ncc", "image similarity: local normalised cross-correlation or mean squared error", SIMILARITIES
    )
    window: int = option(9, "NCC window, pixels per side")
    smoothness: float = option(1.0, "weight of the field's smoothness (mean squared gradient, in voxels)")
    dice_weight: float = option(0.0, "weight of the Dice loss on the label maps (0: unsupervised)")
    centre_weight: float = option(
        1.0, "with --template: weight of the batch's mean displacement, in voxels (keeps the template central)"
    )
    epochs: int = option(10, "epochs (one pass over the training images as moving images)")
    batch_size: int = option(4, "pairs per step")
    lr: float = option(1e-3, "Adam learning rate")
    seed: int = option(0, "random seed (pairs, initial weights)")
    device: str = option("cpu", "cpu, cuda, cuda:N, mps or auto")
    threads: int | None = option(None, "CPU threads for torch")

    def validate(self) -> RegisterConfig:
        """Raise ``ValueError`` naming the first bad value; return ``self``."""
        for name in ("steps", "window", "epochs", "batch_size", "seed"):
            value = getattr(self, name)
            low = 0 if name in ("steps", "seed") else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name.replace('_', '-')} must be an integer >= {low}, got {value!r}")
        if self.window % 2 == 0:
            raise ValueError(f"window must be odd, got {self.window}")
        for name in ("smoothness", "dice_weight", "centre_weight"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < float("inf"):
                raise ValueError(f"{name.replace('_', '-')} must be a number >= 0, got {value!r}")
        if not isinstance(self.lr, int | float) or not 0 < self.lr < float("inf"):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {self.similarity!r}; choose one of: {', '.join(SIMILARITIES)}")
        for name in ("features", "final"):
            widths = getattr(self, name)
            if not widths or any(not isinstance(f, int) or f < 1 for f in widths):
                raise ValueError(f"{name} must be positive ints, got {widths!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads must be a positive int, got {self.threads!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["features"], values["final"] = list(self.features), list(self.final)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RegisterConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known - {"format"}
        if unknown:
            raise ValueError(f"unknown registration config keys: {', '.join(sorted(unknown))}")
        values = {k: v for k, v in values.items() if k in known}
        for name in ("features", "final"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values).validate()

    def refused_changes(self, other: RegisterConfig) -> list[str]:
        """The fields where ``other`` differs from this config and a resumed run may not
        (all but :data:`RESUMABLE_CHANGES`)."""
        return [
            f.name
            for f in dataclasses.fields(self)
            if f.name not in RESUMABLE_CHANGES and getattr(self, f.name) != getattr(other, f.name)
        ]
