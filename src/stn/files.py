"""Atomic file writes: a crash or a full disk leaves the old file or the new one, never half of either."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

__all__ = ["WriteError", "save_atomic", "write_atomic", "write_text_atomic"]


class WriteError(OSError):
    """Writing a file failed (full disk, no permission, ...); the previous file, if any, is unchanged.

    ``errno`` is the underlying error's (``errno.ENOSPC`` for a full disk); ``str()`` is one line
    naming the file, the reason and what was kept."""

    def __init__(self, path: Path, cause: BaseException, kept: bool) -> None:
        text = str(cause).strip()
        reason = getattr(cause, "strerror", None) or (text.splitlines()[0] if text else type(cause).__name__)
        super().__init__(getattr(cause, "errno", None), reason, str(path))
        after = f"the previous {path.name} is kept unchanged" if kept else "nothing was written"
        self.message = f"could not write {path}: {reason}; {after}"

    def __str__(self) -> str:
        return self.message


class _Watched:
    """A file that remembers the first ``OSError`` its ``write`` raised: writers such as
    ``torch.save`` report a failed write as a ``RuntimeError`` of their own. It has no ``fileno``,
    so every byte goes through ``write``."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._file.write(data)
        except OSError as err:
            self.error = self.error or err
            raise

    def __getattr__(self, name: str) -> Any:
        if name == "fileno":
            raise AttributeError(name)
        return getattr(self._file, name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    Raises:
        WriteError: the write failed (for example ``errno.ENOSPC``, a full disk); the temporary
            file is removed and the previous ``path``, if any, is unchanged.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "data.bin"
        >>> write_atomic(path, lambda f: f.write(b"stn"))
        >>> path.read_bytes()
        b'stn'
    """
    path = Path(path)
    kept = path.exists()
    tmp = None
    watched = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            watched = _Watched(f)
            write(watched)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        cause = err if isinstance(err, OSError) else watched.error if watched else None
        if cause is None or isinstance(err, WriteError) or not isinstance(err, Exception):
            raise
        raise WriteError(path, cause, kept) from err


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)``, atomically (see :func:`write_atomic`).

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "weights.pt"
        >>> save_atomic({"w": torch.ones(2)}, path)
        >>> torch.load(path, weights_only=True)
        {'w': tensor([1., 1.])}
    """
    write_atomic(path, lambda f: torch.save(obj, f))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, atomically (see :func:`write_atomic`).

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "note.txt"
        >>> write_text_atomic(path, "θ")
        >>> path.read_text(encoding="utf-8"), [p.name for p in path.parent.iterdir()]  # no temporary file left
        ('θ', ['note.txt'])
    """
    write_atomic(path, lambda f: f.write(text.encode()))
