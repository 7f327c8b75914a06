"""A small document model (headings, paragraphs, tables, pictures) written out as Markdown, with
pictures linked, and as one self-contained HTML file, with pictures inline as base64."""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Block", "Heading", "Paragraph", "Picture", "Table", "to_html", "to_markdown"]


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[object]]


@dataclass
class Picture:
    path: Path
    caption: str


Block = Heading | Paragraph | Table | Picture

MIME = {".png": "image/png", ".gif": "image/gif"}

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; }
figure img { max-width: 100%; }
figcaption { color: #555; font-size: 0.9em; }
"""


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def to_markdown(blocks: Sequence[Block], base: Path) -> str:
    """Markdown text; picture paths relative to ``base`` (the folder the file will be in)."""
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            lines += [block.text, ""]
        elif isinstance(block, Table):
            lines.append("| " + " | ".join(block.header) + " |")
            lines.append("|" + "|".join("---" for _ in block.header) + "|")
            lines += ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |" for row in block.rows]
            lines.append("")
        else:
            link = Path(os.path.relpath(block.path, base)).as_posix()
            lines += [f"![{block.path.stem}]({link})", "", f"*{block.caption}*", ""]
    return "\n".join(lines)


def to_html(blocks: Sequence[Block], title: str) -> str:
    """A standalone HTML page; pictures are read now and embedded as ``data:`` URIs."""
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            rows = "".join("<tr>" + "".join(_html_cell(v) for v in row) + "</tr>" for row in block.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            mime = MIME.get(block.path.suffix.lower(), "application/octet-stream")
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            image = f'<img src="data:{mime};base64,{data}" alt="{html.escape(block.path.stem)}">'
            body.append(f"<figure>{image}<figcaption>{html.escape(block.caption)}</figcaption></figure>")
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _html_cell(value: object) -> str:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return (
        f'<td class="number">{html.escape(_cell(value))}</td>' if numeric else f"<td>{html.escape(_cell(value))}</td>"
    )
