"""Numeric precision of a run: what the ``amp`` setting means on a device, resolved once.

``amp="auto"`` (the default) is bf16 autocast where bf16 is native and measured faster: CUDA GPUs
with bf16 support; CPUs with AMX; AMD CPUs with AVX512-BF16. An Intel CPU with AVX512-BF16 but no
AMX gets fp32 (bf16 matrix products measured slower there than fp32: see the Speed page). The rule
is static, not a timing probe, so that a run's arithmetic never depends on how busy the machine was.

The rule reads the CPU through :func:`cpu_kind`. ``$STN_CPU_AS`` presents the CPU as another kind
(one of :data:`CPU_KINDS`), so that every branch of ``auto`` can be exercised on any machine; the
test suite sets it (``pytest --cpu-as``).

Resolve once, where a run is set up (:func:`autocast_dtype`), and pass the dtype on: the training
step and the evaluation take ``torch.bfloat16`` or ``None``.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass
from functools import lru_cache

import torch

from stn.engine.machine import cpuinfo

__all__ = [
    "AMP_CHOICES",
    "CPU_KINDS",
    "CpuKind",
    "autocast",
    "autocast_dtype",
    "cpu_bf16_instructions",
    "cpu_kind",
    "cpu_vendor",
    "describe_amp",
    "resolve_amp",
]

AMP_CHOICES = ("auto", "bf16", "off")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo's names, best first


@dataclass(frozen=True)
class CpuKind:
    """What the precision rule reads of a CPU: its vendor (``/proc/cpuinfo``'s ``vendor_id``) and
    its best native bf16 matrix instructions (``"amx_bf16"``, ``"avx512_bf16"`` or ``None``)."""

    vendor: str
    bf16: str | None


CPU_KINDS: dict[str, CpuKind] = {
    "plain": CpuKind("GenuineIntel", None),
    "intel-avx512-bf16": CpuKind("GenuineIntel", "avx512_bf16"),
    "amd-avx512-bf16": CpuKind("AuthenticAMD", "avx512_bf16"),
    "amx": CpuKind("GenuineIntel", "amx_bf16"),
}


@lru_cache(maxsize=1)
def cpu_bf16_instructions() -> str | None:
    """The CPU's native bf16 matrix instructions, ``"amx_bf16"`` or ``"avx512_bf16"``, else ``None``.

    Asks torch (which asks cpuinfo, and sees what the OS lets it use) and, where torch cannot
    say, the flags of ``/proc/cpuinfo``.
    """
    probes = {"amx_bf16": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
    answers = {}
    for flag, probe in probes.items():
        with suppress(AttributeError, RuntimeError):
            answers[flag] = bool(getattr(torch.cpu, probe)())
    if len(answers) < len(probes):
        flags = set(cpuinfo("flags").split())
        for flag in probes:
            answers.setdefault(flag, flag in flags)
    return next((flag for flag in NATIVE_BF16_FLAGS if answers.get(flag)), None)


def cpu_vendor() -> str:
    """``vendor_id`` of ``/proc/cpuinfo`` (``GenuineIntel``, ``AuthenticAMD``, ...), or ``""``."""
    return cpuinfo("vendor_id")


@lru_cache(maxsize=1)
def _detected() -> CpuKind:
    return CpuKind(cpu_vendor(), cpu_bf16_instructions())


def cpu_kind() -> CpuKind:
    """This CPU as the precision rule sees it: detected once, or the kind named by ``$STN_CPU_AS``.

    Examples:
        >>> import os
        >>> os.environ["STN_CPU_AS"] = "amx"
        >>> cpu_kind().bf16
        'amx_bf16'
        >>> del os.environ["STN_CPU_AS"]
    """
    name = os.environ.get("STN_CPU_AS")
    if not name:
        return _detected()
    if name not in CPU_KINDS:
        raise ValueError(f"STN_CPU_AS must be one of {', '.join(CPU_KINDS)}; got {name!r}")
    return CPU_KINDS[name]


def _cpu_auto() -> tuple[str, str]:
    """(resolved amp, why) for ``auto`` on this CPU."""
    kind = cpu_kind()
    if kind.bf16 is None:
        return "off", "this CPU has no native bf16 (AMX or AVX512-BF16)"
    if kind.bf16 == "amx_bf16":
        return "bf16", "this CPU has AMX"
    if kind.vendor == "AuthenticAMD":
        return "bf16", "this AMD CPU has AVX512-BF16"
    return "off", f"this CPU ({kind.vendor or 'vendor unknown'}) has AVX512-BF16 but no AMX: bf16 measured slower there"


def resolve_amp(amp: str, device: torch.device | str) -> str:
    """``"bf16"`` or ``"off"``: what ``amp`` (``auto``, ``bf16`` or ``off``) means on ``device``.

    ``auto`` is ``bf16`` on CUDA devices that support it, on CPUs with AMX and on AMD CPUs with
    AVX512-BF16 (see the module's notes), ``off`` elsewhere (MPS included).

    Examples:
        >>> resolve_amp("off", "cpu"), resolve_amp("bf16", "cpu")
        ('off', 'bf16')
    """
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {', '.join(AMP_CHOICES)}; got {amp!r}")
    if amp != "auto":
        return amp
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "off"
    if device.type == "cpu":
        return _cpu_auto()[0]
    return "off"


def autocast_dtype(amp: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype ``amp`` means on ``device``: ``torch.bfloat16``, or ``None`` for fp32.

    Examples:
        >>> autocast_dtype("bf16", "cpu"), autocast_dtype("off", "cpu")
        (torch.bfloat16, None)
    """
    return torch.bfloat16 if resolve_amp(amp, device) == "bf16" else None


def describe_amp(amp: str, device: torch.device | str) -> str:
    """One line for a run's log: the precision chosen and why."""
    resolved, device = resolve_amp(amp, device), torch.device(device)
    what = "bf16 autocast" if resolved == "bf16" else "fp32"
    if amp != "auto":
        return f"precision: {what} (--amp {amp})"
    if device.type == "cpu":
        why = _cpu_auto()[1]
    elif device.type == "cuda":
        why = "this GPU supports bf16" if resolved == "bf16" else "this GPU has no bf16"
    else:
        why = f"no bf16 autocast by default on {device.type}"
    return f"precision: {what} (--amp auto: {why})"


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """Autocast to ``dtype`` on ``device`` (from :func:`autocast_dtype`); nothing for ``None``.

    Examples:
        >>> with autocast(torch.device("cpu"), torch.bfloat16):
        ...     torch.ones(2, 2) @ torch.ones(2, 2)
        tensor([[2., 2.],
                [2., 2.]], dtype=torch.bfloat16)
    """
    if isinstance(dtype, str):
        raise TypeError(f"autocast takes a resolved dtype (see autocast_dtype), not the amp setting {dtype!r}")
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
