"""Griffe extension for the API pages: the docstrings' Sphinx roles (``:func:`warp```,
``:class:`~stn.transforms.Transform```, ``:mod:`stn.transforms```, ...) become cross-references.

The docstrings are written for ``help()`` and the source as much as for the site, so they keep
the roles; this turns each into an *optional* autorefs link to the object's documented page: a
link where the object is rendered on some page, plain code where it is not (never a warning).
Names are resolved as Python would resolve them in the docstring's module (imports included),
then as full paths.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc|const):`(~?)([\w.]+)(\(\))?`")


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring as optional cross-references."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _objects(pkg):
            if obj.docstring is not None and ":" in obj.docstring.value:
                obj.docstring.value = ROLE.sub(lambda m, obj=obj: _reference(obj, m), obj.docstring.value)


def _objects(obj: griffe.Object):
    """``obj`` and every object defined in it (aliases are not followed)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


def _reference(obj: griffe.Object, match: re.Match) -> str:
    short, name, call = match.group(1), match.group(2), match.group(3) or ""
    shown = (name.rsplit(".", 1)[-1] if short else name) + call
    target = _resolve(obj, name)
    if target is None:
        return f"`{shown}`"
    return f'<autoref identifier="{target}" optional><code>{shown}</code></autoref>'


def _resolve(obj: griffe.Object, name: str) -> str | None:
    """The full path of ``name`` as seen from ``obj`` (through aliases to what they name)."""
    collection = obj.modules_collection
    head, _, rest = name.partition(".")
    scopes = [obj] + [parent for parent in _parents(obj)]
    candidates = []
    for scope in scopes:
        try:
            resolved = scope.resolve(head)
        except Exception:  # a name griffe cannot place stays plain code
            continue
        candidates.append(f"{resolved}.{rest}" if rest else resolved)
        break
    candidates.append(name)
    for candidate in candidates:
        try:
            found = collection.get_member(candidate)
            return found.final_target.path if found.is_alias else found.path
        except Exception:
            continue
    return None


def _parents(obj: griffe.Object):
    parent = obj.parent
    while parent is not None:
        yield parent
        parent = parent.parent
