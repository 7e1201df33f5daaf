"""What a data root holds, counted from listings: the pieces every data set's preflight check is made of.

The data preflight (:mod:`benchmarks.datacheck`) checks each data set through its :class:`DataCheck`: the official
release it is compared against (:class:`Official`: split sizes, classes, source, layout) and an inventory function
that counts a root's splits from directory listings and annotation / meta files, without reading the pixels of the
whole set (:class:`Inventory`). Each data set's check lives in the module that reads that data set (ImageNet in
:mod:`pretrain.data`, the downstream sets in ``finetune.datasets``) and the task registry collects them
(``finetune.tasks.data_checks``); this module holds what they share, and imports nothing heavier than PIL.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from dropbench.pretrain.synth import MARKER
from PIL import Image

__all__ = ["GENERIC", "GETTING_THE_DATA", "DataCheck", "DataLayoutError", "Inventory", "Official", "check_listed",
           "decode_files", "file_sizes", "fingerprint_files", "marked", "read_meta", "spread"]

GETTING_THE_DATA = "README.md, section 'Getting the data'"


class DataLayoutError(ValueError):
    """A data root that does not have the layout a reader expects; the message names what is wrong and the fix."""


@dataclass(frozen=True)
class Official:
    """An official release: images per split (under the transfer protocol's split names), classes, where to get it.

    Attributes:
        splits: split -> number of images (``train+val`` where the protocol trains on two of the release's splits).
        classes: number of classes (None: not counted from listings, e.g. ADE20K's, which live in the label maps).
        source: where the release is downloaded from (and which files).
        layout: what ``--data-root NAME=PATH`` must point at.
    """

    splits: dict[str, int]
    classes: int | None
    source: str
    layout: str


@dataclass
class Inventory:
    """What a root holds, from listings and annotation files: folder read, counts, files read, a decoder of samples.

    Attributes:
        folder: the data set folder the runs read (fingerprinted).
        splits: split -> images counted; ``classes``: classes counted (None: not counted).
        files, bytes: number and total size of the files the runs read.
        decode: ``decode(k)`` decodes ``k`` evenly spaced images per split, raising on a corrupt one (named).
    """

    folder: Path
    splits: dict[str, int]
    classes: int | None
    files: int
    bytes: int
    decode: Callable[[int], None]


def marked(root: Path) -> bool:
    """Whether ``root`` holds the marker file of dropbench's generators."""
    return (root / MARKER).is_file()


@dataclass(frozen=True)
class DataCheck:
    """How the data preflight checks one data set.

    Attributes:
        inventory: root -> :class:`Inventory`; a bad layout or file raises :class:`DataLayoutError` or one of
            ``errors``, naming the file and the fix.
        official: the official release its counts are compared with (None: none, e.g. a user's image folder).
        errors: the exceptions its reader raises for bad data besides :class:`DataLayoutError` (reported, not raised).
        generated: root -> whether dropbench's generator wrote it (its marker file).
    """

    inventory: Callable[[Path], Inventory]
    official: Official | None = None
    errors: tuple[type[Exception], ...] = ()
    generated: Callable[[Path], bool] = marked


def spread(items: Sequence, k: int) -> list:
    """``k`` evenly spaced items (all of them when there are fewer)."""
    if k <= 0 or not items:
        return []
    if len(items) <= k:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, k).round()]


def decode_files(dataset: str, paths: Iterable[Path]) -> None:
    """Decode each image; a file that does not decode raises :class:`DataLayoutError` naming it."""
    for path in paths:
        try:
            with Image.open(path) as img:
                img.load()
        except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, ...: all mean unreadable
            raise DataLayoutError(f"{dataset}: {path} cannot be decoded ({type(e).__name__}: {e}); it is truncated "
                                  f"or corrupt: restore it from the official archive") from None


def file_sizes(folder: Path, suffixes: tuple[str, ...] | None = None) -> dict[str, int]:
    """File name -> size of the files of one folder (non-recursive), optionally only those with ``suffixes``."""
    out = {}
    with os.scandir(folder) as it:
        for e in it:
            if (suffixes is None or e.name.lower().endswith(suffixes)) and e.is_file():
                out[e.name] = e.stat().st_size
    return out


def read_meta(path: Path, dataset: str, reader: Callable[[Path], object]) -> object:
    """Read a meta / annotation file; any failure names the file."""
    try:
        return reader(path)
    except Exception as e:  # noqa: BLE001 - a reader's failure on a file is the answer, whatever its type
        raise DataLayoutError(f"{dataset}: {path} cannot be read ({type(e).__name__}: {e}); it is truncated or "
                              f"corrupt: restore it from the official archive") from None


def check_listed(dataset: str, what: str, missing: list[str], fix: str) -> None:
    """Raise :class:`DataLayoutError` naming the first few of ``missing`` files that annotation files list."""
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataLayoutError(f"{dataset}: {len(missing)} {what} listed in the annotation files are missing: {shown}; "
                              f"{fix}")


def fingerprint_files(root: Path) -> Inventory:
    """A data set the preflight has no reader's knowledge of: every file under its root fingerprinted, nothing
    counted or decoded (its task's own reader checks it when the run starts)."""
    if not root.is_dir():
        raise DataLayoutError(f"data root {root} does not exist or is not a folder")
    files = [Path(d) / f for d, _, names in os.walk(root) for f in names]
    return Inventory(root, {}, None, len(files), sum(f.stat().st_size for f in files), lambda k: None)


def _marked_here_or_below(root: Path) -> bool:
    return marked(root) or (root.is_dir() and any(root.glob(f"*/{MARKER}")))


# the check of a data set that a registered task reads but whose module declares no check
GENERIC = DataCheck(fingerprint_files, generated=_marked_here_or_below)
