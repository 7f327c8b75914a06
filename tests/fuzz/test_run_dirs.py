"""Fuzzed run directories through the ``stn`` command: a ``config.json`` with wrong types, missing
keys or not JSON at all, and a ``metrics.csv`` cut anywhere, give one line and exit 2 (or, where
the damage leaves a valid file, the command's usual result), never a traceback; the run directory
is byte-identical after."""

from __future__ import annotations

import json
import shutil

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stn.cli import main

from ..test_bad_input import digests, finished  # noqa: F401  (the fixture)

FUZZ = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def fresh_copy(finished, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    shutil.rmtree(run, ignore_errors=True)
    return shutil.copytree(finished[0], run)


def outcome(argv, capsys, keep, writes: bool = False) -> tuple[int, str]:
    """Run ``stn argv``: exit 0 or one line and exit 2, no traceback, ``keep`` unchanged (unless the
    command ``writes`` there and succeeded)."""
    before = digests(keep)
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "internal error" not in err, err
    assert code in (0, 2), (code, err)
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("stn: error: "), err
    if code == 2 or not writes:
        assert digests(keep) == before
    return code, err


def resume(run):
    return ["train", "--resume", run, "--epochs", "1", "--no-progress", "--no-report"]


@FUZZ
@given(data=st.data())
def test_config_with_wrong_types_or_missing_keys(finished, tmp_path, capsys, data):  # noqa: F811
    run = fresh_copy(finished, tmp_path)
    config = json.loads((run / "config.json").read_text())
    keys = sorted(config)
    for key in data.draw(st.lists(st.sampled_from(keys), max_size=3, unique=True), label="removed"):
        del config[key]
    for key in data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True), label="changed"):
        config[key] = data.draw(JSON, label=key)
    (run / "config.json").write_text(json.dumps(config))
    code, _ = outcome(resume(run), capsys, run)
    assert code == 2  # epochs 1 of a finished run: refused whatever the config holds


@FUZZ
@given(blob=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_config_that_is_not_a_config(finished, tmp_path, capsys, blob):  # noqa: F811
    run = fresh_copy(finished, tmp_path)
    (run / "config.json").write_bytes(blob)
    code, _ = outcome(resume(run), capsys, run)
    assert code == 2


@settings(FUZZ, max_examples=25)
@given(data=st.data())
def test_metrics_cut_anywhere(finished, tmp_path, capsys, data):  # noqa: F811
    run = fresh_copy(finished, tmp_path)
    text = (run / "metrics.csv").read_text()
    cut = data.draw(st.integers(0, len(text) - 1), label="cut")
    (run / "metrics.csv").write_text(text[:cut])
    command = data.draw(st.sampled_from(["report", "visualize", "resume"]), label="command")
    argv = {
        "report": ["report", run, "--out", tmp_path / "report"],
        "visualize": ["visualize", run, "--out", tmp_path / "figures"],
        "resume": resume(run),
    }[command]
    code, err = outcome(argv, capsys, run, writes=command == "resume")
    # Whole rows (a header at least) are valid: resume rewrites them from last.pt.
    whole = cut > text.index("\n") and text[:cut].endswith("\n")
    if not whole:
        assert code == 2 and "metrics.csv is damaged" in err


def test_metrics_cut_at_every_point_refuses_resume(finished, tmp_path, capsys):  # noqa: F811
    text = (finished[0] / "metrics.csv").read_text()
    for cut in range(len(text)):
        run = fresh_copy(finished, tmp_path)
        (run / "metrics.csv").write_text(text[:cut])
        code, err = outcome(resume(run), capsys, run, writes=True)
        if not (cut > text.index("\n") and text[:cut].endswith("\n")):  # whole rows: last.pt says where it is
            assert code == 2 and "metrics.csv is damaged" in err, (cut, err)
