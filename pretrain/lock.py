"""One process at a time per folder: an OS file lock (``flock``) on ``<folder>/.dropbench.lock``.

A suite folder is held by ``dropbench suite run`` / ``evaluate`` for as long as they run, a run folder by the process
that trains in it (the suite's own process or worker, a SLURM job, ``dropbench pretrain`` / ``finetune``). The lock
belongs to the open file: the kernel releases it when the process ends, however it ends, so a ``kill -9`` leaves no
stale lock (forked children, such as data-loader workers, close their copy at once and never keep it alive). The
holder (host, pid, start time, command) is written into the lock file, so a refused process can name it. Where the
file system cannot lock (some network file systems), a warning says so once and the work goes on unlocked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["LOCK_FILE", "FolderInUse", "hold", "holder_of"]

log = logging.getLogger(__name__)
LOCK_FILE = ".dropbench.lock"
_held: dict[Path, list[int]] = {}  # folder -> [fd, nesting depth] of the locks this process holds
_warned = False


class FolderInUse(FileExistsError):
    """Another process holds the folder; the message names it (host, pid, start time, command)."""


def holder_of(folder: str | os.PathLike) -> str:
    """Who holds (or last held) ``folder``, as written into its lock file."""
    try:
        info = json.loads((Path(folder) / LOCK_FILE).read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        info = {}
    if not info:
        return "another process (it has not written its name yet)"
    return (f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')} "
            f"({info.get('command', '?')})")


def _close_in_child() -> None:
    for fd, _ in _held.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_close_in_child)


@contextlib.contextmanager
def hold(folder: str | os.PathLike, wait: bool = False, poll_s: float = 1.0) -> Iterator[Path]:
    """Hold ``folder`` (made if missing) for the block; nested holds of one folder by one process are free.

    Args:
        folder: the suite or run folder.
        wait: wait for the holder to finish instead of refusing.
        poll_s: seconds between tries while waiting (a signal stops the wait, see :mod:`pretrain.stop`).

    Raises:
        FolderInUse: another process holds the folder and ``wait`` is False.
    """
    global _warned
    folder = Path(folder).resolve()
    if folder in _held:
        _held[folder][1] += 1
        try:
            yield folder
        finally:
            _held[folder][1] -= 1
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    locked = False
    try:
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                if not wait:
                    raise FolderInUse(f"{folder} is in use by {holder_of(folder)}; wait for it to finish or stop it, "
                                      f"or pass --wait to wait for it") from None
                if not announced:
                    log.warning("%s is in use by %s; waiting for it (--wait)", folder, holder_of(folder))
                    announced = True
                time.sleep(poll_s)
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
                if not _warned:
                    log.warning("the file system of %s cannot lock files (%s): going on without a lock; do not start "
                                "two processes on one folder", folder, e.strerror)
                    _warned = True
                break
        if locked:
            info = {"host": socket.gethostname(), "pid": os.getpid(),
                    "started": datetime.now(UTC).isoformat(timespec="seconds"),
                    "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
            _held[folder] = [fd, 1]
        yield folder
    finally:
        if locked:
            _held.pop(folder, None)
        os.close(fd)  # releases the lock
