"""Fixtures for the data tests: small synthetic copies of the official files pass the official checks."""

from __future__ import annotations

import pytest

from . import official_files


@pytest.fixture
def trust_idx(monkeypatch):
    """``trust_idx(name, folder)``: make the IDX files in ``folder`` the official ones of data set ``name``."""
    return lambda name, folder: official_files.trust_idx(monkeypatch, name, folder)


@pytest.fixture
def trust_cifar(monkeypatch):
    """``trust_cifar(batches)``: make the batch files in folder ``batches`` the official CIFAR-10 ones."""
    return lambda batches: official_files.trust_cifar(monkeypatch, batches)
