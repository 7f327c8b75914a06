"""What a measurement ran on, recorded beside every figure that depends on it."""

from __future__ import annotations

import ctypes
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

__all__ = ["cpu_name", "cpuinfo", "describe", "keep_freed_memory"]


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


# mallopt(3) parameters of glibc's malloc.h, and the largest mmap threshold it accepts on 64 bits.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks of up to 32 MiB for reuse instead of handing them back
    to the OS; True where it took effect (glibc only: elsewhere nothing changes).

    By default glibc may return a freed large block (an activation, its gradient) to the OS, by
    unmapping it or by trimming the heap, and map fresh pages when it is next needed, so a training
    step can pay a page fault for every 4 KiB page it touches (the Speed page has the measurement).
    The cost: the process keeps its high-water mark of memory, as PyTorch's CUDA allocator does.
    The setting is the process's, and lasts; the numbers computed do not change.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):
        return False


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
