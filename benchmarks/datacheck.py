"""Data preflight: is each data root the real data set, complete and readable, before any GPU time is spent?

:func:`check_dataset` checks one root in seconds to a minute (a full local copy of ImageNet included), without
reading the pixels of the whole set:

* the layout its reader expects, through the reader's own check (``pretrain.data.check_imagefolder``,
  ``finetune.datasets.coco.check_coco``, ``finetune.datasets.ade20k.pair_files``, ``finetune.datasets.cls``'s folder
  and file checks);
* the split sizes, counted from directory listings and annotation / meta files (CIFAR-100's pickled batches are
  unpickled, STL-10's binaries counted from their sizes), against the official releases' (:data:`OFFICIAL`);
* readable files: a few evenly spaced images per split are decoded (a corrupt one is named);
* a fingerprint of what the runs read (path, file count, total bytes), recorded with every result for provenance.

A folder written by dropbench's generators carries ``DROPBENCH_GENERATED.json`` and is reported as ``generated``.
A count that differs from the official one is an error under ``strict`` (the paper preset: a truncated download must
not become a table) and a warning otherwise; image folders have no official counts.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from dropbench.finetune.datasets.ade20k import SPLITS as ADE20K_SPLITS
from dropbench.finetune.datasets.ade20k import ADE20KDataError, pair_files
from dropbench.finetune.datasets.cls import check_cls_files, cls_format, find_cls_folder
from dropbench.finetune.datasets.coco import SPLITS as COCO_SPLITS
from dropbench.finetune.datasets.coco import CocoFormatError, check_coco
from dropbench.pretrain.data import DataLayoutError, check_imagefolder
from dropbench.pretrain.synth import MARKER
from PIL import Image
from tabulate import tabulate
from torchvision.datasets import CIFAR100, Flowers102
from torchvision.datasets.folder import IMG_EXTENSIONS

__all__ = ["DATASETS", "OFFICIAL", "STATUSES", "DataReport", "Fingerprint", "Official", "check_dataset", "check_roots",
           "render_reports"]

STATUSES = ("ok", "warning", "error", "missing")
KINDS = ("real", "generated", "missing")
GETTING_THE_DATA = "README.md, section 'Getting the data'"
_STL_RECORD = 3 * 96 * 96  # bytes of one STL-10 image in *_X.bin
_CIFAR_RECORD = 3 * 32 * 32


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


OFFICIAL: dict[str, Official] = {
    "imagenet": Official(
        {"train": 1_281_167, "val": 50_000}, 1000,
        "https://image-net.org/download.php (ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar; the val images sorted "
        "into one folder per class, e.g. with the PyTorch ImageNet example's valprep.sh)",
        "PATH/train/<wnid>/*.JPEG, PATH/val/<wnid>/*.JPEG"),
    "coco": Official(
        {"train2017": 118_287, "val2017": 5_000}, 80,
        "https://cocodataset.org/#download (2017 Train images, 2017 Val images, 2017 Train/Val annotations)",
        "PATH/train2017/*.jpg, PATH/val2017/*.jpg, PATH/annotations/instances_{train,val}2017.json"),
    "ade20k": Official(
        {"training": 20_210, "validation": 2_000}, None,
        "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip (the SceneParsing benchmark)",
        "PATH = ADEChallengeData2016/ with images/{training,validation}/*.jpg and annotations/{training,validation}/"
        "*.png"),
    "cifar100": Official(
        {"train": 50_000, "test": 10_000}, 100,
        "https://www.cs.toronto.edu/~kriz/cifar.html (cifar-100-python.tar.gz, the python version)",
        "PATH/cifar-100-python/{train,test,meta}"),
    "flowers102": Official(
        {"train+val": 2_040, "test": 6_149}, 102,
        "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ (102flowers.tgz, imagelabels.mat, setid.mat)",
        "PATH/flowers-102/{jpg/image_NNNNN.jpg, imagelabels.mat, setid.mat}"),
    "pets": Official(
        {"trainval": 3_680, "test": 3_669}, 37,
        "https://www.robots.ox.ac.uk/~vgg/data/pets/ (images.tar.gz, annotations.tar.gz)",
        "PATH/oxford-iiit-pet/{images/*.jpg, annotations/trainval.txt, annotations/test.txt}"),
    "stl10": Official(
        {"train": 5_000, "test": 8_000}, 10,
        "https://cs.stanford.edu/~acoates/stl10/ (stl10_binary.tar.gz)",
        "PATH/stl10_binary/{train,test}_{X,y}.bin, unlabeled_X.bin"),
    "food101": Official(
        {"train": 75_750, "test": 25_250}, 101,
        "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/ (food-101.tar.gz)",
        "PATH/food-101/{images/<class>/<id>.jpg, meta/train.json, meta/test.json}"),
}
DATASETS: tuple[str, ...] = (*OFFICIAL, "imagefolder")


@dataclass(frozen=True)
class Fingerprint:
    """The identity of what a run read: the data set folder, its number of files and their total size."""

    path: str
    files: int
    bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DataReport:
    """What the preflight found for one data set.

    Attributes:
        dataset: the data set's name (:data:`DATASETS`).
        root: the root given (None: none given).
        kind: ``real``, ``generated`` (dropbench's marker file) or ``missing`` (no root).
        status: ``ok``, ``warning`` (counts differ, not strict), ``error`` (bad layout, unreadable file, counts differ
            under ``strict``) or ``missing``.
        found: images per split and ``classes``, as counted.
        expected: the official counts compared against (None: not compared).
        problems: what is wrong, one message each, naming the file and the fix.
        fingerprint: path, files and bytes of what the runs read.
        seconds: how long the check took.
    """

    dataset: str
    root: str | None
    kind: str
    status: str
    found: dict[str, int] = field(default_factory=dict)
    expected: dict[str, int] | None = None
    problems: tuple[str, ...] = ()
    fingerprint: Fingerprint | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether runs may read this root (ok or warning)."""
        return self.status in ("ok", "warning")

    def provenance(self) -> dict:
        """What a ``result.json`` records about the data a run read."""
        return {"kind": self.kind, "root": self.root, "status": self.status,
                "fingerprint": self.fingerprint.to_dict() if self.fingerprint else None}


@dataclass
class _Inventory:
    """What a root holds, from listings and annotation files: folder read, counts, files read, a decoder of samples."""

    folder: Path
    splits: dict[str, int]
    classes: int | None
    files: int
    bytes: int
    decode: Callable[[int], None]


# ---------------------------------------------------------------------------------------------------------------------
# helpers


def _spread(items: Sequence, k: int) -> list:
    """``k`` evenly spaced items (all of them when there are fewer)."""
    if k <= 0 or not items:
        return []
    if len(items) <= k:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, k).round()]


def _decode_files(dataset: str, paths: Iterable[Path]) -> None:
    for path in paths:
        try:
            with Image.open(path) as img:
                img.load()
        except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, ...: all mean unreadable
            raise DataLayoutError(f"{dataset}: {path} cannot be decoded ({type(e).__name__}: {e}); it is truncated "
                                  f"or corrupt: restore it from the official archive") from None


def _sizes(folder: Path, suffixes: tuple[str, ...] | None = None) -> dict[str, int]:
    """File name -> size of the files of one folder (non-recursive), optionally only those with ``suffixes``."""
    out = {}
    with os.scandir(folder) as it:
        for e in it:
            if (suffixes is None or e.name.lower().endswith(suffixes)) and e.is_file():
                out[e.name] = e.stat().st_size
    return out


def _read(path: Path, dataset: str, reader: Callable[[Path], object]) -> object:
    """Read a meta / annotation file; any failure names the file."""
    try:
        return reader(path)
    except Exception as e:  # noqa: BLE001 - a reader's failure on a file is the answer, whatever its type
        raise DataLayoutError(f"{dataset}: {path} cannot be read ({type(e).__name__}: {e}); it is truncated or "
                              f"corrupt: restore it from the official archive") from None


def _missing(dataset: str, what: str, missing: list[str], fix: str) -> None:
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataLayoutError(f"{dataset}: {len(missing)} {what} listed in the annotation files are missing: {shown}; "
                              f"{fix}")


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat

    return loadmat(path)


# ---------------------------------------------------------------------------------------------------------------------
# one inventory per format


def _imagefolder(dataset: str, root: Path, splits: tuple[str, str]) -> _Inventory:
    fix = f"expected {OFFICIAL[dataset].layout}" if dataset in OFFICIAL else "expected PATH/{train,val}/<class>/*"
    classes = check_imagefolder(root, splits=splits, hint=fix)
    counts, n_bytes, firsts = {}, 0, {}
    for split in splits:
        n, first = 0, []
        for c in classes:
            names = sorted(_sizes(root / split / c, IMG_EXTENSIONS).items())
            n += len(names)
            n_bytes += sum(size for _, size in names)
            first.append(root / split / c / names[0][0])  # check_imagefolder: every class holds an image
        counts[split], firsts[split] = n, first

    def decode(k: int) -> None:
        for split in splits:
            _decode_files(dataset, _spread(firsts[split], k))  # the first image of evenly spaced classes

    return _Inventory(root, counts, len(classes), sum(counts.values()), n_bytes, decode)


def _imagenet(root: Path) -> _Inventory:
    return _imagefolder("imagenet", root, ("train", "val"))


def _user_imagefolder(root: Path) -> _Inventory:
    fmt = cls_format("imagefolder")
    return _imagefolder("imagefolder", root, (fmt.train_splits[0], fmt.test_split))


def _coco(root: Path) -> _Inventory:
    splits = check_coco(root)
    n_files = n_bytes = 0
    listed: dict[str, list[Path]] = {}
    for split in COCO_SPLITS:
        sizes = _sizes(root / split)
        n_files += len(sizes) + 1
        n_bytes += sum(sizes.values()) + splits[split].ann_file.stat().st_size
        listed[split] = [root / split / name for name in sorted(sizes)]

    def decode(k: int) -> None:
        for split in COCO_SPLITS:
            _decode_files("coco", _spread(listed[split], k))

    first = splits[COCO_SPLITS[0]]
    return _Inventory(root, {s: splits[s].num_images for s in COCO_SPLITS}, len(first.classes), n_files, n_bytes,
                      decode)


def _ade20k(root: Path) -> _Inventory:
    if not root.is_dir():
        raise ADE20KDataError(f"ADE20K root {root} does not exist or is not a folder; expected "
                              f"{OFFICIAL['ade20k'].layout}")
    pairs = {split: pair_files(root, split) for split in ADE20K_SPLITS}
    files = [p for split in ADE20K_SPLITS for pair in pairs[split] for p in pair]

    def decode(k: int) -> None:
        for split in ADE20K_SPLITS:
            _decode_files("ade20k", [p for pair in _spread(pairs[split], k) for p in pair])

    return _Inventory(root, {s: len(p) for s, p in pairs.items()}, None, len(files),
                      sum(p.stat().st_size for p in files), decode)


def _cls_folder(dataset: str, root: Path) -> Path:
    _, folder = find_cls_folder(dataset, root)
    check_cls_files(dataset, folder)
    return folder


def _cifar100(root: Path) -> _Inventory:
    folder = _cls_folder("cifar100", root)
    fmt = cls_format("cifar100")
    names = {"train": CIFAR100.train_list[0][0], "test": CIFAR100.test_list[0][0]}  # one pickled batch per split
    splits = (*fmt.train_splits, fmt.test_split)
    batches = {s: _read(folder / names[s], "cifar100", _unpickle) for s in splits}
    meta_path = folder / CIFAR100.meta["filename"]
    meta = _read(meta_path, "cifar100", _unpickle)
    counts = {}
    for s, batch in batches.items():
        path = folder / names[s]
        if not isinstance(batch, dict) or "fine_labels" not in batch or "data" not in batch:
            raise DataLayoutError(f"cifar100: {path} is not a CIFAR-100 batch (a dict with 'data' and 'fine_labels'); "
                                  f"expected {OFFICIAL['cifar100'].layout}")
        rows = np.asarray(batch["data"]).shape[0]
        if rows != len(batch["fine_labels"]):
            raise DataLayoutError(f"cifar100: {path} holds {rows} images but {len(batch['fine_labels'])} labels; "
                                  f"restore it from the official archive")
        counts[s] = rows
    key = CIFAR100.meta["key"]
    classes = len(meta[key]) if isinstance(meta, dict) and key in meta else None
    paths = [folder / names[s] for s in splits] + [meta_path]

    def decode(k: int) -> None:
        for s, batch in batches.items():
            data = np.asarray(batch["data"])
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _CIFAR_RECORD:
                raise DataLayoutError(f"cifar100: {folder / names[s]} holds images of shape {data.shape[1:]} "
                                      f"({data.dtype}), not rows of {_CIFAR_RECORD} uint8 (3 x 32 x 32); restore it "
                                      f"from the official archive")
            for i in _spread(range(len(data)), k):
                Image.fromarray(data[i].reshape(3, 32, 32).transpose(1, 2, 0))

    return _Inventory(folder, counts, classes, len(paths), sum(p.stat().st_size for p in paths), decode)


def _flowers102(root: Path) -> _Inventory:
    folder = _cls_folder("flowers102", root)
    fmt = cls_format("flowers102")
    label_file, setid_file = (folder / Flowers102._file_dict[k][0] for k in ("label", "setid"))
    labels = np.asarray(_read(label_file, "flowers102", _loadmat)["labels"]).reshape(-1)
    setid = _read(setid_file, "flowers102", _loadmat)
    ids: dict[str, list[int]] = {}
    for split in (*fmt.train_splits, fmt.test_split):
        key = Flowers102._splits_map[split]
        if key not in setid:
            raise DataLayoutError(f"flowers102: {setid_file} has no {key!r} (the {split} split); restore it from the "
                                  f"official archive")
        ids[split] = [int(i) for i in np.asarray(setid[key]).reshape(-1)]
    groups = {"+".join(fmt.train_splits): [i for s in fmt.train_splits for i in ids[s]],
              fmt.test_split: ids[fmt.test_split]}
    sizes = _sizes(folder / "jpg")
    name = "image_{:05d}.jpg".format  # torchvision's Flowers102 file names
    listed = [i for group in groups.values() for i in group]
    _missing("flowers102", "images", [str(folder / "jpg" / name(i)) for i in listed if name(i) not in sizes],
             f"expected {OFFICIAL['flowers102'].layout}")
    bad = [i for i in listed if not 1 <= i <= len(labels)]
    if bad:
        raise DataLayoutError(f"flowers102: {setid_file} lists image ids {bad[:5]} that {label_file} has no label for "
                              f"({len(labels)} labels); restore both from the official archive")

    def decode(k: int) -> None:
        for group in groups.values():
            _decode_files("flowers102", [folder / "jpg" / name(i) for i in _spread(sorted(group), k)])

    n_bytes = sum(sizes[name(i)] for i in listed) + label_file.stat().st_size + setid_file.stat().st_size
    classes = len({int(labels[i - 1]) for i in listed})
    return _Inventory(folder, {s: len(g) for s, g in groups.items()}, classes, len(listed) + 2, n_bytes, decode)


def _pets(root: Path) -> _Inventory:
    folder = _cls_folder("pets", root)
    fmt = cls_format("pets")
    splits = (*fmt.train_splits, fmt.test_split)
    rows: dict[str, list[tuple[str, int]]] = {}
    for split in splits:
        path = folder / "annotations" / f"{split}.txt"
        rows[split] = []
        for i, line in enumerate(path.read_text().splitlines(), 1):  # parsed as torchvision's OxfordIIITPet does
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4 or not parts[1].isdigit():
                raise DataLayoutError(f"pets: {path} line {i} {line!r} is not 'Image CLASS-ID SPECIES BREED-ID'; "
                                      f"restore it from the official archive")
            rows[split].append((parts[0], int(parts[1])))
    sizes = _sizes(folder / "images")
    listed = [f"{image}.jpg" for split in splits for image, _ in rows[split]]
    _missing("pets", "images", [str(folder / "images" / n) for n in listed if n not in sizes],
             f"expected {OFFICIAL['pets'].layout}")

    def decode(k: int) -> None:
        for split in splits:
            _decode_files("pets", [folder / "images" / f"{image}.jpg" for image, _ in _spread(rows[split], k)])

    ann = [folder / "annotations" / f"{s}.txt" for s in splits]
    return _Inventory(folder, {s: len(r) for s, r in rows.items()}, len({c for r in rows.values() for _, c in r}),
                      len(listed) + len(ann), sum(sizes[n] for n in listed) + sum(p.stat().st_size for p in ann),
                      decode)


def _stl10(root: Path) -> _Inventory:
    folder = _cls_folder("stl10", root)
    fmt = cls_format("stl10")
    splits = (*fmt.train_splits, fmt.test_split)
    counts, labels, n_bytes = {}, set(), 0
    for split in splits:
        x, y = folder / f"{split}_X.bin", folder / f"{split}_y.bin"  # as torchvision's STL10 names them
        size = x.stat().st_size
        if size % _STL_RECORD:
            raise DataLayoutError(f"stl10: {x} is {size} bytes, not a whole number of {_STL_RECORD}-byte images "
                                  f"(3 x 96 x 96): truncated? Restore it from the official archive")
        counts[split] = size // _STL_RECORD
        y_bytes = y.read_bytes()
        if len(y_bytes) != counts[split]:
            raise DataLayoutError(f"stl10: {x} holds {counts[split]} images but {y} {len(y_bytes)} labels; restore "
                                  f"them from the official archive")
        found = set(np.frombuffer(y_bytes, np.uint8).tolist())
        if not found <= set(range(1, 11)):
            raise DataLayoutError(f"stl10: {y} holds labels {sorted(found - set(range(1, 11)))[:5]} outside 1..10; "
                                  f"restore it from the official archive")
        labels |= found
        n_bytes += size + len(y_bytes)

    def decode(k: int) -> None:
        for split in splits:
            x = folder / f"{split}_X.bin"
            images = np.memmap(x, np.uint8, "r", shape=(counts[split], 3, 96, 96))
            for i in _spread(range(counts[split]), k):
                Image.fromarray(np.ascontiguousarray(images[i].transpose(2, 1, 0)))

    return _Inventory(folder, counts, len(labels), 2 * len(splits), n_bytes, decode)


def _food101(root: Path) -> _Inventory:
    folder = _cls_folder("food101", root)
    fmt = cls_format("food101")
    splits = (*fmt.train_splits, fmt.test_split)
    meta = {s: _read(folder / "meta" / f"{s}.json", "food101", lambda p: json.loads(p.read_text())) for s in splits}
    listed: dict[str, list[str]] = {}
    for split, table in meta.items():
        if not isinstance(table, dict) or not all(isinstance(v, list) for v in table.values()):
            raise DataLayoutError(f"food101: {folder / 'meta' / f'{split}.json'} is not {{class: [image, ...]}}; "
                                  f"restore it from the official archive")
        listed[split] = [f"{rel}.jpg" for images in table.values() for rel in images]  # torchvision's paths
    sizes: dict[str, int] = {}
    for c in sorted({rel.split("/")[0] for names in listed.values() for rel in names}):
        if (folder / "images" / c).is_dir():
            sizes.update({f"{c}/{n}": s for n, s in _sizes(folder / "images" / c).items()})
    every = [rel for names in listed.values() for rel in names]
    _missing("food101", "images", [str(folder / "images" / r) for r in every if r not in sizes],
             f"expected {OFFICIAL['food101'].layout}")

    def decode(k: int) -> None:
        for split in splits:
            _decode_files("food101", [folder / "images" / r for r in _spread(listed[split], k)])

    meta_files = [folder / "meta" / f"{s}.json" for s in splits]
    classes = len({c for table in meta.values() for c in table})
    return _Inventory(folder, {s: len(v) for s, v in listed.items()}, classes, len(every) + len(meta_files),
                      sum(sizes[r] for r in every) + sum(p.stat().st_size for p in meta_files), decode)


_INVENTORIES: dict[str, Callable[[Path], _Inventory]] = {
    "imagenet": _imagenet,
    "coco": _coco,
    "ade20k": _ade20k,
    "cifar100": _cifar100,
    "flowers102": _flowers102,
    "pets": _pets,
    "stl10": _stl10,
    "food101": _food101,
    "imagefolder": _user_imagefolder,
}
_LAYOUT_ERRORS = (DataLayoutError, CocoFormatError, ADE20KDataError)


def _is_generated(dataset: str, root: Path) -> bool:
    if (root / MARKER).is_file():
        return True
    if dataset in _INVENTORIES and dataset not in ("imagenet", "coco", "ade20k"):
        try:
            return (find_cls_folder(dataset, root)[1] / MARKER).is_file()
        except DataLayoutError:
            return False
    return False


def _count_problems(dataset: str, inv: _Inventory, expected: Official) -> list[str]:
    problems = []
    for split, n in expected.splits.items():
        found = inv.splits.get(split)
        if found != n:
            problems.append(f"{dataset}: the {split} split holds {found:,} images, the official release {n:,}: a "
                            f"truncated or partial copy? Get the full release ({GETTING_THE_DATA})")
    if expected.classes is not None and inv.classes != expected.classes:
        problems.append(f"{dataset}: {inv.classes} classes found, the official release has {expected.classes} "
                        f"({GETTING_THE_DATA})")
    return problems


def check_dataset(dataset: str, root: str | os.PathLike | None, *, compare: bool = True, strict: bool = False,
                  sample: int = 4) -> DataReport:
    """Check one data set's root: layout, split sizes against the official release, a decoded sample, fingerprint.

    Args:
        dataset: a name of :data:`DATASETS`.
        root: the root as ``--data-root`` gives it (None: no root).
        compare: compare the counts with :data:`OFFICIAL` (never for ``imagefolder``, which has no official counts).
        strict: a count that differs is an error (else a warning).
        sample: images decoded per split (0: counts and layout only, no pixels read).

    Returns:
        The :class:`DataReport`; a bad root is reported, not raised.
    """
    if dataset not in _INVENTORIES:
        raise ValueError(f"unknown data set {dataset!r}; choose one of: {', '.join(DATASETS)}")
    official = OFFICIAL.get(dataset) if compare else None
    expected = dict(official.splits, **({"classes": official.classes} if official.classes else {})) if official \
        else None
    if root is None:
        return DataReport(dataset, None, "missing", "missing", expected=expected,
                          problems=(f"{dataset}: no data root; add --data-root {dataset}=PATH ({GETTING_THE_DATA})",))
    start = time.perf_counter()
    path = Path(root).expanduser()
    kind = "generated" if _is_generated(dataset, path) else "real"
    try:
        inv = _INVENTORIES[dataset](path)
    except _LAYOUT_ERRORS as e:
        return DataReport(dataset, str(root), kind, "error", expected=expected, problems=(str(e),),
                          seconds=time.perf_counter() - start)
    found = dict(inv.splits, **({"classes": inv.classes} if inv.classes is not None else {}))
    problems = _count_problems(dataset, inv, official) if official else []
    status = ("error" if strict else "warning") if problems else "ok"
    try:
        if sample > 0:
            inv.decode(sample)
    except _LAYOUT_ERRORS as e:
        problems.append(str(e))
        status = "error"
    fingerprint = Fingerprint(str(inv.folder.resolve()), inv.files, inv.bytes)
    return DataReport(dataset, str(root), kind, status, found, expected, tuple(problems), fingerprint,
                      time.perf_counter() - start)


def check_roots(roots: Mapping[str, str | os.PathLike | None], *, compare: bool | Mapping[str, bool] = True,
                strict: bool | Mapping[str, bool] = False, sample: int = 4) -> list[DataReport]:
    """:func:`check_dataset` for each ``{data set: root}``; ``compare`` and ``strict`` may be given per data set."""
    def pick(v: bool | Mapping[str, bool], name: str) -> bool:
        return bool(v.get(name, False)) if isinstance(v, Mapping) else bool(v)

    return [check_dataset(name, root, compare=pick(compare, name), strict=pick(strict, name), sample=sample)
            for name, root in roots.items()]


def _counts(counts: Mapping[str, int] | None) -> str:
    if not counts:
        return "–"
    return ", ".join(f"{n:,} classes" if k == "classes" else f"{k} {n:,}" for k, n in counts.items())


def render_reports(reports: Sequence[DataReport]) -> str:
    """The preflight as a text table (data set, root, kind, found, expected, status), then each problem."""
    rows = [(r.dataset, r.root or "–", r.kind, _counts(r.found), _counts(r.expected), r.status) for r in reports]
    text = tabulate(rows, headers=("data set", "root", "kind", "found", "expected", "status"), tablefmt="simple",
                    disable_numparse=True)
    problems = [f"  {r.status}: {p}" for r in reports for p in r.problems]
    return text + ("\n" + "\n".join(problems) if problems else "") + "\n"
