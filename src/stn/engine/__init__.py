"""Training and evaluation: ``train(config, run_dir)``, ``evaluate``, recipes and checkpoints."""

from stn.engine.checkpoint import CheckpointError
from stn.engine.config import RECIPES, TrainConfig, from_recipe
from stn.engine.loop import (
    DeviceData,
    EvalResult,
    TrainingDiverged,
    evaluate,
    resolve_device,
    train,
)

__all__ = [
    "RECIPES",
    "CheckpointError",
    "DeviceData",
    "EvalResult",
    "TrainConfig",
    "TrainingDiverged",
    "evaluate",
    "from_recipe",
    "resolve_device",
    "train",
]
