"""The README's Python runs as written: every ```python block, each in a fresh interpreter (so that
nothing imported by other tests hides a missing ``import``), and every ``stn.x.y`` it names in the
text is reachable after ``import stn``.

A block that needs a trained run or a data set may be skipped, only where the README marks it with
``<!-- test: skip (reason) -->`` on the line before it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP = re.compile(r"<!-- test: skip \((.+?)\) -->\s*$")


def python_blocks() -> list[tuple[int, str, str | None]]:
    """``(line, code, skip reason)`` of every ```python block of the README."""
    lines = README.read_text().splitlines()
    blocks, start = [], None
    for i, line in enumerate(lines):
        if start is None and line.strip() == "```python":
            start = i
        elif start is not None and line.strip() == "```":
            marker = SKIP.search(lines[start - 1]) if start else None
            blocks.append((start + 1, "\n".join(lines[start + 1 : i]) + "\n", marker and marker.group(1)))
            start = None
    return blocks


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(README.parent / "src"), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_readme_has_python():
    assert len(python_blocks()) >= 1


@pytest.mark.parametrize(
    ("line", "code", "skip"), python_blocks(), ids=lambda v: f"line{v}" if isinstance(v, int) else ""
)
def test_python_block_runs_as_written(line, code, skip, tmp_path):
    if skip:
        pytest.skip(f"README.md:{line}: {skip}")
    result = run_python(code, tmp_path)
    assert result.returncode == 0, f"README.md:{line}:\n{result.stderr[-3000:]}"
    for expected in re.findall(r"^print\(.*\)\s+# (.+)$", code, flags=re.M):  # `print(x)  # what it prints`
        if "torch.Size" in expected:
            assert expected.strip() in result.stdout, (expected, result.stdout)


def test_names_in_the_text_are_reachable_after_import_stn(tmp_path):
    names = sorted(set(re.findall(r"`(stn(?:\.[A-Za-z_]\w*)+)", README.read_text())))
    assert "stn.models.create" in names
    check = f"import stn\nfor name in {names!r}:\n    obj = stn\n    for part in name.split('.')[1:]:\n"
    check += "        obj = getattr(obj, part)\nprint('ok')\n"
    result = run_python(check, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_import_stn_stays_light(tmp_path):
    extras = ("onnx", "onnxruntime", "tensorboard", "matplotlib")
    code = f"import sys, stn\nprint(sorted(m for m in sys.modules if m.split('.')[0] in {extras!r}))"
    result = run_python(code, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_first_lines_are_the_two_commands():
    block = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert len(block) == 2 and "pip install" in block[0] and "pytest" in block[1]


def test_the_readme_fits_on_a_screen():
    lines = README.read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move detail to a page under docs/"
