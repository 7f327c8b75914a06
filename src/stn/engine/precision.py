"""Numeric precision of a run: what the ``amp`` setting means on a device, and its autocast.

``amp="auto"`` (the default) is bf16 autocast where bf16 is native and faster: CUDA GPUs with bf16
support, and CPUs with AMX or AVX512-BF16 instructions on which a bf16 matrix product measures
faster than an fp32 one (a probe of a few tens of milliseconds, once per process). bf16 keeps the
recipes' accuracy (the seed and fast recipes, 50 epochs each, land within the runs' noise; see the
README's Speed section) and trains 1.6x (AMD EPYC, AVX512-BF16) to 2.2x (Intel Xeon, AMX) faster.
The probe is there because native instructions are not enough: on an Intel Xeon VM with
AVX512-BF16 but no AMX, bf16 matrix products ran at half the fp32 rate. Elsewhere ``auto`` is fp32.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext, suppress
from functools import lru_cache
from pathlib import Path

import torch

__all__ = ["autocast", "cpu_bf16_faster", "cpu_bf16_instructions", "describe_amp", "resolve_amp"]

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
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            text = ""
        flags = {word for line in text.splitlines() if line.startswith("flags") for word in line.split()}
        for flag in probes:
            answers.setdefault(flag, flag in flags)
    return next((flag for flag in NATIVE_BF16_FLAGS if answers.get(flag)), None)


@lru_cache(maxsize=1)
def cpu_bf16_faster(size: int = 384, repeats: int = 5) -> float:
    """How many times faster a ``size``-square matrix product runs in bf16 than in fp32 on this
    CPU with torch's threads (best of ``repeats``, the two taking turns so that a busy machine
    slows both)."""
    a = torch.randn(size, size)
    b = a.bfloat16()
    best = {torch.float32: float("inf"), torch.bfloat16: float("inf")}
    for _ in range(repeats):
        for x in (a, b):
            tic = time.perf_counter()
            x @ x
            best[x.dtype] = min(best[x.dtype], time.perf_counter() - tic)
    return best[torch.float32] / best[torch.bfloat16]


BF16_MIN_SPEEDUP = 1.2  # what the probe must show for auto to pick bf16 on a CPU


def _cpu_auto() -> tuple[str, str]:
    """(resolved amp, why) for ``auto`` on this CPU."""
    found = cpu_bf16_instructions()
    if found is None:
        return "off", "this CPU has no native bf16 (AMX or AVX512-BF16)"
    speedup = cpu_bf16_faster()
    verdict = "bf16" if speedup >= BF16_MIN_SPEEDUP else "off"
    return verdict, f"this CPU has {found}; a bf16 matmul ran {speedup:.2f}x the fp32 speed"


def resolve_amp(amp: str, device: torch.device | str) -> str:
    """``"bf16"`` or ``"off"``: what ``amp`` (``auto``, ``bf16`` or ``off``) means on ``device``.

    ``auto`` is ``bf16`` on CUDA devices that support it and on CPUs with native bf16
    (:func:`cpu_bf16_instructions`) where it measures faster (:func:`cpu_bf16_faster` at least
    ``BF16_MIN_SPEEDUP``), ``off`` elsewhere (MPS included).
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
