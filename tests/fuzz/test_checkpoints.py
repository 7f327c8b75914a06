"""Fuzzed checkpoint files: whatever the bytes, ``checkpoint.load`` returns the real payload or raises
one ``CheckpointError`` line (never another exception, never torch's advice), and never changes the file."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stn.engine import checkpoint as ckpt

from ..engine.test_checkpoint import real_checkpoint

FUZZ = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> tuple[bytes, dict]:
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    payload = real_checkpoint(path)
    return path.read_bytes(), payload


def load_or_refuse(path) -> dict | None:
    """The payload, or None after checking the refusal is one clean line; the file is unchanged either way."""
    before = path.read_bytes()
    try:
        payload = ckpt.load(path)
    except ckpt.CheckpointError as err:
        message = str(err)
        assert "\n" not in message and "weights_only" not in message and str(path) in message
        payload = None
    assert path.read_bytes() == before
    return payload


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@FUZZ
@given(blob=st.binary(max_size=4096))
def test_random_bytes(tmp_path, blob):
    path = tmp_path / "random.pt"
    path.write_bytes(blob)
    assert load_or_refuse(path) is None


@FUZZ
@given(data=st.data())
def test_truncated_anywhere(tmp_path, original, data):
    blob, _ = original
    keep = data.draw(st.integers(0, len(blob) - 1))
    path = tmp_path / "last.pt"
    path.write_bytes(blob[:keep])
    assert load_or_refuse(path) is None


@FUZZ
@given(data=st.data())
def test_flipped_bytes(tmp_path, original, data):
    """A flip either is refused or changed nothing that loads (zip padding, unused header fields)."""
    blob, payload = original
    damaged = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(blob) - 1))
        damaged[at] ^= data.draw(st.integers(1, 255))
    path = tmp_path / "last.pt"
    path.write_bytes(bytes(damaged))
    loaded = load_or_refuse(path)
    assert loaded is None or same(loaded, {"format": ckpt.FORMAT, **payload})


@settings(FUZZ, max_examples=50)
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
        max_leaves=12,
    )
)
def test_other_programs_plain_data(tmp_path, value):
    path = tmp_path / "other.pt"
    torch.save(value, path)
    loaded = load_or_refuse(path)
    assert loaded is None or loaded.get("format") == ckpt.FORMAT
