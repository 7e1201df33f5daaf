"""Damaged files: a truncated newest checkpoint (resume falls back, deletes nothing) and a failed write (disk full)."""

from __future__ import annotations

import logging
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dropbench.pretrain.checkpoint import CheckpointError, atomic_save, load_checkpoint_file
from dropbench.pretrain.train import _load_resume


def _damage(path: Path) -> None:
    """What a machine that died while writing leaves: a new, truncated file (the rename reached the disk, the data
    did not)."""
    data = path.read_bytes()
    path.unlink()  # (checkpoint-<epoch>.pth may be a hard link of the same data: keep it intact)
    path.write_bytes(data[: len(data) // 3])


def test_resume_falls_back_to_the_newest_checkpoint_that_loads(tmp_path, caplog):
    for epoch in (0, 1):
        atomic_save({"iteration": 12 * (epoch + 1), "w": torch.full((4,), float(epoch))}, tmp_path /
                    f"checkpoint-{epoch}.pth")
    os.link(tmp_path / "checkpoint-1.pth", tmp_path / "checkpoint.pth")
    atomic_save({"iteration": 30}, tmp_path / "checkpoint.pth")  # a mid-epoch checkpoint, newest
    _damage(tmp_path / "checkpoint.pth")
    _damage(tmp_path / "checkpoint-1.pth")
    with caplog.at_level(logging.WARNING):
        path, ckpt = _load_resume(tmp_path / "checkpoint.pth", tmp_path, auto=True)
    assert path == tmp_path / "checkpoint-0.pth" and ckpt["iteration"] == 12
    assert load_checkpoint_file(tmp_path / "checkpoint.pth")["iteration"] == 12  # the latest again
    for name in ("checkpoint.pth", "checkpoint-1.pth"):  # each skipped one named, with the reason, and kept
        assert f"skipped checkpoint {tmp_path / name}: checkpoint {tmp_path / name} is truncated" in caplog.text
        assert (tmp_path / f"{name}.unreadable").stat().st_size > 0
    _damage(tmp_path / "checkpoint-0.pth")
    _damage(tmp_path / "checkpoint.pth")
    with pytest.raises(CheckpointError, match="truncated"):  # an explicit --resume PATH never falls back
        _load_resume(tmp_path / "checkpoint-0.pth", tmp_path, auto=False)
    assert _load_resume(tmp_path / "checkpoint-0.pth", tmp_path, auto=True) == (None, None)  # none loads: afresh
    assert f"no checkpoint in {tmp_path} loads: the run starts afresh" in caplog.text


def test_a_checkpoint_write_that_fails_names_the_file_and_keeps_the_previous_one(tmp_path):
    """The disk fills during a checkpoint write (a file-size limit in a child process stands in for it)."""
    path = tmp_path / "checkpoint.pth"
    atomic_save({"iteration": 1, "w": torch.zeros(8)}, path)

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))

    code = ("import sys, torch; from dropbench.pretrain.checkpoint import atomic_save\n"
            "atomic_save({'iteration': 2, 'w': torch.zeros(1 << 16)}, sys.argv[1])")
    res = subprocess.run([sys.executable, "-c", code, str(path)], preexec_fn=limit, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 1
    assert f"OSError: could not write {path} (RuntimeError: " in res.stderr and "left as it was" in res.stderr
    assert load_checkpoint_file(path)["iteration"] == 1
    assert not list(tmp_path.glob(".*.tmp"))  # no partial temporary file left behind
