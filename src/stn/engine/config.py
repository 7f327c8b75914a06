"""Training configuration and the named recipes (``--recipe seed``, ``fast``, ``demo``, ``paper-*``).

Every field of :class:`TrainConfig` carries its command-line help (and choices) in its metadata:
``stn train``'s flags are generated from it, so a new option is one line here.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from stn.engine.precision import AMP_CHOICES

__all__ = ["RECIPES", "RESUMABLE_CHANGES", "TrainConfig", "from_recipe"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "onecycle")
AUGMENTS = ("none", "flip", "crop", "crop-flip")
FILLS = ("zeros", "black", "border")
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")

# Fields that `stn train --resume` may change: the rest would make the run another run.
RESUMABLE_CHANGES = ("epochs", "threads", "device", "data_root", "tensorboard")


def resume_refusal(refused: list[str], allowed: tuple[str, ...] = RESUMABLE_CHANGES) -> str:
    """The one line that refuses a ``--resume`` whose config would change the fields ``refused``,
    naming them and the ``allowed`` ones as flags."""
    flags = ", ".join("--" + name.replace("_", "-") for name in refused)
    may = ", ".join("--" + name.replace("_", "-") for name in allowed)
    return f"--resume keeps the run's config; these would change: {flags} (only {may} may)"


def option(default: Any, help: str, group: str = "recipe", choices: tuple[str, ...] | None = None, **extra: Any):
    """A config field with its command-line help, flag group and choices (see :mod:`stn.cli`)."""
    return field(default=default, metadata=dict(help=help, group=group, choices=choices, **extra))


@dataclass
class TrainConfig:
    """Everything needed to rerun a training run (saved as ``config.json`` in its run directory).

    ``stn_fill`` chooses what the transformer reads outside the image: ``zeros`` (zero in
    normalised space, i.e. the mean colour: the seed's choice), ``black`` (the normalised value
    of black) or ``border`` (the nearest edge pixel).

    Each field is also a flag of ``stn train`` (its help is the field's metadata).

    Attributes:
        model: a registered model (:func:`stn.models.list_models`).
        dataset: a registered data set (:func:`stn.data.names`); ``None``: the model's own.
        data_root: the folder holding the data (default ``$STN_DATA``, else ``~/.cache/stn``).
        dataset_options: the data set's options (:func:`stn.data.options`).
        stn: the spatial transformer in front of the network.
        transform: the transform family (:func:`stn.transforms.names`).
        stn_fill: what the transformer reads outside the image: ``zeros``, ``black`` or ``border``.
        stn_lr_scale: the transformers' learning rate relative to the model's.
        model_options: options of the model's factory (:func:`stn.models.options`).
        recipe: the named preset the config was made from (:func:`from_recipe`).
        epochs: training epochs.
        batch_size: training batch size.
        test_batch_size: test batch size.
        drop_last: drop the last partial batch of an epoch.
        optimizer: ``sgd``, ``adam`` or ``adamw``.
        lr: the base learning rate.
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        weight_decay: L2 penalty on the weights (biases are not decayed).
        schedule: the learning-rate schedule, stepped per batch: ``constant``, ``cosine`` or
            ``onecycle``.
        warmup_epochs: length of the linear warm-up, in epochs.
        label_smoothing: label smoothing of the loss.
        flip_tta: test on each image and its mirror image, averaging the probabilities.
        augment: per-sample augmentation on the device: ``none``, ``flip``, ``crop`` or
            ``crop-flip``.
        crop_padding: padding of the random crop, in pixels.
        seed: the random seed.
        log_interval: batches between log lines.
        device: ``auto`` (CUDA, MPS, else the CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        threads: torch's CPU threads, set by :func:`~stn.engine.configure_process` (``None``: torch's
            default).
        channels_last: the channels-last memory format.
        keep_freed_memory: on the CPU, glibc's malloc keeps freed blocks for reuse (set by
            :func:`~stn.engine.configure_process`).
        compile: the ``torch.compile`` mode: ``off``, ``default``, ``reduce-overhead`` or
            ``max-autotune``.
        amp: autocast: ``auto`` (bf16 where it is native and faster), ``bf16`` or ``off``.
        snapshot_images: test images whose transformation is kept every epoch.
        tensorboard: where ``stn train`` writes TensorBoard event files (``""``: the run's
            ``tensorboard/``; ``None``: none); a library caller passes
            :class:`~stn.viz.TensorBoard` to :func:`~stn.engine.train` instead.

    Examples:
        >>> cfg = TrainConfig(epochs=2, lr=0.05)
        >>> cfg.validate().to_dict()["epochs"], cfg.recipe
        (2, 'seed')
        >>> TrainConfig.from_dict(cfg.to_dict()).changes(TrainConfig())
        ['epochs', 'lr']
    """

    model: str = option("seed-cifar", "registered model (stn models)", "what to train")
    dataset: str | None = option(None, "registered data set (stn datasets); default: the model's own", "what to train")
    data_root: str | None = option(
        None, "folder holding the data (default $STN_DATA, else ~/.cache/stn)", "what to train"
    )
    dataset_options: dict[str, Any] = field(
        default_factory=dict,
        metadata=dict(
            help="an option of the data set (image_size, skip_bad_images, fresh_distortions, sizes, seed: each data "
            "set declares its own; stn datasets lists them), repeatable: KEY=VALUE",
            group="what to train",
        ),
    )
    stn: bool = option(True, "the spatial transformer in front of the network (--no-stn: without)", "what to train")
    transform: str = option(
        "affine",
        "transform family: translation, attention, similarity, affine, projective, tps, diffeomorphic, polar, field",
        "what to train",
    )
    stn_fill: str = option("zeros", "what the transformer reads outside the image", "what to train", FILLS)
    stn_lr_scale: float = option(1.0, "the transformers' learning rate relative to the model's", "what to train")
    model_options: dict[str, Any] = field(
        default_factory=dict,
        metadata=dict(help="an option of the model's factory, repeatable: KEY=VALUE", group="what to train"),
    )
    recipe: str = option("seed", "named preset of the options below", cli=False)
    epochs: int = option(50, "training epochs")
    batch_size: int = option(64, "training batch size")
    test_batch_size: int = option(1000, "test batch size")
    drop_last: bool = option(False, "drop the last partial batch of an epoch")
    optimizer: str = option("sgd", "optimizer", choices=OPTIMIZERS)
    lr: float = option(0.01, "base learning rate")
    momentum: float = option(0.0, "SGD momentum")
    nesterov: bool = option(False, "Nesterov momentum")
    weight_decay: float = option(0.0, "L2 penalty on weights (biases are not decayed)")
    schedule: str = option("constant", "learning-rate schedule, stepped per batch", choices=SCHEDULES)
    warmup_epochs: float = option(0.0, "linear warm-up length in epochs")
    label_smoothing: float = option(0.0, "label smoothing of the loss")
    flip_tta: bool = option(False, "test on each image and its mirror image, averaging probabilities")
    augment: str = option("none", "per-sample augmentation on the device", choices=AUGMENTS)
    crop_padding: int = option(4, "padding of the random crop, in pixels")
    seed: int = option(1, "random seed")
    log_interval: int = option(500, "batches between log lines")
    device: str = option("auto", "auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps", "engine")
    threads: int | None = option(None, "CPU threads for torch", "engine")
    channels_last: bool = option(True, "channels_last memory format (measured faster on CPU)", "engine")
    keep_freed_memory: bool = option(
        True,
        "CPU: glibc malloc keeps freed blocks for reuse rather than handing them back to the OS (no page faults "
        "every step; the process keeps its peak memory)",
        "engine",
    )
    compile: str = option("off", "torch.compile mode (reduce-overhead captures CUDA graphs)", "engine", COMPILE_MODES)
    amp: str = option(
        "auto",
        "autocast: auto is bf16 where it is native and faster (GPUs, AMX CPUs, AMD CPUs with AVX512-BF16)",
        "engine",
        AMP_CHOICES,
    )
    snapshot_images: int = option(16, "test images whose transformation is kept every epoch", "output")
    tensorboard: str | None = option(
        None, "TensorBoard event files in this folder ('': RUN_DIR/tensorboard); kept on resume", "output", cli=False
    )

    def validate(self) -> TrainConfig:
        """Raise ``ValueError`` naming the first bad value; return ``self``."""
        for name in ("epochs", "batch_size", "test_batch_size", "log_interval"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        for name in ("crop_padding", "snapshot_images", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or (name != "seed" and value < 0):
                raise ValueError(f"{name.replace('_', '-')} must be an integer >= 0, got {value!r}")
        if not isinstance(self.lr, int | float) or isinstance(self.lr, bool) or not 0 < self.lr < float("inf"):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        for name in ("lr", "momentum", "weight_decay", "warmup_epochs", "label_smoothing", "stn_lr_scale"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < float("inf"):
                raise ValueError(f"{name.replace('_', '-')} must be a number >= 0, got {value!r}")
        for name in ("momentum", "label_smoothing"):
            if getattr(self, name) >= 1:
                raise ValueError(f"{name.replace('_', '-')} must be below 1, got {getattr(self, name)!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs a momentum above 0")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads must be a positive integer, got {self.threads!r}")
        for name in ("model", "transform", "stn_fill", "recipe", "device"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name.replace('_', '-')} must be a string, got {getattr(self, name)!r}")
        for name in ("dataset_options", "model_options"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name.replace('_', '-')} must be a mapping, got {getattr(self, name)!r}")
        for f in dataclasses.fields(self):
            allowed = f.metadata.get("choices")
            if allowed and getattr(self, f.name) not in allowed:
                raise ValueError(
                    f"{f.name.replace('_', '-')} must be one of {', '.join(allowed)}; got {getattr(self, f.name)!r}"
                )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The config saved as ``values`` (``config.json``); ``ValueError`` for unknown keys or bad values.

        Configs of earlier run formats still load: ``extra`` holds model options; ``image_size`` and
        ``fresh_distortions`` are data set options; ``report`` is gone."""
        if not isinstance(values, dict):
            raise ValueError(f"a config must be a mapping, got {type(values).__name__}")
        values = dict(values)
        values.pop("format", None)  # the run directory's format (see stn.engine.run)
        values.pop("report", None)
        if "extra" in values:
            values["model_options"] = {**values.pop("extra"), **values.get("model_options", {})}
        moved = {k: values.pop(k) for k in ("image_size", "fresh_distortions") if k in values}
        moved = {k: v for k, v in moved.items() if v not in (None, False)}
        if moved:
            values["dataset_options"] = {**moved, **values.get("dataset_options", {})}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**values).validate()

    def changes(self, other: TrainConfig) -> list[str]:
        """Names of the fields whose values differ between ``self`` and ``other``."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [name for name in mine if mine[name] != theirs[name]]


# `stn bench paper`'s budgets (stn.experiments.paper): the paper's models on distorted MNIST, black
# outside the image (MNIST's background); the bench sets the model and the variant of each cell.
_PAPER = dict(model="paper-cnn", dataset="mnist-rts", stn_fill="black")
_PAPER_ADAM = dict(**_PAPER, batch_size=128, optimizer="adam", lr=1e-3, schedule="cosine")  # cpu and long

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
    # `stn demo`'s network with its transformer: the paper's CNN on glyphs drawn on the fly
    # (stn.experiments.demo runs it with and without the transformer, at several sizes).
    "demo": dict(
        model="paper-cnn",
        dataset="glyphs",
        dataset_options=dict(train_size=12000, test_size=2000, canvas=56, seed=1),
        stn_fill="black",
        epochs=8,
        optimizer="adam",
        lr=1e-3,
        schedule="cosine",
        log_interval=100,
    ),
    # `stn bench paper`'s budgets.
    "paper-smoke": dict(
        **_PAPER,
        dataset_options=dict(train_size=256, test_size=256),
        epochs=1,
        optimizer="adam",
        lr=1e-3,
    ),
    "paper-cpu": dict(**_PAPER_ADAM, epochs=2),
    # Sized from short probes (results/paper/probes.md): the whole table (the eight original models
    # on R, RTS, P, E, TC) in at most 8 hours on a quiet 2-core CPU.
    "paper-long": dict(
        **_PAPER_ADAM,
        dataset_options=dict(fresh_distortions=True),
        epochs=18,
        log_interval=200,
    ),
    # The long recipe at 12 epochs; stn.experiments.paper's `match` budget changes it by cell (epochs,
    # the CNN's filters, the transformer's rate on R), as chosen by the probes in results/paper/probes.md.
    "paper-match": dict(
        **_PAPER_ADAM,
        dataset_options=dict(fresh_distortions=True),
        epochs=12,
        log_interval=200,
    ),
    # Fresh distortions: at the long budget they beat fixed ones (results/paper/probes.md), and
    # the paper's 640 epochs would show each fixed image 640 times.
    "paper-full": dict(
        **_PAPER,
        dataset_options=dict(fresh_distortions=True),
        epochs=640,
        batch_size=256,
        optimizer="sgd",
        lr=0.01,
        momentum=0.9,
        schedule="cosine",
        test_batch_size=2000,
        log_interval=200,
    ),
    # Polar transformer networks on rotated MNIST (stn.models.ptn; `stn bench ptn`, results/ptn): the
    # paper's Adam recipe at lr 3e-3, which learned faster than 1e-3 and 1e-2 (results/ptn/probes.md).
    "ptn": {
        **_PAPER_ADAM,
        "model": "ptn-cnn",
        "dataset": "mnist-rot",
        "transform": "polar",
        "lr": 3e-3,
        "epochs": 20,
        "log_interval": 50,
    },
}


def from_recipe(recipe: str = "seed", **overrides: Any) -> TrainConfig:
    """A validated config: the recipe's values, then ``overrides`` (``None`` values ignored;
    ``dataset_options`` and ``model_options`` update the recipe's rather than replace them).

    Args:
        recipe: a name in :data:`RECIPES`.
        **overrides: :class:`TrainConfig` fields.

    Examples:
        >>> cfg = from_recipe("fast", epochs=3)
        >>> cfg.recipe, cfg.epochs, cfg.batch_size, cfg.stn_fill
        ('fast', 3, 128, 'black')
        >>> from_recipe("slow")
        Traceback (most recent call last):
        ...
        ValueError: unknown recipe 'slow'; choose one of: seed, fast, demo, ...
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    values = copy.deepcopy(RECIPES[recipe])
    for name, value in overrides.items():
        if value is None:
            continue
        if name in ("dataset_options", "model_options") and isinstance(value, dict):
            values[name] = {**values.get(name, {}), **value}
        else:
            values[name] = value
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(values) - known - {"recipe"}
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
    return TrainConfig(**{**values, "recipe": recipe}).validate()
