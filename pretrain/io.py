"""Atomic file writes: the one place dropbench writes a file through a temporary file and a rename.

Every writer of a file that another process may read while it is written (checkpoints, ``log.jsonl``, the resolved
``config.py``, ``result.json``, suite specs and indexes, tables, reports, generated annotation files) calls
:func:`atomic_write`, so a reader sees the old file or the new one, never half of one, and a failed write leaves the
old file as it was and no temporary file behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_link", "atomic_write"]


def atomic_write(path: str | os.PathLike, data: str | bytes | Callable[[IO], Any], *, binary: bool | None = None,
                 fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    Args:
        path: the file to (re)place; its folder is made if missing.
        data: the text or bytes to write, or a writer called with the open temporary file (``lambda f:
            torch.save(obj, f)``, ``df.to_csv``, ``lambda f: json.dump(obj, f)``).
        binary: open the temporary file in binary mode; default: True for bytes, False for text and writers.
        fsync: flush the file to disk before the rename (checkpoints: a crash cannot leave an empty file behind).

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if binary is None:
        binary = isinstance(data, bytes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_link(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Make ``dst`` a hard link of ``src`` (a copy where links are impossible), replacing ``dst`` atomically."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst
