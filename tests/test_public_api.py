"""Every public function and class has an example in its docstring.

Public: the functions and classes in the ``__all__`` of the packages and modules below (those the
API pages document). An example is a ``>>>`` line, which ``pytest`` runs as a doctest (the
``--doctest-modules`` of pyproject.toml), so an example that no longer runs fails there and one
that is removed fails here.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

PACKAGES = (
    "stn",
    "stn.transforms",
    "stn.pixels",
    "stn.models",
    "stn.data",
    "stn.engine",
    "stn.export",
    "stn.predict",
    "stn.observe",
    "stn.inference",
    "stn.sampling",
    "stn.viz",
    "stn.registration",
    "stn.functional",
    "stn.layers",
    "stn.normalization",
    "stn.polar",
    "stn.probabilistic",
)


def public_objects() -> dict[str, object]:
    """``{"package.name": object}`` for every function and class in the packages' ``__all__``,
    each object once (under the first package that exports it)."""
    found: dict[str, object] = {}
    seen: set[int] = set()
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and id(obj) not in seen:
                seen.add(id(obj))
                found[f"{package}.{name}"] = obj
    return found


def without_example() -> list[str]:
    """The public functions and classes whose own docstring has no ``>>>`` line (a class's
    docstring is its own: ``__doc__`` is not inherited)."""
    return sorted(name for name, obj in public_objects().items() if ">>>" not in (obj.__doc__ or ""))


def test_every_public_function_and_class_has_an_example():
    assert len(public_objects()) > 100  # the packages were read
    missing = without_example()
    assert not missing, (
        f"{len(missing)} public functions and classes have no example (a '>>>' line) in their docstring: "
        + ", ".join(missing)
    )


@pytest.mark.parametrize("name", ["stn.export.check", "stn.registration.UNet"])
def test_a_removed_example_is_found(monkeypatch, name):
    obj = public_objects()[name]
    monkeypatch.setattr(obj, "__doc__", "What it does, without an example.")
    assert without_example() == [name]
