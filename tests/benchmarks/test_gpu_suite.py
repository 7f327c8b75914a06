"""``benchmarks/gpu.sh --quick`` (what CI runs) measures every part of the GPU suite on the CPU and
writes it to the file it is given, not to the committed results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_sh_quick_writes_its_section(tmp_path):
    out = tmp_path / "benchmarks.json"
    out.write_text(json.dumps({"other": {"cpu": {"kept": True}}}))
    committed = (ROOT / "results" / "benchmarks.json").read_bytes()
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (ROOT / "results" / "benchmarks.json").read_bytes() == committed
    results = json.loads(out.read_text())
    assert results["other"] == {"cpu": {"kept": True}}
    suite = results["gpu_suite"]["cpu"]
    assert suite["machine"]["device"] == "cpu" and suite["quick"] is True and suite["data"] == "synthetic"
    rows = suite["throughput"]["rows"]
    assert rows[0]["loop"] == "tutorial" and {(r["loop"], r["dtype"]) for r in rows[1:]} == {
        ("engine", "fp32"),
        ("engine", "bf16"),
    }
    assert all(r["images_per_s"] > 0 and r["peak_percent"] > 0 for r in rows)
    samplers = {(r["family"], r["sampler"]) for r in suite["warp"]}
    assert ("attention", "separable") in samplers and ("affine", "warp") in samplers
    assert all(r["train_ms"] > 0 for r in suite["warp"])
    seed, fast = suite["recipes"]
    assert (seed["recipe"], fast["recipe"]) == ("seed", "fast")
    for recipe in (seed, fast):
        assert recipe["epochs_run"] == 1 and len(recipe["curve"]) == 1
        assert recipe["seconds_for_all_epochs"] > 0 and 0 <= recipe["final_accuracy"] <= 100
