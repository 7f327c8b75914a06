"""What ``amp`` means on a device: ``auto`` is bf16 where bf16 is native and measured faster
(AMX; AMD with AVX512-BF16), fp32 elsewhere. Every branch is exercised here on any machine by
presenting the CPU as that kind (``$STN_CPU_AS``), and the run resolves it once."""

from __future__ import annotations

import pytest
import torch

from stn.engine import from_recipe, machine, precision, train


@pytest.fixture
def cpu_as(monkeypatch):
    """``cpu_as(kind)`` presents the CPU as one of :data:`~stn.engine.precision.CPU_KINDS`."""
    return lambda kind: monkeypatch.setenv("STN_CPU_AS", kind)


def test_explicit_values_pass_through_and_bad_ones_are_named():
    for device in ("cpu", "meta"):
        assert precision.resolve_amp("bf16", device) == "bf16"
        assert precision.resolve_amp("off", device) == "off"
    with pytest.raises(ValueError, match="amp must be one of auto, bf16, off; got 'fp16'"):
        precision.resolve_amp("fp16", "cpu")


@pytest.mark.parametrize(
    ("kind", "want", "why"),
    [
        ("amx", "bf16", "AMX"),
        ("amd-avx512-bf16", "bf16", "AVX512-BF16"),
        ("intel-avx512-bf16", "off", "AVX512-BF16 but no AMX"),
        ("plain", "off", "no native bf16"),
    ],
)
def test_auto_on_the_cpu_is_bf16_where_it_measured_faster(cpu_as, kind, want, why):
    cpu_as(kind)
    assert precision.resolve_amp("auto", torch.device("cpu")) == want
    assert precision.autocast_dtype("auto", "cpu") == (torch.bfloat16 if want == "bf16" else None)
    line = precision.describe_amp("auto", "cpu")
    assert line.startswith("precision: " + ("bf16 autocast" if want == "bf16" else "fp32") + " (--amp auto: ")
    assert why in line
    assert precision.describe_amp("off", "cpu") == "precision: fp32 (--amp off)"


def test_an_unknown_cpu_kind_is_named(cpu_as):
    cpu_as("pentium")
    with pytest.raises(ValueError, match=r"STN_CPU_AS must be one of plain, .*; got 'pentium'"):
        precision.resolve_amp("auto", "cpu")


def test_the_kinds_are_what_the_detection_would_find(monkeypatch):
    """The named kinds go through the same rule as a detected CPU."""
    monkeypatch.delenv("STN_CPU_AS")
    for kind in precision.CPU_KINDS.values():
        monkeypatch.setattr(precision, "_detected", lambda kind=kind: kind)
        assert precision.cpu_kind() == kind


def test_auto_is_off_on_other_devices(cpu_as):
    cpu_as("amx")
    assert precision.resolve_amp("auto", "meta") == "off"
    assert "no bf16 autocast by default on meta" in precision.describe_amp("auto", "meta")


def test_autocast_takes_the_resolved_dtype():
    with precision.autocast(torch.device("cpu"), torch.bfloat16):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with precision.autocast(torch.device("cpu"), None):
        assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(TypeError, match="resolved dtype"):
        precision.autocast(torch.device("cpu"), "auto")


def test_a_run_resolves_amp_once_not_every_batch(bars, tmp_path, monkeypatch, cpu_as):
    cpu_as("amd-avx512-bf16")
    calls = []
    real = precision.cpu_kind
    monkeypatch.setattr(precision, "cpu_kind", lambda: calls.append(1) or real())
    cfg = from_recipe(
        "seed", model="tutorial-mnist", dataset="folder", data_root=str(bars), epochs=1, batch_size=8, device="cpu"
    )
    train(cfg, tmp_path / "run", progress=False)
    batches = -(-96 // 8)
    assert 0 < len(calls) < batches  # the setup and the log's precision line, never once per batch


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


@pytest.mark.parametrize("supported", [True, False])
def test_auto_on_a_gpu_follows_its_bf16_support(monkeypatch, supported):
    """The CUDA branch, exercised without a GPU: only the device's kind and its bf16 support count."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: supported)
    assert precision.resolve_amp("auto", "cuda") == ("bf16" if supported else "off")
    assert precision.autocast_dtype("auto", "cuda:1") == (torch.bfloat16 if supported else None)
    want = (
        "bf16 autocast (--amp auto: this GPU supports bf16)" if supported else "fp32 (--amp auto: this GPU has no bf16)"
    )
    assert precision.describe_amp("auto", "cuda") == f"precision: {want}"
