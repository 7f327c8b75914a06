"""Checkpoints: written atomically (temp file + rename), read with ``weights_only=True``.

A checkpoint is a plain dict of tensors, numbers and strings, so ``torch.load(path,
weights_only=True)`` opens it anywhere. It holds what rebuilding the model needs (registry
name, options, input shape, classes, normalisation) and, for ``last.pt``, what resuming needs
(optimizer, schedule and random states).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stn import models
from stn.files import save_atomic

__all__ = ["FORMAT", "CheckpointError", "load", "restore_model", "save"]

FORMAT = "stn-checkpoint-v1"


class CheckpointError(ValueError):
    """A file is missing, corrupt, or not an stn checkpoint."""


def save(payload: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``payload`` to ``path`` atomically: a crash leaves the old file or the new one."""
    save_atomic({"format": FORMAT, **payload}, path)


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint; ``CheckpointError`` if it is missing, corrupt or foreign."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no such checkpoint: {path}") from None
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): {first}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an stn checkpoint (no '{FORMAT}' marker)")
    return payload


def restore_model(payload: dict[str, Any]) -> nn.Module:
    """The model a checkpoint describes, with its weights loaded (on the CPU)."""
    try:
        model = models.create(payload["model"], **payload["model_options"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint does not match its model: {first}") from None
    return model
