"""atomic_write / atomic_link: the new content or the old one, never half of one, and no temporary file left."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import torch
from dropbench.pretrain.checkpoint import atomic_save, load_checkpoint_file
from dropbench.pretrain.io import atomic_link, atomic_write


def test_text_bytes_and_writers(tmp_path):
    assert atomic_write(tmp_path / "a" / "t.txt", "héllo\n") == tmp_path / "a" / "t.txt"  # folder made
    assert (tmp_path / "a" / "t.txt").read_text() == "héllo\n"
    atomic_write(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    atomic_write(tmp_path / "c.json", lambda f: json.dump({"x": 1}, f))
    assert json.loads((tmp_path / "c.json").read_text()) == {"x": 1}
    atomic_write(tmp_path / "d.csv", lambda f: pd.DataFrame({"a": [1, 2]}).to_csv(f, index=False))
    assert (tmp_path / "d.csv").read_text() == "a\n1\n2\n"
    atomic_save({"w": torch.arange(3)}, tmp_path / "e.pth")  # binary writer, fsync
    assert torch.equal(load_checkpoint_file(tmp_path / "e.pth")["w"], torch.arange(3))
    atomic_write(tmp_path / "a" / "t.txt", "replaced")
    assert (tmp_path / "a" / "t.txt").read_text() == "replaced"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["b.bin", "c.json", "d.csv", "e.pth",
                                                                         "t.txt"]


@pytest.mark.parametrize("binary", [False, True])
def test_a_failing_writer_leaves_the_old_file_and_no_temporary_file(tmp_path, binary):
    path = tmp_path / "result.json"
    path.write_text("old")

    def writer(f):
        f.write(b"half of the new" if binary else "half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, writer, binary=binary, fsync=True)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["result.json"]


def test_a_failing_save_leaves_the_old_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pth"
    atomic_save({"step": torch.tensor(1)}, path)
    with pytest.raises(Exception):  # noqa: B017 - what torch raises for an unpicklable object is its own business
        atomic_save({"step": torch.tensor(2), "bad": lambda: None}, path)
    assert int(load_checkpoint_file(path)["step"]) == 1
    assert os.listdir(tmp_path) == ["checkpoint.pth"]


def test_link_replaces_the_target_with_the_source(tmp_path):
    src, dst = tmp_path / "checkpoint.pth", tmp_path / "checkpoint-0.pth"
    src.write_bytes(b"new")
    dst.write_bytes(b"old")
    atomic_link(src, dst)
    assert dst.read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == ["checkpoint-0.pth", "checkpoint.pth"]
    with pytest.raises(FileNotFoundError):
        atomic_link(tmp_path / "missing.pth", dst)
    assert dst.read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == ["checkpoint-0.pth", "checkpoint.pth"]
