"""Atomic writes: nothing already saved is lost when a write fails, for example on a full disk."""

from __future__ import annotations

import errno
import io
import os

import pytest
import torch

from stn import files
from stn.engine import checkpoint as ckpt


class FullDisk(io.RawIOBase):
    """A file on a disk with ``room`` bytes left: it writes that much, then raises ``ENOSPC``."""

    def __init__(self, file, room: int):
        self.file, self.room = file, room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.room:
            self.file.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.file.write(data)

    def fileno(self) -> int:
        return self.file.fileno()

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()
        super().close()


@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk(room)``: from now on, files opened by ``stn.files`` hold only ``room`` bytes."""

    def fill(room: int) -> None:
        real = os.fdopen
        monkeypatch.setattr(files.os, "fdopen", lambda fd, mode: FullDisk(real(fd, mode), room))

    return fill


def assert_kept(path, before: bytes, err) -> None:
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == [path.name]  # the temporary file is gone
    assert isinstance(err, files.WriteError) and isinstance(err, OSError) and err.errno == errno.ENOSPC
    message = str(err)
    assert "\n" not in message
    assert message == f"could not write {path}: No space left on device; the previous {path.name} is kept unchanged"


@pytest.mark.parametrize("room", [0, 64, 1000, 5000])
def test_a_checkpoint_that_does_not_fit_keeps_the_previous_one(tmp_path, full_disk, room):
    path = tmp_path / "last.pt"
    ckpt.save({"epoch": 1, "weights": torch.arange(10.0)}, path)
    before = path.read_bytes()
    full_disk(room)
    with pytest.raises(OSError) as err:
        ckpt.save({"epoch": 2, "weights": torch.zeros(2000)}, path)
    assert_kept(path, before, err.value)
    assert ckpt.load(path)["epoch"] == 1  # still resumable


def test_text_and_pictures_too(tmp_path, full_disk):
    from PIL import Image

    metrics, picture = tmp_path / "metrics" / "metrics.csv", tmp_path / "picture" / "grid.png"
    metrics.parent.mkdir()
    picture.parent.mkdir()
    files.write_text_atomic(metrics, "epoch,loss\n1,0.5\n")
    Image.new("L", (8, 8)).save(picture)
    old_metrics, old_picture = metrics.read_bytes(), picture.read_bytes()
    full_disk(10)
    with pytest.raises(files.WriteError) as err:
        files.write_text_atomic(metrics, "epoch,loss\n1,0.5\n2,0.4\n")
    assert_kept(metrics, old_metrics, err.value)
    noise = Image.effect_noise((64, 64), 50).convert("L")
    with pytest.raises(files.WriteError) as err:
        files.write_atomic(picture, lambda f: noise.save(f, format="PNG"))
    assert_kept(picture, old_picture, err.value)


@pytest.mark.parametrize("where", ["torch.save", "fsync", "replace"])
def test_a_failure_at_any_step_keeps_the_previous_file(tmp_path, monkeypatch, where):
    path = tmp_path / "best.pt"
    files.save_atomic({"epoch": 1}, path)
    before = path.read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    target = {"torch.save": (files.torch, "save"), "fsync": (files.os, "fsync"), "replace": (files.os, "replace")}
    monkeypatch.setattr(*target[where], no_space)
    with pytest.raises(files.WriteError) as err:
        files.save_atomic({"epoch": 2}, path)
    monkeypatch.undo()
    assert_kept(path, before, err.value)


def test_a_failed_first_write_leaves_nothing(tmp_path, full_disk):
    full_disk(0)
    with pytest.raises(
        files.WriteError, match=r"could not write .*new\.pt: No space left on device; nothing was written$"
    ):
        files.save_atomic({"a": 1}, tmp_path / "new.pt")
    assert os.listdir(tmp_path) == []


def test_other_errors_pass_through_and_clean_up(tmp_path):
    path = tmp_path / "x.txt"
    files.write_text_atomic(path, "old")

    def fails(error):
        def write(f):
            f.write(b"partial")
            raise error

        return write

    with pytest.raises(ValueError, match="a bug"):
        files.write_atomic(path, fails(ValueError("a bug")))
    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(path, fails(KeyboardInterrupt()))
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["x.txt"]


def test_the_file_handed_to_writers_works_like_a_file(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from PIL import Image

    files.save_atomic({"w": torch.ones(3)}, tmp_path / "a.pt")
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["w"], torch.ones(3))
    files.write_atomic(tmp_path / "b.png", lambda f: Image.new("RGB", (5, 4)).save(f, format="PNG"))
    assert Image.open(tmp_path / "b.png").size == (5, 4)
    figure = Figure()
    figure.add_subplot().plot([1, 2])
    files.write_atomic(tmp_path / "c.png", lambda f: figure.savefig(f, format="png"))
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
