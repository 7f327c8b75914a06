"""The README's "Use it in your model" example runs as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def section_code(heading: str) -> str:
    text = README.read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, f"no python block under '{heading}'"
    return "\n".join(blocks)


def test_use_it_in_your_model_runs_as_written():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(section_code("Use it in your model"), str(README), "exec"), {"__name__": "readme"})
    assert out.getvalue().strip() == "torch.Size([8, 10]) torch.Size([8, 6])"


def test_first_lines_are_the_two_commands():
    block = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert len(block) == 2 and "pip install" in block[0] and "pytest" in block[1]
