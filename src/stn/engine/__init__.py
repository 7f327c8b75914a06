"""Training and evaluation: ``train(config, run_dir)``, ``evaluate``, recipes, and the run
directory (:class:`Run`) that every reader of a run goes through."""

from stn.engine.checkpoint import CheckpointError
from stn.engine.config import RECIPES, TrainConfig, from_recipe
from stn.engine.device import DeviceData, resolve_device
from stn.engine.evaluation import EvalResult, evaluate, evaluate_checkpoint
from stn.engine.loop import TrainingDiverged, check_names, configure_process, train, train_one_epoch, train_step
from stn.engine.run import Run, RunError, load_model
from stn.engine.state import TrainState

__all__ = [
    "RECIPES",
    "CheckpointError",
    "DeviceData",
    "EvalResult",
    "Run",
    "RunError",
    "TrainConfig",
    "TrainState",
    "TrainingDiverged",
    "check_names",
    "configure_process",
    "evaluate",
    "evaluate_checkpoint",
    "from_recipe",
    "load_model",
    "resolve_device",
    "train",
    "train_one_epoch",
    "train_step",
]
