"""Fuzzed IDX files: random, truncated or re-headed bytes are one ``DataError`` naming the file, never
another exception."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stn.data import DataError
from stn.data.formats import read_idx

FUZZ = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
HEADER = bytes([0, 0, 8, 3]) + np.asarray((5, 4, 3), dtype=">i4").tobytes()
GOOD = HEADER + bytes(range(60))


def read_or_refuse(path):
    before = path.read_bytes()
    try:
        result = read_idx(path)
    except DataError as err:
        assert "\n" not in str(err) and str(path) in str(err)
        result = None
    assert path.read_bytes() == before
    return result


@FUZZ
@given(blob=st.binary(max_size=512), gz=st.booleans())
def test_random_bytes(tmp_path, blob, gz):
    path = tmp_path / ("x-idx3-ubyte.gz" if gz else "x-idx3-ubyte")
    path.write_bytes(blob)
    result = read_or_refuse(path)
    assert result is None or result.numel() == len(blob) - 4 - 4 * blob[3]


@FUZZ
@example(dims=[-1, -2], body=b"ab")  # negative sizes whose product matches the body
@example(dims=[2**16, 2**16, 0], body=b"")
@given(dims=st.lists(st.integers(-(2**31), 2**31 - 1), min_size=0, max_size=4), body=st.binary(max_size=64))
def test_any_header(tmp_path, dims, body):
    path = tmp_path / "h-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, len(dims)]) + np.asarray(dims, dtype=">i4").tobytes() + body)
    result = read_or_refuse(path)
    assert result is None or (list(result.shape) == dims and result.numel() == len(body))


@FUZZ
@given(data=st.data(), gz=st.booleans())
def test_truncated_anywhere(tmp_path, data, gz):
    blob = gzip.compress(GOOD) if gz else GOOD
    path = tmp_path / ("t-idx3-ubyte.gz" if gz else "t-idx3-ubyte")
    path.write_bytes(blob[: data.draw(st.integers(0, len(blob) - 1))])
    assert read_or_refuse(path) is None


@pytest.mark.parametrize("gz", [False, True])
def test_the_whole_file_reads(tmp_path, gz):
    path = tmp_path / ("w-idx3-ubyte.gz" if gz else "w-idx3-ubyte")
    path.write_bytes(gzip.compress(GOOD) if gz else GOOD)
    assert read_idx(path).flatten().tolist() == list(range(60)) and read_idx(path).shape == (5, 4, 3)
