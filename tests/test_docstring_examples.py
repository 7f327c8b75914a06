"""The examples in the docstrings of the polar and probabilistic transformers run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["stn.polar", "stn.probabilistic", "stn.models.ptn", "stn.models.pstn", "stn.experiments.pstn"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, result
