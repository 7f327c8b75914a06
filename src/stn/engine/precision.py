"""Numeric precision of a run: which autocast the ``amp`` setting means on a device."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

__all__ = ["autocast"]


def autocast(device: torch.device, amp: str) -> AbstractContextManager:
    """bf16 autocast on CUDA when ``amp`` is ``auto`` or ``bf16``, on other devices for ``bf16``;
    nothing for ``off``."""
    if amp == "bf16" or (amp == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()
