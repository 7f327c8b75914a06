"""What ``amp`` means on a device: ``auto`` is bf16 where bf16 is native and measured faster
(AMX; AMD with AVX512-BF16), fp32 elsewhere."""

from __future__ import annotations

import pytest
import torch

from stn.engine import machine, precision


@pytest.fixture
def cpu(monkeypatch):
    """Pretend CPU: ``set_cpu(instructions, vendor)`` fixes what the detection finds."""

    def set_cpu(instructions, vendor="GenuineIntel"):
        monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: instructions)
        monkeypatch.setattr(precision, "cpu_vendor", lambda: vendor)

    return set_cpu


def test_explicit_values_pass_through_and_bad_ones_are_named():
    for device in ("cpu", "meta"):
        assert precision.resolve_amp("bf16", device) == "bf16"
        assert precision.resolve_amp("off", device) == "off"
    with pytest.raises(ValueError, match="amp must be one of auto, bf16, off; got 'fp16'"):
        precision.resolve_amp("fp16", "cpu")


@pytest.mark.parametrize(
    ("instructions", "vendor", "want"),
    [
        ("amx_bf16", "GenuineIntel", "bf16"),
        ("avx512_bf16", "AuthenticAMD", "bf16"),
        ("avx512_bf16", "GenuineIntel", "off"),
        ("avx512_bf16", "", "off"),
        (None, "AuthenticAMD", "off"),
    ],
)
def test_auto_on_the_cpu_is_bf16_where_it_measured_faster(cpu, instructions, vendor, want):
    cpu(instructions, vendor)
    assert precision.resolve_amp("auto", torch.device("cpu")) == want
    line = precision.describe_amp("auto", "cpu")
    assert line.startswith("precision: " + ("bf16 autocast" if want == "bf16" else "fp32") + " (--amp auto: ")
    assert {"amx_bf16": "AMX", "avx512_bf16": "AVX512-BF16", None: "no native bf16"}[instructions] in line
    assert precision.describe_amp("off", "cpu") == "precision: fp32 (--amp off)"


def test_auto_is_off_on_other_devices(cpu):
    cpu("amx_bf16")
    assert precision.resolve_amp("auto", "meta") == "off"
    assert "no bf16 autocast by default on meta" in precision.describe_amp("auto", "meta")


def test_autocast_follows_the_resolved_amp(cpu):
    cpu("amx_bf16")
    with precision.autocast(torch.device("cpu"), "auto"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    cpu(None)
    with precision.autocast(torch.device("cpu"), "auto"):
        assert not torch.is_autocast_enabled("cpu")
    with precision.autocast(torch.device("cpu"), "bf16"):
        assert torch.is_autocast_enabled("cpu")


def test_instructions_from_proc_cpuinfo_where_torch_cannot_say(monkeypatch, tmp_path):
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.delattr(torch.cpu, probe, raising=False)
    info = tmp_path / "cpuinfo"
    monkeypatch.setattr(machine, "Path", lambda _: info)
    try:
        for flags, want in (
            ("fpu avx512f avx512_bf16", "avx512_bf16"),
            ("avx512_bf16 amx_bf16", "amx_bf16"),
            ("sse", None),
        ):
            info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
            precision.cpu_bf16_instructions.cache_clear()
            assert precision.cpu_bf16_instructions() == want
    finally:
        precision.cpu_bf16_instructions.cache_clear()


def test_vendor_from_proc_cpuinfo(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    monkeypatch.setattr(machine, "Path", lambda _: info)
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\n")
    assert precision.cpu_vendor() == "AuthenticAMD"
    info.unlink()
    assert precision.cpu_vendor() == ""
