"""Fixtures for the data tests: small synthetic copies of the official files pass the official checks."""

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


@pytest.fixture
def trust_idx(monkeypatch):
    """``trust_idx(name, folder)``: make the IDX files in ``folder`` the official ones of data set ``name``."""

    def trust(name: str, folder: Path) -> None:
        monkeypatch.setitem(official.IDX_FINGERPRINTS, name, fingerprints(folder))

    return trust


@pytest.fixture
def trust_cifar(monkeypatch):
    """``trust_cifar(batches)``: make the batch files in folder ``batches`` the official CIFAR-10 ones."""

    def trust(batches: Path) -> None:
        for part in official.CIFAR10_MD5:
            monkeypatch.setitem(official.CIFAR10_MD5, part, hashlib.md5((batches / part).read_bytes()).hexdigest())

    return trust
