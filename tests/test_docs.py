"""The documentation site runs as written and renders.

* Every ```python block of ``docs/**/*.md`` runs, each in a fresh interpreter (so that nothing
  imported by other tests hides a missing ``import``), a page's blocks in order in one empty folder
  (a block may read the run the block before it trained), and a line ``print(...)  # text``
  prints ``text``. A block that needs a trained run or a data set may be
  skipped only where the page marks it with ``<!-- test: skip (reason) -->`` on the line before.
* Every ``stn.x.y`` the pages name is reachable after ``import stn``.
* The generated tables and the families' pictures are those the scripts make from the repository
  (``docs/scripts/tables.py``, ``docs/scripts/gallery.py``).
* ``mkdocs build --strict`` passes, and the home page, the families' gallery and the API page of
  ``SpatialTransformer`` have their title, the navigation and a picture (skipped without mkdocs).
* The committed screenshots exist and are not blank.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SKIP = re.compile(r"<!-- test: skip \((.+?)\) -->\s*$")
PAGES = sorted(p for p in DOCS.rglob("*.md") if "generated" not in p.parts)


def python_blocks(pages: list[Path] = PAGES) -> list[tuple[str, str, str | None]]:
    """``(page:line, code, skip reason)`` of every ```python block of the pages."""
    blocks = []
    for page in pages:
        lines = page.read_text().splitlines()
        start = None
        for i, line in enumerate(lines):
            if start is None and line.strip() == "```python":
                start = i
            elif start is not None and line.strip() == "```":
                marker = SKIP.search(lines[start - 1]) if start else None
                where = f"{page.relative_to(DOCS)}:{start + 1}"
                blocks.append((where, "\n".join(lines[start + 1 : i]) + "\n", marker and marker.group(1)))
                start = None
    return blocks


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        STN_CACHE=str(cwd / "cache"),  # a data set a block builds stays in its folder
        OMP_NUM_THREADS="1",
    )
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_pages_have_python():
    assert len(python_blocks()) >= 10


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks([p])], ids=lambda p: str(p.relative_to(DOCS)))
def test_python_blocks_run_as_written(page, tmp_path):
    for where, code, skip in python_blocks([page]):
        if skip:  # the page says why, on the line before the block
            continue
        result = run_python(code, tmp_path)
        assert result.returncode == 0, f"docs/{where}:\n{result.stderr[-3000:]}"
        printed = re.sub(r"\s+", "", result.stdout)  # a tensor prints over several lines; the page shows it on one
        for expected in re.findall(r"^print\(.*\)\s+# (.+)$", code, flags=re.M):  # `print(x)  # what it prints`
            assert re.sub(r"\s+", "", expected) in printed, f"docs/{where}: expected {expected!r} in:\n{result.stdout}"


def test_names_in_the_pages_are_reachable_after_import_stn(tmp_path):
    text = "\n".join(p.read_text() for p in PAGES)
    names = sorted(set(re.findall(r"`(stn(?:\.[A-Za-z_]\w*)+)", text)))
    assert "stn.warp" in names and "stn.models.create" in names
    check = f"import stn\nfor name in {names!r}:\n    obj = stn\n    for part in name.split('.')[1:]:\n"
    check += "        obj = getattr(obj, part)\nprint('ok')\n"
    result = run_python(check, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, DOCS / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_tables_are_the_results():
    assert _script("tables").check() == []


def test_every_family_has_its_picture_and_snippets():
    gallery = _script("gallery")
    assert gallery.check() == []
    families = (DOCS / "families.md").read_text()
    import stn

    for name in [*stn.transforms.names(), "parallel", "recurrent"]:
        assert f'--8<-- "family-{name}.md"' in families, f"families.md has no gallery entry for {name}"


def test_gallery_draws_a_family(tmp_path):
    pytest.importorskip("matplotlib")
    gallery = _script("gallery")
    import matplotlib

    matplotlib.use("Agg")
    params = gallery.family_picture("affine", tmp_path / "affine.png")
    assert params.shape == (1, 6)
    _assert_not_blank(tmp_path / "affine.png")


def _assert_not_blank(path: Path) -> None:
    from PIL import Image, ImageStat

    with Image.open(path) as image:
        stat = ImageStat.Stat(image.convert("L"))
        assert image.width >= 200 and image.height >= 100, image.size
        assert stat.stddev[0] > 10, f"{path} looks blank (grey level spread {stat.stddev[0]:.1f})"


@pytest.mark.parametrize("name", ["home.png", "families.png", "api-spatial-transformer.png"])
def test_screenshots_exist_and_are_not_blank(name):
    _assert_not_blank(DOCS / "screenshots" / name)


class _Page(HTMLParser):
    """Title, navigation links and images of a built page."""

    def __init__(self) -> None:
        super().__init__()
        self.title, self.nav_links, self.images, self._in = "", 0, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "title":
            self._in.append("title")
        if tag == "nav":
            self._in.append("nav")
        if tag == "a" and "nav" in self._in:
            self.nav_links += 1
        if tag == "img":
            self.images.append(attrs.get("src", ""))

    def handle_endtag(self, tag):
        if tag in ("title", "nav") and tag in self._in:
            self._in.remove(tag)

    def handle_data(self, data):
        if "title" in self._in:
            self.title += data


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings")
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    out = tmp_path_factory.mktemp("site")
    command = [mkdocs, "build", "--strict", "--site-dir", str(out)] if mkdocs else None
    if command is None:
        command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)]
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-5000:]
    return out


@pytest.mark.parametrize(
    ("page", "title", "image"),
    [
        ("index.html", "stn", "before_after.png"),
        ("families/index.html", "Transform families", "images/families/affine.png"),
        ("api/layers/index.html", "stn.layers", None),
    ],
)
def test_the_site_renders(site, page, title, image):
    html = (site / page).read_text()
    parsed = _Page()
    parsed.feed(html)
    assert title in parsed.title, parsed.title
    assert parsed.nav_links >= 20, f"{page}: {parsed.nav_links} navigation links"
    if image:
        assert any(image in src for src in parsed.images), parsed.images
        for src in parsed.images:
            if not src.startswith(("http:", "https:", "data:")):
                assert (site / page).parent.joinpath(src).resolve().is_file(), f"{page}: missing picture {src}"


def test_the_api_page_documents_spatial_transformer(site):
    html = (site / "api" / "layers" / "index.html").read_text()
    assert 'id="stn.layers.SpatialTransformer"' in html
    assert "Examples" in html and "identity" in html


def test_the_viz_page_documents_every_name_stn_viz_offers(site):
    import stn.viz

    html = (site / "api" / "viz" / "index.html").read_text()
    missing = [name for name, module in stn.viz._WHERE.items() if f'id="stn.viz.{module}.{name}"' not in html]
    assert missing == [], f"not on the stn.viz page: {missing}"
