"""Checkpoints: written atomically (temp file + rename), read with ``weights_only=True``.

A checkpoint is a plain dict of tensors, numbers and strings, so ``torch.load(path,
weights_only=True)`` opens it anywhere. It holds what rebuilding the model needs (registry
name, options, input shape, classes, normalisation) and, for ``last.pt``, what resuming needs
(optimizer, schedule and random states).
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stn import models
from stn.files import save_atomic

__all__ = ["FORMAT", "CheckpointError", "load", "restore_model", "save"]

FORMAT = "stn-checkpoint-v1"


class CheckpointError(ValueError):
    """A file is missing, corrupt, or not an stn checkpoint.

    Examples:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> path = folder / "empty.pt"
        >>> _ = path.write_bytes(b"")
        >>> load(path)
        Traceback (most recent call last):
        ...
        stn.engine.checkpoint.CheckpointError: ...empty.pt is not a readable checkpoint: it is empty (0 bytes)
    """


def save(payload: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``payload`` to ``path`` atomically: a crash leaves the old file or the new one."""
    save_atomic({"format": FORMAT, **payload}, path)


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint; ``CheckpointError`` (one line) if it is missing, damaged or foreign.

    Only tensors and plain data are unpickled (``weights_only=True``): a file that asks for
    anything else is refused, and nothing in it runs. Every zip member's checksum is verified
    first, so a flipped byte in the weights is an error, not a silently different model. The
    file is only read, never written.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no such checkpoint: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    try:
        damage = _damage(path)
    except OSError as err:
        raise CheckpointError(f"cannot read {path}: {err.strerror or _first_line(err)}") from None
    if damage:
        raise CheckpointError(f"{path} is not a readable checkpoint: {damage}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch.load fails in many ways on bytes it cannot parse; all mean "unreadable"
        raise CheckpointError(f"{path} is not a readable checkpoint: {_looks_like(path, err)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an stn checkpoint: {_holds(payload)}")
    return payload


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _damage(path: Path) -> str | None:
    """Why ``path`` cannot be a checkpoint before unpickling it (empty, or a zip with a bad checksum)."""
    if path.stat().st_size == 0:
        return "it is empty (0 bytes)"
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError, zlib.error) as err:
        return f"it is a damaged zip archive (truncated or overwritten?): {_first_line(err)}"
    if bad is not None:
        return f"it is damaged: the checksum of {bad} does not match (truncated or overwritten?)"
    return None


def _looks_like(path: Path, err: Exception) -> str:
    """What ``path`` seems to hold, given that ``torch.load`` failed with ``err``, in a line of our
    own: torch's advice to retry with ``weights_only=False`` (which can run code) is never passed on."""
    message = str(err)
    if isinstance(err, pickle.UnpicklingError) and (found := re.search(r"GLOBAL ([\w.]+)", message)):
        return (
            f"it asks to load {found.group(1)}, which a checkpoint never holds "
            "(stn loads only tensors and plain data, so nothing in it ran)"
        )
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as read_err:
        return f"it cannot be read ({read_err.strerror or type(read_err).__name__})"
    if head.startswith(b"PK"):
        if not zipfile.is_zipfile(path):
            return "it is a truncated or damaged torch file (the end of its zip archive is missing)"
        detail = _first_line(err).split(". ")[0]
    elif head[:1] == b"\x80":
        found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", message)
        detail = found.group(1).strip() if found else ""
    else:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and all(c.isprintable() or c in "\t\r\n" for c in text):
            return "it holds text, not a torch file"
        return "it is not a torch file (corrupt, or another kind of file?)"
    what = "a damaged torch file" if head.startswith(b"PK") else "a damaged or foreign pickle"
    return f"it is {what} ({detail})" if detail and "weights_only" not in detail else f"it is {what}"


def _holds(payload: object) -> str:
    """What a file that loaded, but is not an stn checkpoint, holds."""
    if isinstance(payload, torch.Tensor):
        return f"it holds a single tensor of shape {tuple(payload.shape)}"
    if isinstance(payload, dict):
        keys = [str(k) for k in list(payload)[:3]]
        shown = ", ".join(repr(k) for k in keys) + (", ..." if len(payload) > 3 else "")
        if payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            return (
                f"it holds a state_dict of {len(payload)} tensor(s) ({shown}), from another program? "
                "Name its network with --model (stn models)"
            )
        if "format" in payload:
            return f"its format is {str(payload['format'])[:40]!r}, not {FORMAT!r}"
        return f"it holds a dict with keys {shown or 'none'} and no {FORMAT!r} marker"
    return f"it holds a {type(payload).__name__}, not a checkpoint dict"


def restore_model(payload: dict[str, Any]) -> nn.Module:
    """The model a checkpoint describes, with its weights loaded (on the CPU)."""
    try:
        model = models.create(payload["model"], **payload["model_options"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint does not match its model: {first}") from None
    return model
