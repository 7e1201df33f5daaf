"""Checkpoint files: atomic writes, and loading as data (torch's weights-only unpickler) with a short allow-list.

A checkpoint is data, not code. Since torch 2.6 ``torch.load`` uses the weights-only unpickler by default; the
paper's released checkpoints pickle an ``argparse.Namespace`` and mmengine's pickle numpy scalars and its
``HistoryBuffer``, which that unpickler refuses. :func:`load_checkpoint_file` allow-lists exactly those plain types
and nothing else: a file that needs any other global to load is refused with :class:`CheckpointError`, never loaded
with weights-only switched off.
"""

from __future__ import annotations

import argparse
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dropbench.pretrain.io import atomic_write, write_error

__all__ = ["CheckpointError", "atomic_save", "load_checkpoint_file", "safe_globals", "write_error"]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, truncated, not a checkpoint, unsafe, or of the wrong model."""


def safe_globals() -> list[Any]:
    """The non-tensor types that real checkpoints carry and the weights-only unpickler may rebuild.

    ``argparse.Namespace`` (the paper's ``args``), numpy arrays, dtypes and scalars (mmengine's message hub),
    and mmengine's ``HistoryBuffer`` (imported only if mmengine is installed).
    """
    multiarray = np._core.multiarray
    allowed: list[Any] = [argparse.Namespace, np.ndarray, np.dtype, multiarray.scalar, multiarray._reconstruct]
    allowed += [type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32", "int8", "uint8", "bool")]
    allowed.append(getattr)  # numpy scalars pickle through builtins.getattr
    try:
        from mmengine.logging.history_buffer import HistoryBuffer

        allowed.append(HistoryBuffer)
    except ImportError:  # pragma: no cover - mmengine is a dependency, but pretraining does not need it
        pass
    return allowed


def load_checkpoint_file(path: str | os.PathLike, map_location: str | torch.device = "cpu", mmap: bool = False) -> Any:
    """Load a checkpoint file as data (``mmap``: tensors mapped from the file, read only where touched: a cheap read
    of a checkpoint's metadata).

    Raises:
        CheckpointError: the file is missing, empty, truncated, not a torch checkpoint, or needs code to load.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (check the path)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (an interrupted copy or save?)")
    try:
        with torch.serialization.safe_globals(safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "Weights only load failed" in msg or "Unsupported global" in msg:
            raise CheckpointError(
                f"checkpoint {path} needs arbitrary code to load (it pickles a type outside the allow-list of plain "
                f"checkpoint types), so it is refused. If you trust the file, re-save its state dict with torch.save"
                f"(torch.load(path, weights_only=False)['model']) in a separate session. Detail: {msg.splitlines()[0]}"
            ) from None
        raise CheckpointError(f"checkpoint {path} is not a readable torch checkpoint: {msg.splitlines()[0]}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, KeyError, IndexError, ValueError, TypeError) as e:
        raise CheckpointError(
            f"checkpoint {path} is truncated or not a torch checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from None


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename: readers never see a half-written file.

    Raises:
        OSError: the write failed (disk full, file-size limit, permissions); the message names ``path``, and the
            previous file at ``path`` is left as it was.
    """
    return atomic_write(path, lambda f: torch.save(obj, f), binary=True, fsync=True, label="checkpoint")
