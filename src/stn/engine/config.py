"""Training configuration and the named recipes (``--recipe seed`` and ``--recipe fast``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RECIPES", "TrainConfig", "from_recipe"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "onecycle")
AUGMENTS = ("none", "flip", "crop", "crop-flip")
FILLS = ("zeros", "black", "border")
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


@dataclass
class TrainConfig:
    """Everything needed to rerun a training run (saved as ``config.json`` in its run directory).

    ``stn_fill`` chooses what the transformer reads outside the image: ``zeros`` (zero in
    normalised space, i.e. the mean colour: the seed's choice), ``black`` (the normalised value
    of black) or ``border`` (the nearest edge pixel).
    """

    model: str = "seed-cifar"
    dataset: str | None = None  # None: the model's own data set
    data_root: str | None = None
    image_size: tuple[int, int] | None = None  # resize folder data sets
    dataset_options: dict[str, Any] = field(default_factory=dict)  # more options of the data set (seed, sizes, ...)
    stn: bool = True
    transform: str = "affine"
    stn_fill: str = "zeros"
    stn_lr_scale: float = 1.0  # the transformers' learning rate, relative to the rest of the model
    recipe: str = "seed"
    epochs: int = 50
    batch_size: int = 64
    test_batch_size: int = 1000
    drop_last: bool = False
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    flip_tta: bool = False  # evaluate on each test image and its mirror image, averaging probabilities
    augment: str = "none"
    crop_padding: int = 4
    seed: int = 1
    log_interval: int = 500
    device: str = "auto"
    threads: int | None = None
    channels_last: bool = True  # measured faster on CPU (see benchmarks); same function
    compile: str = "off"
    amp: str = "auto"  # auto: bf16 where native and faster (engine.precision.resolve_amp); or "bf16", "off"
    snapshot_images: int = 16
    report: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> TrainConfig:
        """Raise ``ValueError`` naming the first bad value; return ``self``."""
        positive = ("epochs", "batch_size", "test_batch_size", "log_interval")
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)!r}")
        if not self.lr > 0 or self.lr != self.lr or self.lr == float("inf"):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        for name in ("momentum", "weight_decay", "warmup_epochs", "label_smoothing", "stn_lr_scale"):
            value = getattr(self, name)
            if not 0 <= value < float("inf"):
                raise ValueError(f"{name.replace('_', '-')} must be >= 0, got {value}")
        if self.momentum >= 1 or self.label_smoothing >= 1:
            raise ValueError("momentum and label-smoothing must be below 1")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs a momentum above 0")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be a positive integer, got {self.threads}")
        if self.crop_padding < 0 or self.snapshot_images < 0:
            raise ValueError("crop-padding and snapshot-images must be >= 0")
        choices = {
            "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES,
            "augment": AUGMENTS,
            "stn_fill": FILLS,
            "compile": COMPILE_MODES,
            "amp": ("auto", "bf16", "off"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name.replace('_', '-')} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}"
                )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        values = dict(values)
        if values.get("image_size") is not None:
            values["image_size"] = tuple(values["image_size"])
        return cls(**values)


RECIPES: dict[str, dict[str, Any]] = {
    # The seed experiment (the PyTorch STN tutorial's loop on CIFAR-10): plain SGD, lr 0.01,
    # batch 64, test batch 1000, a log line every 500 batches.
    "seed": {},
    # Same architecture, more accuracy (results/fast-cifar): Nesterov momentum with a one-cycle
    # schedule (5 warm-up epochs, then linear decay to 0), batch 128, weight decay on weights,
    # per-sample flips, the transformer learning at a tenth of the rate and reading black outside
    # the image, and flip test-time augmentation. Random crops and label smoothing measured worse
    # on this small, heavily dropped-out network: it underfits.
    "fast": dict(
        batch_size=128,
        drop_last=True,
        optimizer="sgd",
        lr=0.02,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        schedule="onecycle",
        warmup_epochs=5,
        augment="flip",
        stn_fill="black",
        stn_lr_scale=0.1,
        flip_tta=True,
        test_batch_size=2000,
        log_interval=100,
    ),
}


def from_recipe(recipe: str = "seed", **overrides: Any) -> TrainConfig:
    """A validated config: the recipe's values, then ``overrides`` (``None`` values ignored)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    values = {**RECIPES[recipe], **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(recipe=recipe, **values).validate()
