"""Classification transfer sets in their own on-disk formats, read through torchvision's classes (never downloaded).

=============  ===========================================================================  ==============  ========
``--dataset``  layout under ROOT (as the distribution's archives extract)                   train           test
=============  ===========================================================================  ==============  ========
cifar100       ``cifar-100-python/{train,test,meta}`` (pickled batches)                     train           test
flowers102     ``flowers-102/{jpg/image_NNNNN.jpg,imagelabels.mat,setid.mat}``              train + val     test
pets           ``oxford-iiit-pet/{images/*.jpg,annotations/{trainval,test}.txt}``           trainval        test
stl10          ``stl10_binary/{train,test}_{X,y}.bin, unlabeled_X.bin, class_names.txt``    train (5,000)   test
food101        ``food-101/{images/<class>/<id>.jpg,meta/{train,test}.json}``                train           test
imagefolder    ``train/<class>/*``, ``val/<class>/*``                                       train           val
=============  ===========================================================================  ==============  ========

ROOT is either the folder torchvision calls ``root`` (the one *holding* ``cifar-100-python/``, ``flowers-102/``, ...)
or that data set folder itself (``.../food-101``); torchvision joins the folder name itself, so the data set folder
must keep its distribution name. STL-10's unlabeled images are never used.

torchvision checks the md5 of the official CIFAR-100, STL-10 and Flowers-102 files. That check is kept for real data;
it is skipped, with a warning, only for a data set folder that :func:`write_synth_cls` marked as generated (its
``DROPBENCH_GENERATED.json``). Anything missing, truncated or corrupt raises :class:`~pretrain.data.DataLayoutError`
naming the file and the expected layout (image files are checked for presence, not decoded, when a set is opened).

:data:`DATA_CHECKS` is what the data preflight knows of each set: its official release (split sizes under the transfer
protocol, classes, source, layout) and a count of a root from its listings and meta files.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from dropbench.pretrain.data import DataLayoutError, check_imagefolder, imagefolder_inventory
from dropbench.pretrain.inventory import (
    DataCheck,
    Inventory,
    Official,
    check_listed,
    decode_files,
    file_sizes,
    marked,
    read_meta,
    spread,
)
from dropbench.pretrain.synth import (
    MARKER,
    SHAPES,
    TEXTURE_SIDE,
    Shape,
    class_look,
    draw_shape,
    muted_background,
    synth_marker,
    vivid_color,
)
from PIL import Image
from torch.utils.data import ConcatDataset, Dataset
from torchvision.datasets import CIFAR100, STL10, Flowers102, Food101, ImageFolder, OxfordIIITPet
from torchvision.datasets.utils import calculate_md5

__all__ = [
    "CLS_DATASETS",
    "DATA_CHECKS",
    "ClsData",
    "ClsFormat",
    "DataLayoutError",
    "check_cls_files",
    "cls_format",
    "find_cls_folder",
    "is_generated",
    "load_cls_data",
    "read_cls_split",
    "split_labels",
    "write_synth_cls",
]

log = logging.getLogger(__name__)
_WARNED: set[Path] = set()  # generated folders whose skipped md5 check was already logged


# ---------------------------------------------------------------------------------------------------------------------
# formats


class _GeneratedCIFAR100(CIFAR100):
    """torchvision's CIFAR100 with the official files' md5 left out (existence still checked): generated roots only."""

    train_list = [[name, None] for name, _ in CIFAR100.train_list]
    test_list = [[name, None] for name, _ in CIFAR100.test_list]
    meta = dict(CIFAR100.meta, md5=None)


class _GeneratedFlowers102(Flowers102):
    """torchvision's Flowers102 with the official .mat files' md5 left out: generated roots only."""

    _file_dict = {key: (name, None) for key, (name, _) in Flowers102._file_dict.items()}


class _GeneratedSTL10(STL10):
    """torchvision's STL10 with the official binaries' md5 left out: generated roots only."""

    train_list = [[name, None] for name, _ in STL10.train_list]
    test_list = [[name, None] for name, _ in STL10.test_list]


@dataclass(frozen=True)
class ClsFormat:
    """One classification data set's format.

    Attributes:
        name: the ``--dataset`` name.
        folder: the folder torchvision expects under its ``root`` (None: ROOT itself, for image folders).
        layout: the expected layout, for error messages.
        required: files and folders (relative to the data set folder) that must exist; a trailing ``/`` marks a folder.
        md5: official checksums torchvision verifies (file -> md5), read from the torchvision class.
        train_splits: torchvision splits concatenated for training (the data protocol of the transfer tables).
        test_split: the split evaluated.
        official: the official release (split sizes under the transfer protocol, classes, source, the layout the
            data preflight names), which the data preflight compares a root with (None: none, image folders).
    """

    name: str
    folder: str | None
    layout: str
    required: tuple[str, ...]
    md5: dict[str, str]
    train_splits: tuple[str, ...]
    test_split: str
    official: Official | None = None


_FORMATS: dict[str, ClsFormat] = {
    f.name: f
    for f in (
        ClsFormat("cifar100", CIFAR100.base_folder,
                  "ROOT/cifar-100-python/{train,test,meta} (the python version, cifar-100-python.tar.gz)",
                  ("train", "test", "meta"),
                  {**dict(CIFAR100.train_list + CIFAR100.test_list), CIFAR100.meta["filename"]: CIFAR100.meta["md5"]},
                  ("train",), "test",
                  official=Official(
                      {"train": 50_000, "test": 10_000}, 100,
                      "https://www.cs.toronto.edu/~kriz/cifar.html (cifar-100-python.tar.gz, the python version)",
                      "PATH/cifar-100-python/{train,test,meta}")),
        ClsFormat("flowers102", "flowers-102",
                  "ROOT/flowers-102/{jpg/image_00001.jpg ..., imagelabels.mat, setid.mat} (102flowers.tgz extracted "
                  "into flowers-102/, beside the two .mat files)",
                  ("jpg/", "imagelabels.mat", "setid.mat"),
                  {name: md5 for key, (name, md5) in Flowers102._file_dict.items() if key != "image"},
                  ("train", "val"), "test",
                  official=Official(
                      {"train+val": 2_040, "test": 6_149}, 102,
                      "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ (102flowers.tgz, imagelabels.mat, setid.mat)",
                      "PATH/flowers-102/{jpg/image_NNNNN.jpg, imagelabels.mat, setid.mat}")),
        ClsFormat("pets", "oxford-iiit-pet",
                  "ROOT/oxford-iiit-pet/{images/<Breed>_<n>.jpg, annotations/trainval.txt, annotations/test.txt} "
                  "(images.tar.gz and annotations.tar.gz extracted into oxford-iiit-pet/)",
                  ("images/", "annotations/trainval.txt", "annotations/test.txt"), {}, ("trainval",), "test",
                  official=Official(
                      {"trainval": 3_680, "test": 3_669}, 37,
                      "https://www.robots.ox.ac.uk/~vgg/data/pets/ (images.tar.gz, annotations.tar.gz)",
                      "PATH/oxford-iiit-pet/{images/*.jpg, annotations/trainval.txt, annotations/test.txt}")),
        ClsFormat("stl10", STL10.base_folder,
                  "ROOT/stl10_binary/{train_X.bin, train_y.bin, test_X.bin, test_y.bin, unlabeled_X.bin, "
                  "class_names.txt} (stl10_binary.tar.gz)",
                  tuple(name for name, _ in STL10.train_list + STL10.test_list),
                  dict(STL10.train_list + STL10.test_list), ("train",), "test",
                  official=Official(
                      {"train": 5_000, "test": 8_000}, 10,
                      "https://cs.stanford.edu/~acoates/stl10/ (stl10_binary.tar.gz)",
                      "PATH/stl10_binary/{train,test}_{X,y}.bin, unlabeled_X.bin")),
        ClsFormat("food101", "food-101",
                  "ROOT/food-101/{images/<class>/<id>.jpg, meta/train.json, meta/test.json} (food-101.tar.gz)",
                  ("images/", "meta/train.json", "meta/test.json"), {}, ("train",), "test",
                  official=Official(
                      {"train": 75_750, "test": 25_250}, 101,
                      "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/ (food-101.tar.gz)",
                      "PATH/food-101/{images/<class>/<id>.jpg, meta/train.json, meta/test.json}")),
        ClsFormat("imagefolder", None, "ROOT/train/<class>/<images>, ROOT/val/<class>/<images>",
                  ("train/", "val/"), {}, ("train",), "val"),
    )
}
CLS_DATASETS: tuple[str, ...] = tuple(_FORMATS)


def _format(dataset: str) -> ClsFormat:
    try:
        return _FORMATS[dataset]
    except KeyError:
        raise ValueError(f"unknown classification data set {dataset!r}; choose one of: {', '.join(_FORMATS)}") from None


def cls_format(dataset: str) -> ClsFormat:
    """A classification data set's :class:`ClsFormat`; raises ValueError naming the choices for an unknown name."""
    return _format(dataset)


def is_generated(folder: str | Path) -> bool:
    """Whether a data set folder was written by :func:`write_synth_cls` (it holds the generator's marker file)."""
    return (Path(folder) / MARKER).is_file()


def find_cls_folder(dataset: str, root: str | Path) -> tuple[Path, Path]:
    """Resolve ``--data`` to (torchvision ``root``, data set folder).

    Raises:
        DataLayoutError: neither ROOT nor ROOT/<folder> is the data set folder; the message gives the layout.
    """
    fmt, root = _format(dataset), Path(root)
    if not root.is_dir():
        raise DataLayoutError(f"data root {root} does not exist; expected {fmt.layout}")
    if fmt.folder is None:
        return root, root
    if (root / fmt.folder).is_dir():
        return root, root / fmt.folder
    if root.name == fmt.folder:
        return root.parent, root
    holds_files = all((root / r.rstrip("/")).exists() for r in fmt.required)
    if holds_files:
        raise DataLayoutError(f"{root} holds {dataset} files, but torchvision reads them from a folder named "
                              f"{fmt.folder!r}: rename it (or link it) to {root.parent / fmt.folder}")
    raise DataLayoutError(f"no {fmt.folder}/ in {root}: expected {fmt.layout}; pass --data ROOT or "
                          f"ROOT/{fmt.folder} (`dropbench data synth-cls --dataset {dataset}` makes a small one)")


def check_cls_files(dataset: str, folder: str | Path) -> None:
    """Check that a data set folder holds its format's files and folders, the files non-empty (nothing is read).

    Raises:
        DataLayoutError: a missing or empty file or a missing folder, named with the expected layout.
    """
    _check_files(_format(dataset), Path(folder))


def _check_files(fmt: ClsFormat, folder: Path) -> None:
    for rel in fmt.required:
        path = folder / rel.rstrip("/")
        ok = path.is_dir() if rel.endswith("/") else path.is_file()
        if not ok:
            what = "folder" if rel.endswith("/") else "file"
            raise DataLayoutError(f"{fmt.name}: {what} {path} is missing; expected {fmt.layout}")
        if not rel.endswith("/") and path.stat().st_size == 0:
            raise DataLayoutError(f"{fmt.name}: {path} is empty (an interrupted copy?); expected {fmt.layout}")


def _probe(path: Path) -> None:
    """Read one metadata file the way its reader does; raises on a truncated or corrupt file."""
    if path.suffix == ".mat":
        from scipy.io import loadmat

        loadmat(path)
    elif path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".bin":
        size = path.stat().st_size
        unit = 1 if path.stem.endswith("_y") else 3 * 96 * 96
        if size % unit:
            raise ValueError(f"{size} bytes is not a whole number of {unit}-byte records")
    elif path.suffix == ".txt":
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip() and path.parent.name == "annotations" and len(line.split()) != 4:
                raise ValueError(f"line {i} {line!r} is not 'Image CLASS-ID SPECIES BREED-ID'")
    elif path.suffix == "":
        with open(path, "rb") as f:
            pickle.load(f, encoding="latin1")


def _diagnose(fmt: ClsFormat, folder: Path, generated: bool, error: Exception) -> DataLayoutError:
    """Turn a reader's failure into an error naming the bad file."""
    if not generated:
        for name, md5 in fmt.md5.items():
            found = calculate_md5(folder / name)
            if found != md5:
                return DataLayoutError(
                    f"{fmt.name}: {folder / name} is corrupt or not the official file (md5 {found}, expected {md5}); "
                    f"restore it from the official archive. Expected {fmt.layout}")
    files = [folder / r for r in fmt.required if not r.endswith("/")]
    if fmt.name == "stl10":
        files = [folder / n for n in ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin")]
    for path in files:
        try:
            _probe(path)
        except Exception as e:  # any failure to read the file is the answer
            return DataLayoutError(f"{fmt.name}: {path} is truncated or corrupt ({type(e).__name__}: {e}); "
                                   f"expected {fmt.layout}")
    return DataLayoutError(f"{fmt.name}: cannot read {folder} ({type(error).__name__}: {error}); "
                           f"expected {fmt.layout}")


def _construct(fmt: ClsFormat, root: Path, folder: Path, split: str, generated: bool) -> Dataset:
    if fmt.name == "cifar100":
        cls = _GeneratedCIFAR100 if generated else CIFAR100
        return cls(str(root), train=split == "train", download=False)
    if fmt.name == "flowers102":
        return (_GeneratedFlowers102 if generated else Flowers102)(str(root), split=split, download=False)
    if fmt.name == "pets":
        return OxfordIIITPet(str(root), split=split, target_types="category", download=False)
    if fmt.name == "stl10":
        return (_GeneratedSTL10 if generated else STL10)(str(root), split=split, download=False)
    if fmt.name == "food101":
        return Food101(str(root), split=split, download=False)
    return ImageFolder(str(folder / split))


def _labels(ds: Dataset) -> list[int]:
    if isinstance(ds, ConcatDataset):
        return [y for d in ds.datasets for y in _labels(d)]
    for attr in ("targets", "labels", "_labels"):
        if getattr(ds, attr, None) is not None:
            return [int(y) for y in getattr(ds, attr)]
    raise TypeError(f"cannot read the labels of {type(ds).__name__}")


def split_labels(ds: Dataset) -> list[int]:
    """The labels of a split as its reader holds them (no image decoded), in index order."""
    return _labels(ds)


def _image_files(ds: Dataset) -> list[Path]:
    for attr in ("_image_files", "_images"):
        if getattr(ds, attr, None) is not None:
            return list(getattr(ds, attr))
    return []


def read_cls_split(dataset: str, root: str | Path, split: str) -> Dataset:
    """One split of a data set as torchvision reads it (PIL image, int label), after checking its files.

    Args:
        dataset: a name of :data:`CLS_DATASETS`.
        root: ROOT or the data set folder (see the module docstring).
        split: a torchvision split of that data set (``train``/``test``; ``val`` for Flowers-102 and image folders,
            ``trainval`` for Pets).

    Raises:
        DataLayoutError: a missing, empty, truncated or corrupt file (named), or a layout torchvision cannot read.
    """
    fmt = _format(dataset)
    if split not in (*fmt.train_splits, fmt.test_split):
        raise ValueError(f"{dataset} has no split {split!r}; choose one of: {', '.join(fmt.train_splits)}, "
                         f"{fmt.test_split}")
    root, folder = find_cls_folder(dataset, root)
    if fmt.name == "imagefolder":
        check_imagefolder(folder, splits=(split,), hint=f"expected {fmt.layout}")
        return ImageFolder(str(folder / split))
    _check_files(fmt, folder)
    generated = is_generated(folder)
    if generated and fmt.md5 and folder not in _WARNED:
        _WARNED.add(folder)
        log.warning("%s: %s is marked as generated (%s): skipping the md5 check of the official files",
                    dataset, folder, MARKER)
    try:
        ds = _construct(fmt, root, folder, split, generated)
    except Exception as e:  # readers raise RuntimeError, pickle, OSError, ...: all mean a bad file
        raise _diagnose(fmt, folder, generated, e) from e
    n_labels = len(_labels(ds))
    if n_labels != len(ds):
        what = f"{split}_X.bin / {split}_y.bin" if dataset == "stl10" else f"the {split} split's files"
        raise DataLayoutError(f"{dataset}: {folder}: {what} hold {len(ds)} images but {n_labels} labels; "
                              f"expected {fmt.layout}")
    missing = next((p for p in _image_files(ds) if not Path(p).is_file()), None)
    if missing is not None:
        raise DataLayoutError(f"{dataset}: image {missing} listed in the {split} split is missing; expected "
                              f"{fmt.layout}")
    return ds


@dataclass
class ClsData:
    """A data set opened for fine-tuning under its transfer protocol.

    Attributes:
        train: the training split(s), concatenated (PIL image, label).
        test: the evaluated split.
        num_classes: classifier outputs (highest label + 1).
        classes: class names in label order, where the reader knows them.
        folder: the data set folder read.
        generated: whether it carries the generator's marker.
        splits: which torchvision splits were used (``{"train": "train+val", "test": "test"}``).
    """

    train: Dataset
    test: Dataset
    num_classes: int
    classes: list[str] | None
    folder: Path
    generated: bool
    splits: dict[str, str]


def load_cls_data(dataset: str, root: str | Path) -> ClsData:
    """Open a data set's training and test splits under the transfer protocol (see the module docstring)."""
    fmt = _format(dataset)
    _, folder = find_cls_folder(dataset, root)
    parts = [read_cls_split(dataset, root, s) for s in fmt.train_splits]
    train = parts[0] if len(parts) == 1 else ConcatDataset(parts)
    test = read_cls_split(dataset, root, fmt.test_split)
    train_labels, test_labels = _labels(train), _labels(test)
    if not train_labels or not test_labels:
        raise DataLayoutError(f"{dataset}: {folder} has an empty split (train {len(train_labels)}, test "
                              f"{len(test_labels)} images); expected {fmt.layout}")
    num_classes = max(train_labels + test_labels) + 1
    absent = sorted(set(range(num_classes)) - set(train_labels))
    if absent:
        log.warning("%s: classes %s have no training images", dataset, absent[:10])
    names = getattr(parts[0], "classes", None)
    classes = [str(c) for c in names][:num_classes] if names is not None and len(names) >= num_classes else None
    log.info("%s at %s: %d classes, %d train (%s) / %d test (%s) images", dataset, folder, num_classes, len(train),
             "+".join(fmt.train_splits), len(test), fmt.test_split)
    return ClsData(train=train, test=test, num_classes=num_classes, classes=classes, folder=folder,
                   generated=is_generated(folder), splits={"train": "+".join(fmt.train_splits), "test": fmt.test_split})


# ---------------------------------------------------------------------------------------------------------------------
# the data preflight (benchmarks.datacheck): a count of a root from listings and meta files, against its format's
# official release

_STL_RECORD = 3 * 96 * 96  # bytes of one STL-10 image in *_X.bin
_CIFAR_RECORD = 3 * 32 * 32


def _layout(dataset: str) -> str:
    """The layout the official release has, for the preflight's messages."""
    return _format(dataset).official.layout


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat

    return loadmat(path)


def _cls_folder(dataset: str, root: Path) -> Path:
    _, folder = find_cls_folder(dataset, root)
    check_cls_files(dataset, folder)
    return folder


def _cifar100_inventory(root: Path) -> Inventory:
    folder = _cls_folder("cifar100", root)
    fmt = _format("cifar100")
    names = {"train": CIFAR100.train_list[0][0], "test": CIFAR100.test_list[0][0]}  # one pickled batch per split
    splits = (*fmt.train_splits, fmt.test_split)
    batches = {s: read_meta(folder / names[s], "cifar100", _unpickle) for s in splits}
    meta_path = folder / CIFAR100.meta["filename"]
    meta = read_meta(meta_path, "cifar100", _unpickle)
    counts = {}
    for s, batch in batches.items():
        path = folder / names[s]
        if not isinstance(batch, dict) or "fine_labels" not in batch or "data" not in batch:
            raise DataLayoutError(f"cifar100: {path} is not a CIFAR-100 batch (a dict with 'data' and 'fine_labels'); "
                                  f"expected {_layout('cifar100')}")
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
            for i in spread(range(len(data)), k):
                Image.fromarray(data[i].reshape(3, 32, 32).transpose(1, 2, 0))

    return Inventory(folder, counts, classes, len(paths), sum(p.stat().st_size for p in paths), decode)


def _flowers102_inventory(root: Path) -> Inventory:
    folder = _cls_folder("flowers102", root)
    fmt = _format("flowers102")
    label_file, setid_file = (folder / Flowers102._file_dict[k][0] for k in ("label", "setid"))
    labels = np.asarray(read_meta(label_file, "flowers102", _loadmat)["labels"]).reshape(-1)
    setid = read_meta(setid_file, "flowers102", _loadmat)
    ids: dict[str, list[int]] = {}
    for split in (*fmt.train_splits, fmt.test_split):
        key = Flowers102._splits_map[split]
        if key not in setid:
            raise DataLayoutError(f"flowers102: {setid_file} has no {key!r} (the {split} split); restore it from the "
                                  f"official archive")
        ids[split] = [int(i) for i in np.asarray(setid[key]).reshape(-1)]
    groups = {"+".join(fmt.train_splits): [i for s in fmt.train_splits for i in ids[s]],
              fmt.test_split: ids[fmt.test_split]}
    sizes = file_sizes(folder / "jpg")
    name = "image_{:05d}.jpg".format  # torchvision's Flowers102 file names
    listed = [i for group in groups.values() for i in group]
    check_listed("flowers102", "images", [str(folder / "jpg" / name(i)) for i in listed if name(i) not in sizes],
             f"expected {_layout('flowers102')}")
    bad = [i for i in listed if not 1 <= i <= len(labels)]
    if bad:
        raise DataLayoutError(f"flowers102: {setid_file} lists image ids {bad[:5]} that {label_file} has no label for "
                              f"({len(labels)} labels); restore both from the official archive")

    def decode(k: int) -> None:
        for group in groups.values():
            decode_files("flowers102", [folder / "jpg" / name(i) for i in spread(sorted(group), k)])

    n_bytes = sum(sizes[name(i)] for i in listed) + label_file.stat().st_size + setid_file.stat().st_size
    classes = len({int(labels[i - 1]) for i in listed})
    return Inventory(folder, {s: len(g) for s, g in groups.items()}, classes, len(listed) + 2, n_bytes, decode)


def _pets_inventory(root: Path) -> Inventory:
    folder = _cls_folder("pets", root)
    fmt = _format("pets")
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
    sizes = file_sizes(folder / "images")
    listed = [f"{image}.jpg" for split in splits for image, _ in rows[split]]
    check_listed("pets", "images", [str(folder / "images" / n) for n in listed if n not in sizes],
             f"expected {_layout('pets')}")

    def decode(k: int) -> None:
        for split in splits:
            decode_files("pets", [folder / "images" / f"{image}.jpg" for image, _ in spread(rows[split], k)])

    ann = [folder / "annotations" / f"{s}.txt" for s in splits]
    return Inventory(folder, {s: len(r) for s, r in rows.items()}, len({c for r in rows.values() for _, c in r}),
                      len(listed) + len(ann), sum(sizes[n] for n in listed) + sum(p.stat().st_size for p in ann),
                      decode)


def _stl10_inventory(root: Path) -> Inventory:
    folder = _cls_folder("stl10", root)
    fmt = _format("stl10")
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
            for i in spread(range(counts[split]), k):
                Image.fromarray(np.ascontiguousarray(images[i].transpose(2, 1, 0)))

    return Inventory(folder, counts, len(labels), 2 * len(splits), n_bytes, decode)


def _food101_inventory(root: Path) -> Inventory:
    folder = _cls_folder("food101", root)
    fmt = _format("food101")
    splits = (*fmt.train_splits, fmt.test_split)
    meta = {s: read_meta(folder / "meta" / f"{s}.json", "food101", lambda p: json.loads(p.read_text())) for s in splits}
    listed: dict[str, list[str]] = {}
    for split, table in meta.items():
        if not isinstance(table, dict) or not all(isinstance(v, list) for v in table.values()):
            raise DataLayoutError(f"food101: {folder / 'meta' / f'{split}.json'} is not {{class: [image, ...]}}; "
                                  f"restore it from the official archive")
        listed[split] = [f"{rel}.jpg" for images in table.values() for rel in images]  # torchvision's paths
    sizes: dict[str, int] = {}
    for c in sorted({rel.split("/")[0] for names in listed.values() for rel in names}):
        if (folder / "images" / c).is_dir():
            sizes.update({f"{c}/{n}": s for n, s in file_sizes(folder / "images" / c).items()})
    every = [rel for names in listed.values() for rel in names]
    check_listed("food101", "images", [str(folder / "images" / r) for r in every if r not in sizes],
             f"expected {_layout('food101')}")

    def decode(k: int) -> None:
        for split in splits:
            decode_files("food101", [folder / "images" / r for r in spread(listed[split], k)])

    meta_files = [folder / "meta" / f"{s}.json" for s in splits]
    classes = len({c for table in meta.values() for c in table})
    return Inventory(folder, {s: len(v) for s, v in listed.items()}, classes, len(every) + len(meta_files),
                      sum(sizes[r] for r in every) + sum(p.stat().st_size for p in meta_files), decode)


def _imagefolder_inventory(root: Path) -> Inventory:
    fmt = _format("imagefolder")
    return imagefolder_inventory("imagefolder", root, (fmt.train_splits[0], fmt.test_split),
                                 "expected PATH/{train,val}/<class>/*")


def _generated(dataset: str) -> Callable[[Path], bool]:
    """Whether a root was generated: the marker in ROOT, or in the data set folder below it."""
    def generated(root: Path) -> bool:
        if marked(root):
            return True
        try:
            return marked(find_cls_folder(dataset, root)[1])
        except DataLayoutError:
            return False

    return generated


_INVENTORIES: dict[str, Callable[[Path], Inventory]] = {
    "cifar100": _cifar100_inventory,
    "flowers102": _flowers102_inventory,
    "pets": _pets_inventory,
    "stl10": _stl10_inventory,
    "food101": _food101_inventory,
    "imagefolder": _imagefolder_inventory,
}
# the data preflight's check of each set (the task registry's ``checks`` names it); image folders have no official
# counts
DATA_CHECKS: dict[str, DataCheck] = {
    d: DataCheck(inventory, _FORMATS[d].official, generated=_generated(d)) for d, inventory in _INVENTORIES.items()}


# ---------------------------------------------------------------------------------------------------------------------
# generated stand-ins, written in each distribution's exact format

_NAMES = {
    # the first ten classes of each real data set, in label order
    "cifar100": ["apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle"],
    "pets": ["Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "Bengal",
             "Birman", "Bombay", "boxer", "British_Shorthair"],
    "stl10": ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"],
    "food101": ["apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare", "beet_salad", "beignets",
                "bibimbap", "bread_pudding", "breakfast_burrito"],
}
_CIFAR_COARSE = ["aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
                 "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
                 "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
                 "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
                 "vehicles_1", "vehicles_2"]
_CIFAR_COARSE_OF = [4, 1, 14, 8, 0, 6, 7, 7, 18, 3]  # the real coarse label of each of _NAMES["cifar100"]
_MAX_CLASSES = 10
# ``realistic``: each set's real class count and native image size (width, height choices; CIFAR-100 and STL-10 are
# fixed by their formats: 32 and 96 px). Flowers-102 and Pets are photos of about 500 px, Food-101's are at most 512.
REAL_CLASSES = {"cifar100": 100, "flowers102": 102, "pets": 37, "stl10": 10, "food101": 101, "imagefolder": 10}
_REAL_SIZES: dict[str, tuple[tuple[int, int], ...]] = {
    "flowers102": ((500, 667), (667, 500), (500, 500), (500, 541), (754, 500)),
    "pets": ((500, 375), (375, 500), (500, 333), (500, 500), (300, 225)),
    "food101": ((512, 512), (512, 384), (384, 512), (512, 341)),
    "imagefolder": ((500, 375), (375, 500)),
}


def _draw(rng: np.random.Generator, c: int, k: int, width: int, height: int) -> np.ndarray:
    """An HxWx3 image of class ``c`` of ``k``: an object whose texture is the class (``pretrain.synth.class_look``), of
    a random shape and vivid colour, over a muted background; textures are painted as they look at 48 px."""
    img = muted_background(rng, (width, height))
    side = min(width, height)
    texture, kind = class_look(c, k)
    draw_shape(img, Shape(kind or SHAPES[int(rng.integers(len(SHAPES)))], width * rng.uniform(0.35, 0.65),
                          height * rng.uniform(0.35, 0.65), side * rng.uniform(0.3, 0.45), rng.uniform(0, 2 * math.pi),
                          vivid_color(rng), texture), TEXTURE_SIDE / side)
    return img


def _jpeg(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=92)


_SIZES: tuple[tuple[int, int], ...] | None = None  # set by write_synth_cls(realistic=True) while it writes


def _size(rng: np.random.Generator) -> tuple[int, int]:
    if _SIZES:
        return _SIZES[int(rng.integers(len(_SIZES)))]
    return int(rng.integers(64, 97)), int(rng.integers(64, 97))


def _name(dataset: str, c: int) -> str:
    """Class ``c``'s name: the real set's first ten, then generated ones (Pets: capitalised = cat, as the real)."""
    names = _NAMES[dataset]
    if c < len(names):
        return names[c]
    return f"Breed_{c}" if dataset == "pets" and c % 3 == 0 else f"{dataset}_class_{c:03d}"


def _labels_for(drawn: list[int], per_class: int, rng: np.random.Generator) -> list[int]:
    labels = [c for c in drawn for _ in range(per_class)]
    return [labels[i] for i in rng.permutation(len(labels))]


def _synth_cifar100(folder: Path, rng: np.random.Generator, k: int, drawn: list[int], n_train: int,
                    n_test: int) -> None:
    folder.mkdir(parents=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = _labels_for(drawn, n, rng)
        data = np.stack([_draw(rng, c, k, 32, 32).transpose(2, 0, 1).reshape(-1) for c in labels])  # R, G, B planes
        batch = {"filenames": [f"{_name('cifar100', c)}_s_{i:06d}.png" for i, c in enumerate(labels)],
                 "batch_label": f"{'training' if split == 'train' else 'testing'} batch 1 of 1",
                 "fine_labels": labels, "coarse_labels": [_CIFAR_COARSE_OF[c % 10] for c in labels], "data": data}
        with open(folder / split, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [_name("cifar100", c) for c in range(k)], "coarse_label_names": _CIFAR_COARSE},
                    f, protocol=2)


def _synth_flowers102(folder: Path, rng: np.random.Generator, k: int, drawn: list[int], n_train: int,
                      n_test: int) -> None:
    from scipy.io import savemat

    # the real split has 10 train and 10 val images per class and the rest for test; ids are shuffled over splits
    n_val = max(n_train // 2, 1)
    n_trn = max(n_train - n_val, 1)
    splits = [("trnid", c) for c in drawn for _ in range(n_trn)] + \
             [("valid", c) for c in drawn for _ in range(n_val)] + \
             [("tstid", c) for c in drawn for _ in range(n_test)]
    order = rng.permutation(len(splits))
    labels = np.zeros(len(splits), np.uint8)
    ids: dict[str, list[int]] = {"trnid": [], "valid": [], "tstid": []}
    for image_id, j in enumerate(order, 1):
        split, c = splits[j]
        labels[image_id - 1] = c + 1  # 1-based, as in imagelabels.mat
        ids[split].append(image_id)
        _jpeg(folder / "jpg" / f"image_{image_id:05d}.jpg", _draw(rng, c, k, *_size(rng)))
    savemat(folder / "imagelabels.mat", {"labels": labels[None, :]})
    savemat(folder / "setid.mat", {k_: np.array(sorted(v), np.uint16)[None, :] for k_, v in ids.items()})


def _synth_pets(folder: Path, rng: np.random.Generator, k: int, drawn: list[int], n_train: int, n_test: int) -> None:
    names = [_name("pets", c) for c in range(k)]
    breed, counts = [], {1: 0, 2: 0}
    for name in names:  # species 1 = cat (capitalised names), 2 = dog; breed ids count within a species
        species = 1 if name[0].isupper() else 2
        counts[species] += 1
        breed.append((species, counts[species]))
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    number = 0
    for c, name in enumerate(names):
        for split, n in (("trainval", n_train), ("test", n_test)):
            for _ in range(n if c in drawn else 0):
                number += 1
                stem = f"{name}_{number}"
                _jpeg(folder / "images" / f"{stem}.jpg", _draw(rng, c, k, *_size(rng)))
                lines[split].append(f"{stem} {c + 1} {breed[c][0]} {breed[c][1]}")
    (folder / "annotations").mkdir(parents=True)
    for split, rows in lines.items():
        (folder / "annotations" / f"{split}.txt").write_text("\n".join(rows) + "\n")


def _stl_records(images: list[np.ndarray]) -> bytes:
    # torchvision reads N x 3 x 96 x 96 and swaps the last two axes: each channel is stored column by column
    return np.stack([img.transpose(2, 1, 0) for img in images]).astype(np.uint8).tobytes()


def _synth_stl10(folder: Path, rng: np.random.Generator, k: int, drawn: list[int], n_train: int,
                 n_test: int) -> None:
    folder.mkdir(parents=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = _labels_for(drawn, n, rng)
        (folder / f"{split}_X.bin").write_bytes(_stl_records([_draw(rng, c, k, 96, 96) for c in labels]))
        (folder / f"{split}_y.bin").write_bytes((np.array(labels, np.uint8) + 1).tobytes())  # 1-based
        if split == "train":  # ten folds of training indices, as fold_indices.txt holds
            size = max(len(labels) // 5, 1)
            folds = [" ".join(map(str, sorted(rng.choice(len(labels), size, replace=False)))) for _ in range(10)]
            (folder / "fold_indices.txt").write_text("\n".join(folds) + "\n")
    unlabeled = [_draw(rng, int(rng.integers(k)), k, 96, 96) for _ in range(max(k, 4))]
    (folder / "unlabeled_X.bin").write_bytes(_stl_records(unlabeled))
    (folder / "class_names.txt").write_text("\n".join(_name("stl10", c) for c in range(k)) + "\n")


def _synth_food101(folder: Path, rng: np.random.Generator, k: int, drawn: list[int], n_train: int,
                   n_test: int) -> None:
    names = [_name("food101", c) for c in range(k)]
    meta: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    for c, name in enumerate(names):
        if c not in drawn:
            n_train_c = n_test_c = 0
        else:
            n_train_c, n_test_c = n_train, n_test
        ids = rng.choice(3_999_999, n_train_c + n_test_c, replace=False) + 1_000_000
        for split, chunk in (("train", ids[:n_train_c]), ("test", ids[n_train_c:])):
            meta[split][name] = [f"{name}/{i}" for i in sorted(chunk)]
            for i in chunk:
                _jpeg(folder / "images" / name / f"{i}.jpg", _draw(rng, c, k, *_size(rng)))
    (folder / "meta").mkdir(parents=True)
    for split, table in meta.items():
        (folder / "meta" / f"{split}.json").write_text(json.dumps(table))
        (folder / "meta" / f"{split}.txt").write_text("".join(f"{p}\n" for v in table.values() for p in v))
    (folder / "meta" / "classes.txt").write_text("\n".join(names) + "\n")
    (folder / "meta" / "labels.txt").write_text("\n".join(n.replace("_", " ").capitalize() for n in names) + "\n")


def _synth_imagefolder(folder: Path, rng: np.random.Generator, k: int, drawn: list[int], n_train: int,
                       n_test: int) -> None:
    for c in drawn:
        name = f"class_{c:02d}_{SHAPES[c % len(SHAPES)]}"
        for split, n in (("train", n_train), ("val", n_test)):
            for i in range(n):
                wh = _size(rng) if _SIZES else (64, 64)
                _jpeg(folder / split / name / f"{name}_{i:04d}.jpg", _draw(rng, c, k, *wh))


_WRITERS: dict[str, Callable[[Path, np.random.Generator, int, list[int], int, int], None]] = {
    "cifar100": _synth_cifar100,
    "flowers102": _synth_flowers102,
    "pets": _synth_pets,
    "stl10": _synth_stl10,
    "food101": _synth_food101,
    "imagefolder": _synth_imagefolder,
}


def write_synth_cls(
    out: str | Path,
    seed: int = 0,
    *,
    dataset: str,
    num_classes: int = 4,
    train_per_class: int = 16,
    test_per_class: int = 8,
    realistic: bool = False,
    drawn_classes: int | None = None,
) -> Path:
    """Write a tiny generated data set in ``dataset``'s own format and return the ROOT to pass as ``--data``.

    The files are exactly what the distribution ships (CIFAR-100 pickles, Flowers-102 jpg + .mat, Pets images +
    annotation lists, STL-10 binaries, Food-101 images + meta JSON, or train/val image folders) under
    ``out/<folder>/``, plus the generator's marker, so that the real readers run on them. Each class is one
    texture (any shape and colour) at a random place, size and angle over a muted background
    (``pretrain.synth``: the pretraining set's vocabulary).

    Args:
        out: output root; ``out/<folder>`` (``out`` for image folders) must not exist yet or be empty.
        seed: random seed.
        dataset: a name of :data:`CLS_DATASETS`.
        num_classes: 2 to 10 classes (named as the real set's first classes).
        train_per_class: training images per class (Flowers-102: split between train and val).
        test_per_class: test images per class.
        realistic: shape the set like the real one (for rehearsing a recipe): its class count
            (:data:`REAL_CLASSES`; ``num_classes`` is then unused) and native image size (CIFAR-100 32 px, STL-10
            96 px, Flowers-102 and Pets about 500 px, Food-101 up to 512 px).
        drawn_classes: images for this many classes only, spread over the label range with the first and the last
            included (so the readers still find every class, the head its real size); the others are named in the
            set's files but have no images. None: every class (a rehearsal draws 10 of CIFAR-100's 100).
    """
    global _SIZES
    fmt = _format(dataset)
    if realistic:
        num_classes = REAL_CLASSES[dataset]
    elif not 2 <= num_classes <= _MAX_CLASSES:
        raise ValueError(f"num_classes must be between 2 and {_MAX_CLASSES}, got {num_classes}")
    if train_per_class < 2 or test_per_class < 1:
        raise ValueError(f"need train_per_class >= 2 and test_per_class >= 1, got {train_per_class}, {test_per_class}")
    if drawn_classes is not None and not 2 <= drawn_classes:
        raise ValueError(f"drawn_classes must be >= 2 (or None: every class), got {drawn_classes}")
    if drawn_classes is not None and drawn_classes < num_classes and dataset == "imagefolder":
        raise ValueError("drawn_classes: an image folder's classes are its folders with images; generate every class "
                         "(drawn_classes=None)")
    drawn = sorted({int(round(x)) for x in np.linspace(0, num_classes - 1, min(drawn_classes or num_classes,
                                                                                  num_classes))})
    out = Path(out)
    folder = out / fmt.folder if fmt.folder else out
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} already exists and is not empty; choose another --out")
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    _SIZES = _REAL_SIZES.get(dataset) if realistic else None
    try:
        _WRITERS[dataset](tmp, rng, num_classes, drawn, train_per_class, test_per_class)
    finally:
        _SIZES = None
    tmp.mkdir(parents=True, exist_ok=True)
    synth_marker(tmp, f"cls-{dataset}", dataset=dataset, classes=num_classes, train_per_class=train_per_class,
                 test_per_class=test_per_class, seed=seed, realistic=realistic,
                 **({"drawn_classes": len(drawn)} if len(drawn) < num_classes else {}))
    if folder.exists():
        folder.rmdir()
    tmp.rename(folder)
    log.info("wrote a generated %s set (%d classes) to %s", dataset, num_classes, folder)
    return out

