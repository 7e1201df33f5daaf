"""Atomic file writes: the one place dropbench writes a file through a temporary file and a rename.

Every writer of a file that another process may read while it is written (checkpoints, ``log.jsonl``, the resolved
``config.py``, ``result.json``, suite specs and indexes, tables, reports, generated annotation files) calls
:func:`atomic_write`, so a reader sees the old file or the new one, never half of one, and a failed write leaves the
old file as it was and no temporary file behind; the error of a failed write (disk full, permissions) names the file.
The fault campaign (``tools/fault_campaign.py``) kills processes inside these writes through
:func:`pretrain.faults.fault_point` (``<label>:tmp-created``, ``<label>:written``, ``<label>:renamed``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from dropbench.pretrain.faults import fault_point

__all__ = ["atomic_link", "atomic_write", "write_error"]


def write_error(path: str | os.PathLike, error: BaseException) -> OSError:
    """An ``OSError`` naming the file whose write failed (disk full, file-size limit, permissions) and why."""
    detail = getattr(error, "strerror", None) or (str(error).splitlines() or [type(error).__name__])[0]
    msg = f"could not write {path} ({type(error).__name__}: {detail}); the previous file there is left as it was"
    errno = getattr(error, "errno", None)
    return OSError(errno, msg) if errno is not None else OSError(msg)


def atomic_write(path: str | os.PathLike, data: str | bytes | Callable[[IO], Any], *, binary: bool | None = None,
                 fsync: bool = False, label: str = "file") -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    Args:
        path: the file to (re)place; its folder is made if missing.
        data: the text or bytes to write, or a writer called with the open temporary file (``lambda f:
            torch.save(obj, f)``, ``df.to_csv``, ``lambda f: json.dump(obj, f)``).
        binary: open the temporary file in binary mode; default: True for bytes, False for text and writers.
        fsync: flush the file to disk before the rename (checkpoints: a crash cannot leave an empty file behind).
        label: what the file is (``checkpoint``, ``result``, ...): names its fault points.

    Returns:
        ``path`` as a Path.

    Raises:
        OSError: the write failed (disk full, file-size limit, permissions): the message names ``path``.
    """
    path = Path(path)
    if binary is None:
        binary = isinstance(data, bytes)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        fault_point(f"{label}:tmp-created")
        with os.fdopen(fd, "wb" if binary else "w") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        fault_point(f"{label}:written")
        os.replace(tmp, path)
        fault_point(f"{label}:renamed")
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        torch_writer = isinstance(e, RuntimeError) and any(w in str(e) for w in ("inline_container", "StreamWriter"))
        if isinstance(e, OSError) or torch_writer:  # (torch's zip writer reports a failed write as a RuntimeError)
            raise write_error(path, e) from e
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
