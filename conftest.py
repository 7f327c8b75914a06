"""Doctests of the library (``pytest`` collects them from ``src/stn``, see pyproject.toml): the
modules that must not be imported as a test are left out."""

collect_ignore = [
    "src/stn/__main__.py",  # runs the command line when imported
    # Deprecated module names kept for one release: importing them warns.
    "src/stn/engine/diagnostics.py",
    "src/stn/engine/tensorboard.py",
    "src/stn/viz/board.py",
    "src/stn/viz/diagnostics.py",
]


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace, request):
    """Every example may use ``torch`` and ``stn`` without importing them. The folders an example
    makes with ``tempfile.mkdtemp()`` (as a reader would) are made in the test's ``tmp_path``."""
    import tempfile

    import torch

    import stn

    doctest_namespace.update(torch=torch, stn=stn)
    if isinstance(request.node, pytest.DoctestItem):
        request.getfixturevalue("monkeypatch").setattr(tempfile, "tempdir", str(request.getfixturevalue("tmp_path")))
