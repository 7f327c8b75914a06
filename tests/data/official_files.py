"""Helpers that make small synthetic copies pass the official-file checks (``stn.data.official``)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from stn.data import official


def fingerprints(folder: Path) -> dict[str, tuple[int, str]]:
    """Decompressed size and md5 of the four IDX files in ``folder``, as ``official.IDX_FINGERPRINTS`` holds them."""
    found = {}
    for part in official.IDX_NAMES:
        path = folder / f"{part}.gz" if (folder / f"{part}.gz").is_file() else folder / part
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        found[part] = (len(raw), hashlib.md5(raw).hexdigest())
    return found


def trust_idx(monkeypatch: pytest.MonkeyPatch, name: str, folder: Path) -> None:
    """Make the IDX files in ``folder`` the official ones of data set ``name`` for one test."""
    monkeypatch.setitem(official.IDX_FINGERPRINTS, name, fingerprints(folder))


def trust_cifar(monkeypatch: pytest.MonkeyPatch, batches: Path) -> None:
    """Make the CIFAR-10 batch files in folder ``batches`` the official ones for one test."""
    for part in official.CIFAR10_MD5:
        monkeypatch.setitem(official.CIFAR10_MD5, part, hashlib.md5((batches / part).read_bytes()).hexdigest())
