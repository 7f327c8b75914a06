"""What a measurement ran on, recorded beside every figure that depends on it."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

__all__ = ["cpu_name", "cpuinfo", "describe"]


def cpuinfo(field: str) -> str:
    """The first value of ``field`` in ``/proc/cpuinfo`` (``model name``, ``vendor_id``, ``flags``),
    or ``""`` where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_name() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` where there is one)."""
    return cpuinfo("model name") or platform.processor() or platform.machine()


def describe(device: torch.device) -> dict[str, Any]:
    """CPU, cores, torch threads, accelerator, versions and the date (UTC)."""
    from stn import __version__

    info: dict[str, Any] = dict(
        device=str(device),
        cpu=cpu_name(),
        cpu_count=os.cpu_count(),
        threads=torch.get_num_threads(),
        platform=platform.platform(),
        python=platform.python_version(),
        torch=torch.__version__,
        stn=__version__,
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
