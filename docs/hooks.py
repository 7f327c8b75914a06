"""MkDocs hook: the pictures of the reference runs (``results/``) and the example images
(``examples/images/``) are published with the site from where they are in the repository, so the
pages show the committed figures without a second copy under ``docs/``.

A page links them as if ``results/`` and ``examples/`` were folders of ``docs/``:
``![demo](results/demo/figures/with-stn/before_after.png)`` from a page at the top of ``docs/``.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("results", "examples/images")
SUFFIXES = {".png", ".gif", ".jpg", ".jpeg", ".svg"}


def on_files(files: Files, config) -> Files:
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix.lower() in SUFFIXES and path.is_file():
                uri = path.relative_to(ROOT).as_posix()
                if files.get_file_from_path(uri) is None:
                    files.append(File(uri, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files
