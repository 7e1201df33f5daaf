"""Classification readers on generated files in each real format: sizes, labels, splits, roots, and each refusal."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from dropbench.finetune.datasets.cls import (
    CLS_DATASETS,
    REAL_CLASSES,
    DataLayoutError,
    find_cls_folder,
    is_generated,
    load_cls_data,
    read_cls_split,
    write_synth_cls,
)
from dropbench.pretrain.synth import MARKER
from PIL import Image
from torchvision.datasets import STL10

K, TRAIN, TEST = 4, 6, 3  # classes, train and test images per class
FOLDERS = {"cifar100": "cifar-100-python", "flowers102": "flowers-102", "pets": "oxford-iiit-pet",
           "stl10": "stl10_binary", "food101": "food-101", "imagefolder": None}


def _synth(root: Path, dataset: str) -> Path:
    return write_synth_cls(root / dataset, seed=1, dataset=dataset, num_classes=K, train_per_class=TRAIN,
                           test_per_class=TEST)


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("cls")
    return {d: _synth(base, d) for d in CLS_DATASETS}


@pytest.fixture
def fresh(tmp_path):
    """A generated set of its own, for tests that break files."""
    return lambda dataset: _synth(tmp_path, dataset)


@pytest.mark.parametrize("dataset", CLS_DATASETS)
def test_reader_sizes_labels_and_splits(roots, dataset):
    data = load_cls_data(dataset, roots[dataset])
    assert (len(data.train), len(data.test)) == (K * TRAIN, K * TEST)
    assert data.num_classes == K and data.generated
    for split in (data.train, data.test):
        labels = [split[i][1] for i in range(len(split))]
        assert sorted(set(labels)) == list(range(K))
        assert all(labels.count(c) == len(labels) // K for c in range(K))
    img, label = data.test[0]
    assert isinstance(img, Image.Image) and img.mode == "RGB" and isinstance(label, int)
    if dataset == "cifar100":
        assert img.size == (32, 32) and data.classes == ["apple", "aquarium_fish", "baby", "bear"]
    if dataset == "stl10":
        assert img.size == (96, 96) and data.classes == ["airplane", "bird", "car", "cat"]
    expected_splits = {"flowers102": "train+val", "pets": "trainval"}.get(dataset, "train")
    assert data.splits == {"train": expected_splits, "test": "val" if dataset == "imagefolder" else "test"}


def test_flowers_trains_on_train_plus_val(roots):
    train, val = read_cls_split("flowers102", roots["flowers102"], "train"), read_cls_split(
        "flowers102", roots["flowers102"], "val")
    assert len(train) + len(val) == K * TRAIN and len(train) > 0 and len(val) > 0
    from scipy.io import loadmat

    folder = roots["flowers102"] / "flowers-102"
    ids = loadmat(folder / "setid.mat", squeeze_me=True)
    labels = loadmat(folder / "imagelabels.mat", squeeze_me=True)["labels"]
    splits = [set(ids[k].tolist()) for k in ("trnid", "valid", "tstid")]
    assert sum(len(s) for s in splits) == len(set().union(*splits)) == len(labels) == K * (TRAIN + TEST)
    assert labels.min() == 1 and labels.max() == K  # 1-based, as the real file
    assert len(list((folder / "jpg").glob("image_*.jpg"))) == len(labels)


def test_pets_annotation_lines_follow_the_official_format(roots):
    lines = (roots["pets"] / "oxford-iiit-pet" / "annotations" / "trainval.txt").read_text().splitlines()
    assert len(lines) == K * TRAIN
    for line in lines:
        assert re.fullmatch(r"[A-Za-z_]+_\d+ \d+ [12] \d+", line), line
    assert lines[0].startswith("Abyssinian_") and lines[0].split()[1:] == ["1", "1", "1"]  # class 1, cat, breed 1


def test_stl10_binary_layout_round_trips_through_torchvision(tmp_path):
    from dropbench.finetune.datasets.cls import _stl_records

    img = np.zeros((96, 96, 3), np.uint8)
    img[10:20, 60:90] = (255, 0, 0)  # a red bar, wider than tall, in the top right: catches a transposed layout
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    for split in ("train", "test"):
        (folder / f"{split}_X.bin").write_bytes(_stl_records([img, img]))
        (folder / f"{split}_y.bin").write_bytes(bytes([1, 10]))
    (folder / "unlabeled_X.bin").write_bytes(_stl_records([img]))
    (folder / MARKER).write_text("{}")
    ds = read_cls_split("stl10", tmp_path, "train")
    assert isinstance(ds, STL10)
    assert np.array_equal(np.asarray(ds[0][0]), img) and [ds[0][1], ds[1][1]] == [0, 9]


def test_cifar100_pickles_hold_the_official_keys(roots):
    folder = roots["cifar100"] / "cifar-100-python"
    with open(folder / "train", "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    assert {"data", "fine_labels", "coarse_labels", "filenames", "batch_label"} <= set(batch)
    assert batch["data"].shape == (K * TRAIN, 3072) and batch["data"].dtype == np.uint8
    with open(folder / "meta", "rb") as f:
        assert len(pickle.load(f, encoding="latin1")["coarse_label_names"]) == 20


def test_food101_meta_lists_every_image(roots):
    meta = roots["food101"] / "food-101" / "meta"
    table = json.loads((meta / "test.json").read_text())
    assert sorted(table) == (meta / "classes.txt").read_text().split()
    for paths in table.values():
        assert len(paths) == TEST
        assert all((meta.parent / "images" / f"{p}.jpg").is_file() for p in paths)


@pytest.mark.parametrize("dataset", [d for d in CLS_DATASETS if d != "imagefolder"])
def test_root_is_the_parent_or_the_data_set_folder(roots, dataset):
    root = roots[dataset]
    assert find_cls_folder(dataset, root) == (root, root / FOLDERS[dataset])
    assert find_cls_folder(dataset, root / FOLDERS[dataset]) == (root, root / FOLDERS[dataset])
    assert len(read_cls_split(dataset, root / FOLDERS[dataset], "test")) == K * TEST
    assert is_generated(root / FOLDERS[dataset])


def test_a_renamed_data_set_folder_is_refused_with_the_fix(fresh, tmp_path):
    root = fresh("food101")
    renamed = tmp_path / "my-food"
    (root / "food-101").rename(renamed)
    with pytest.raises(DataLayoutError, match="folder named 'food-101'"):
        read_cls_split("food101", renamed, "train")
    with pytest.raises(DataLayoutError, match=r"no food-101/ in .*expected ROOT/food-101/"):
        read_cls_split("food101", tmp_path, "train")


MISSING = {
    "cifar100": "cifar-100-python/meta",
    "flowers102": "flowers-102/setid.mat",
    "pets": "oxford-iiit-pet/annotations/test.txt",
    "stl10": "stl10_binary/test_y.bin",
    "food101": "food-101/meta/train.json",
    "imagefolder": "val",
}


@pytest.mark.parametrize("dataset", CLS_DATASETS)
def test_missing_file_is_named_with_the_layout(fresh, dataset):
    root = fresh(dataset)
    path = root / MISSING[dataset]
    if path.is_dir():
        import shutil

        shutil.rmtree(path)
    else:
        path.unlink()
    with pytest.raises(DataLayoutError) as e:
        load_cls_data(dataset, root)
    assert str(path) in str(e.value) and "expected" in str(e.value)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


CORRUPT = {
    "cifar100": ("cifar-100-python/train", _truncate),
    "flowers102": ("flowers-102/imagelabels.mat", lambda p: p.write_bytes(b"MATLAB 5.0 garbage" * 4)),
    "pets": ("oxford-iiit-pet/annotations/trainval.txt", lambda p: p.write_text("Abyssinian_1 1\n")),
    "stl10": ("stl10_binary/train_X.bin", lambda p: p.write_bytes(p.read_bytes()[:-5])),
    "food101": ("food-101/meta/test.json", _truncate),
}


@pytest.mark.parametrize("dataset", list(CORRUPT))
def test_truncated_or_corrupt_file_is_named(fresh, dataset):
    root = fresh(dataset)
    rel, damage = CORRUPT[dataset]
    damage(root / rel)
    with pytest.raises(DataLayoutError, match=re.escape(str(root / rel))):
        load_cls_data(dataset, root)


@pytest.mark.parametrize("dataset,first", [("cifar100", "train"), ("flowers102", "imagelabels.mat"),
                                           ("stl10", "train_X.bin")])
def test_md5_is_checked_unless_the_root_is_marked_generated(fresh, dataset, first):
    root = fresh(dataset)
    folder = root / FOLDERS[dataset]
    (folder / MARKER).unlink()  # now it claims to be the real data set: torchvision's md5 check applies
    with pytest.raises(DataLayoutError, match=rf"{re.escape(str(folder / first))} is corrupt or not the official "
                                              r"file \(md5 [0-9a-f]{32}, expected [0-9a-f]{32}\)"):
        read_cls_split(dataset, root, "test")


def test_skipped_md5_check_is_logged(fresh, caplog):
    root = fresh("stl10")
    with caplog.at_level("WARNING", logger="dropbench.finetune.datasets.cls"):
        read_cls_split("stl10", root, "test")
    assert "skipping the md5 check" in caplog.text


def test_missing_image_listed_in_a_split_is_named(fresh):
    root = fresh("pets")
    image = sorted((root / "oxford-iiit-pet" / "images").glob("*.jpg"))[0]
    image.unlink()
    with pytest.raises(DataLayoutError, match=re.escape(str(image))):
        load_cls_data("pets", root)


def test_bad_arguments_are_refused(tmp_path, roots):
    with pytest.raises(ValueError, match="unknown classification data set 'svhn'"):
        write_synth_cls(tmp_path / "x", dataset="svhn")
    with pytest.raises(ValueError, match="num_classes must be between 2 and 10"):
        write_synth_cls(tmp_path / "x", dataset="pets", num_classes=40)
    with pytest.raises(FileExistsError, match="not empty"):
        write_synth_cls(roots["pets"], dataset="pets")
    with pytest.raises(ValueError, match="pets has no split 'train'"):
        read_cls_split("pets", roots["pets"], "train")
    with pytest.raises(DataLayoutError, match="does not exist"):
        read_cls_split("stl10", tmp_path / "nowhere", "train")


@pytest.mark.parametrize("dataset", [d for d in CLS_DATASETS if d != "imagefolder"])
def test_a_realistic_set_with_images_for_a_few_classes_keeps_the_real_class_count(tmp_path, dataset):
    """A rehearsal's sets: the real class count and native size, images for 3 classes spread over the labels."""
    root = write_synth_cls(tmp_path / dataset, dataset=dataset, train_per_class=2, test_per_class=1, realistic=True,
                           drawn_classes=3)
    data = load_cls_data(dataset, root)
    k = REAL_CLASSES[dataset]
    assert data.num_classes == k and (data.classes is None or len(data.classes) == k)
    train = sorted(int(y) for _, y in data.train)
    test = sorted(int(y) for _, y in data.test)
    assert len(set(train)) == 3 and {0, k - 1} <= set(train) and train == sorted(list(set(train)) * 2) and \
        set(test) == set(train) and len(test) == 3
    if dataset == "cifar100":  # an image folder cannot (a class is a folder with images): refused
        with pytest.raises(ValueError, match="image folder"):
            write_synth_cls(tmp_path / "folders", dataset="imagefolder", realistic=True, drawn_classes=3)
