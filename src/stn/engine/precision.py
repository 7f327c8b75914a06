"""Numeric precision of a run: what the ``amp`` setting means on a device, and its autocast.

``amp="auto"`` (the default) is bf16 autocast where bf16 is native and measured faster: CUDA GPUs
with bf16 support; CPUs with AMX; AMD CPUs with AVX512-BF16 (Zen 4 and later). bf16 keeps the
recipes' accuracy (the seed and fast recipes, 50 epochs each, land within the runs' noise; see
the README's Speed section) and trained 1.6x faster on an AMD EPYC (AVX512-BF16) and 2.2x on an
Intel Xeon with AMX. An Intel CPU with AVX512-BF16 but no AMX gets fp32: on such a Xeon (a VM
that hides AMX) bf16 matrix products ran at half the fp32 rate and training at 0.5x. The rule is
static, not a timing probe, so that a run's arithmetic never depends on how busy the machine was.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext, suppress
from functools import lru_cache

import torch

from stn.engine.machine import cpuinfo

__all__ = ["autocast", "cpu_bf16_instructions", "cpu_vendor", "describe_amp", "resolve_amp"]

AMP_CHOICES = ("auto", "bf16", "off")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo's names, best first


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


def _cpu_auto() -> tuple[str, str]:
    """(resolved amp, why) for ``auto`` on this CPU."""
    found = cpu_bf16_instructions()
    if found is None:
        return "off", "this CPU has no native bf16 (AMX or AVX512-BF16)"
    if found == "amx_bf16":
        return "bf16", "this CPU has AMX"
    vendor = cpu_vendor()
    if vendor == "AuthenticAMD":
        return "bf16", "this AMD CPU has AVX512-BF16"
    return "off", f"this CPU ({vendor or 'vendor unknown'}) has AVX512-BF16 but no AMX: bf16 measured slower there"


def resolve_amp(amp: str, device: torch.device | str) -> str:
    """``"bf16"`` or ``"off"``: what ``amp`` (``auto``, ``bf16`` or ``off``) means on ``device``.

    ``auto`` is ``bf16`` on CUDA devices that support it, on CPUs with AMX and on AMD CPUs with
    AVX512-BF16 (see the module's notes), ``off`` elsewhere (MPS included).
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


def autocast(device: torch.device, amp: str) -> AbstractContextManager:
    """bf16 autocast where ``amp`` resolves to ``bf16`` on ``device`` (:func:`resolve_amp`);
    nothing otherwise."""
    if resolve_amp(amp, device) == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()
