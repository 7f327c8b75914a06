"""The benchmark scripts run (``--quick``: tiny settings) and write their sections of the results file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stn.engine.precision import resolve_amp

ROOT = Path(__file__).resolve().parents[2]

# script: (options, section, the keys of the section that hold its measurements)
SCRIPTS = {
    "ddp_throughput.py": (["--synthetic"], "ddp_throughput", ["rows"]),
    "flops.py": ([], "flops", ["mflop_per_image", "peak_tflops", "floor_seconds_per_epoch"]),
    "warp_throughput.py": ([], "warp_throughput", ["rows"]),
    "paper_steps.py": ([], "paper_steps", ["rows"]),
    "step_profile.py": (["--synthetic"], "step_profile", ["results", "convolutions"]),
    "scaling.py": ([], "scaling", ["training", "inference"]),
    "train_throughput.py": (["--synthetic"], "train_throughput", ["rows"]),
    "recipe_time.py": (
        ["--synthetic", "--measure", "--runs", str(ROOT / "results" / "seed-cifar")],
        "recipe_time",
        ["rows"],
    ),
    "volumes.py": (["--synthetic"], "volumes", ["warp", "registration", "classification"]),
}


def numbers(value: object) -> list[float]:
    """Every float inside ``value`` (dicts and lists walked)."""
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [x for item in value for x in numbers(item)]
    return []


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--device", "cpu", "--threads", "1"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_script_writes_its_section(script, tmp_path):
    options, section, measured = SCRIPTS[script]
    out = tmp_path / "benchmarks.json"
    out.write_text(json.dumps({"other": {"cpu": {"kept": True}}}))
    done = run(script, *options, "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["other"] == {"cpu": {"kept": True}}
    written = results[section]["cpu"]
    assert written["machine"]["device"] == "cpu" and written["machine"]["threads"] == 1
    assert written["machine"]["malloc"] in ("keep", "default")  # --malloc, as it took effect
    for key in measured:  # every measurement is there, a number, finite and not negative
        found = numbers(written[key])
        assert found, f"{key}: nothing measured"
        assert all(v == v and 0 <= v < float("inf") for v in found), f"{key}: {found}"
        assert any(v > 0 for v in found), f"{key}: all zero"


@pytest.mark.slow
def test_recipe_time_with_a_value_changed_keeps_the_presets_section(tmp_path):
    out = tmp_path / "benchmarks.json"
    out.write_text(json.dumps({"recipe_time": {"cpu": {"kept": True}}}))
    done = run("recipe_time.py", "--synthetic", "--measure", "--set", "amp=bf16", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["recipe_time"]["cpu"] == {"kept": True}
    rows = results["recipe_time amp=bf16"]["cpu"]["rows"]
    assert {row["recipe"] for row in rows} == {"seed", "fast"}
    assert {row["dtype"] for row in rows if row["run"] != "tutorial"} == {"bf16"}


def test_train_throughput_leaves_the_other_precision_out_when_asked(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import train_throughput

    cpu = torch.device("cpu")
    both = train_throughput.engine_configs(cpu, [64, 128], compile=False)
    one = train_throughput.engine_configs(cpu, [64, 128], compile=False, other_precision=False)
    assert {c.amp for c in both} == {"auto", "off" if resolve_amp("auto", cpu) == "bf16" else "bf16"}
    assert {c.amp for c in one} == {"auto"}
    assert {c.batch_size for c in one} == {c.batch_size for c in both} == {64, 128}
