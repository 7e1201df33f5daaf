"""The data preflight: official counts from listings and annotation files only, refusals, generated sets, decoding.

The official layouts are built once per module from EMPTY image files (and sparse STL-10 binaries): the count check
must pass on them without reading a pixel, and fail when one file is taken away.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from dropbench.benchmarks.datacheck import OFFICIAL, check_dataset, check_roots, render_reports
from dropbench.finetune.datasets.ade20k import write_synth_ade20k
from dropbench.finetune.datasets.cls import write_synth_cls
from dropbench.finetune.datasets.coco import write_synth_coco

STL = 3 * 96 * 96


def _touch(folder: Path, names: list[str]) -> None:
    """Empty files ``folder/name`` (mknod relative to the folder's descriptor: the fast way to make 1.3M files)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        for name in names:
            os.mknod(name, dir_fd=fd)
    finally:
        os.close(fd)


def _spread(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


def _imagenet(root: Path) -> None:
    for split, total in (("train", 1_281_167), ("val", 50_000)):
        for c, n in enumerate(_spread(total, 1000)):
            wnid = f"n{c:08d}"
            _touch(root / split / wnid, [f"{wnid}_{i}.JPEG" for i in range(n)])


def _coco(root: Path) -> None:
    cats = [{"id": i + 1, "name": f"category{i}"} for i in range(80)]
    (root / "annotations").mkdir(parents=True)
    first = 1
    for split, n in (("train2017", 118_287), ("val2017", 5_000)):
        names = [f"{i:012d}.jpg" for i in range(first, first + n)]
        _touch(root / split, names)
        images = [{"id": first + i, "file_name": name, "width": 640, "height": 480} for i, name in enumerate(names)]
        (root / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": [], "categories": cats}))
        first += n


def _ade20k(root: Path) -> None:
    for split, n in (("training", 20_210), ("validation", 2_000)):
        stems = [f"ADE_{split[:5]}_{i:08d}" for i in range(1, n + 1)]
        _touch(root / "images" / split, [f"{s}.jpg" for s in stems])
        _touch(root / "annotations" / split, [f"{s}.png" for s in stems])


def _cifar100(root: Path) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, n in (("train", 50_000), ("test", 10_000)):
        # the image rows are left empty: the count comes from the labels and the number of rows
        batch = {"data": np.zeros((n, 0), np.uint8), "fine_labels": [i % 100 for i in range(n)]}
        (folder / split).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}, protocol=2))


def _flowers102(root: Path) -> None:
    from scipy.io import savemat

    folder = root / "flowers-102"
    total = 1020 + 1020 + 6149
    _touch(folder / "jpg", [f"image_{i:05d}.jpg" for i in range(1, total + 1)])
    ids = np.arange(1, total + 1)
    savemat(folder / "imagelabels.mat", {"labels": (ids % 102 + 1)[None, :]})
    savemat(folder / "setid.mat", {"trnid": ids[:1020][None, :], "valid": ids[1020:2040][None, :],
                                   "tstid": ids[2040:][None, :]})


def _pets(root: Path) -> None:
    folder = root / "oxford-iiit-pet"
    number = 0
    for split, n in (("trainval", 3_680), ("test", 3_669)):
        lines = []
        for i in range(n):
            number += 1
            c = i % 37
            lines.append(f"breed{c}_{number} {c + 1} {1 + c % 2} {c // 2 + 1}")
        _touch(folder / "images", [f"{line.split()[0]}.jpg" for line in lines])
        (folder / "annotations").mkdir(exist_ok=True)
        (folder / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")


def _stl10(root: Path) -> None:
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    for split, n in (("train", 5_000), ("test", 8_000), ("unlabeled", 100_000)):
        with open(folder / f"{split}_X.bin", "wb") as f:
            f.truncate(n * STL)  # sparse: no disk space, no pixels
        if split != "unlabeled":
            (folder / f"{split}_y.bin").write_bytes((np.arange(n) % 10 + 1).astype(np.uint8).tobytes())


def _food101(root: Path) -> None:
    folder = root / "food-101"
    meta: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    for c in range(101):
        name = f"food{c}"
        ids = [f"{name}/{100_000 + i}" for i in range(1000)]
        meta["train"][name], meta["test"][name] = ids[:750], ids[750:]
        _touch(folder / "images" / name, [f"{i.split('/')[1]}.jpg" for i in ids])
    (folder / "meta").mkdir()
    for split, table in meta.items():
        (folder / "meta" / f"{split}.json").write_text(json.dumps(table))


BUILDERS: dict[str, Callable[[Path], None]] = {"coco": _coco, "ade20k": _ade20k, "cifar100": _cifar100,
                                               "flowers102": _flowers102, "pets": _pets, "stl10": _stl10,
                                               "food101": _food101}


# files a run reads: images (and label maps) plus annotation / meta files
FILES_READ = {"coco": 118_287 + 5_000 + 2, "ade20k": 2 * (20_210 + 2_000), "cifar100": 3, "flowers102": 8_189 + 2,
              "pets": 7_349 + 2, "stl10": 4, "food101": 101_000 + 2}


def _official_base(tmp_path_factory) -> Path:
    """A folder for the official layouts: in RAM where /dev/shm can hold their 1.6M empty files, else in tmp."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and os.statvfs(shm).f_favail > 2_000_000:
        return Path(tempfile.mkdtemp(prefix="dropbench-official-", dir=shm))
    return tmp_path_factory.mktemp("official")


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> dict[str, Path]:
    """COCO, ADE20K and the five classification sets in their official layouts and counts, from empty files."""
    base = _official_base(tmp_path_factory)
    try:
        roots = {name: base / name for name in BUILDERS}
        for name, build in BUILDERS.items():
            build(roots[name])
        yield roots
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)  # several times faster than shutil.rmtree here


def test_official_counts_pass_from_listings_and_annotation_files(official):
    start = time.perf_counter()
    reports = check_roots({k: str(v) for k, v in official.items()}, strict=True, sample=0)
    took = time.perf_counter() - start
    for r in reports:
        assert (r.status, r.kind, r.problems) == ("ok", "real", ()), r
        assert r.found == r.expected, r
        assert r.fingerprint.files == FILES_READ[r.dataset], r
    stl = next(r for r in reports if r.dataset == "stl10")
    assert stl.fingerprint.bytes == 13_000 * STL + 13_000  # the X and y files of the two splits read
    assert took < 60
    table = render_reports(reports)
    assert "118,287" in table and "75,750" in table and "ok" in table


@pytest.mark.slow
def test_imagenet_official_counts_from_1_3m_empty_files(tmp_path_factory):
    base = _official_base(tmp_path_factory)
    try:
        _imagenet(base)
        r = check_dataset("imagenet", base, strict=True, sample=0)
        assert (r.status, r.found) == ("ok", {"train": 1_281_167, "val": 50_000, "classes": 1000}), r
        assert r.fingerprint.files == 1_331_167 and r.fingerprint.bytes == 0
        (base / "train" / "n00000500" / "n00000500_7.JPEG").unlink()
        r = check_dataset("imagenet", base, strict=True, sample=0)
        assert r.status == "error" and "the train split holds 1,281,166 images, the official release 1,281,167" in \
            r.problems[0]
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


def _remove(path: Path) -> Callable[[], None]:
    path.unlink()
    return lambda: os.mknod(path)


def _rewrite(path: Path, edit: Callable[[bytes], bytes]) -> Callable[[], None]:
    data = path.read_bytes()
    path.write_bytes(edit(data))
    return lambda: path.write_bytes(data)


def _cifar_drop_one(data: bytes) -> bytes:
    batch = pickle.loads(data)
    return pickle.dumps({"data": batch["data"][:-1], "fine_labels": batch["fine_labels"][:-1]}, protocol=2)


def _stl_drop_one(folder: Path) -> Callable[[], None]:
    x, y = folder / "test_X.bin", folder / "test_y.bin"
    os.truncate(x, x.stat().st_size - STL)
    restore_y = _rewrite(y, lambda b: b[:-1])

    def restore() -> None:
        os.truncate(x, 8_000 * STL)
        restore_y()

    return restore


BREAKS: dict[str, tuple[Callable[[Path], Callable[[], None]], str, str]] = {
    # data set -> (take one file or record away, what the error names, the status outside strict presets: a count
    # that differs is a warning there, a file that the annotation files list but is missing stays an error)
    "coco": (lambda r: _remove(r / "val2017" / f"{118_287 + 17:012d}.jpg"), f"{118_287 + 17:012d}.jpg", "error"),
    "ade20k": (lambda r: _remove(r / "images" / "training" / "ADE_train_00000033.jpg"), "ADE_train_00000033",
               "error"),
    "cifar100": (lambda r: _rewrite(r / "cifar-100-python" / "test", _cifar_drop_one), "9,999", "warning"),
    "flowers102": (lambda r: _remove(r / "flowers-102" / "jpg" / "image_05000.jpg"), "image_05000.jpg", "error"),
    "pets": (lambda r: _remove(r / "oxford-iiit-pet" / "images" / "breed3_4.jpg"), "breed3_4.jpg", "error"),
    "stl10": (lambda r: _stl_drop_one(r / "stl10_binary"), "7,999", "warning"),
    "food101": (lambda r: _remove(r / "food-101" / "images" / "food7" / "100999.jpg"), "food7/100999.jpg", "error"),
}


@pytest.mark.parametrize("dataset", list(BREAKS))
def test_one_file_removed_fails(official, dataset):
    breaker, named, lenient_status = BREAKS[dataset]
    restore = breaker(official[dataset])
    try:
        report = check_dataset(dataset, official[dataset], strict=True, sample=0)
        lenient = check_dataset(dataset, official[dataset], sample=0)
    finally:
        restore()
    assert report.status == "error" and any(named in p for p in report.problems), report
    assert lenient.status == lenient_status, lenient


def test_missing_root_and_unknown_name():
    r = check_dataset("coco", None)
    assert (r.kind, r.status) == ("missing", "missing") and "--data-root coco=PATH" in r.problems[0]
    with pytest.raises(ValueError, match="unknown data set 'imagenet21k'"):
        check_dataset("imagenet21k", "/nowhere")
    r = check_dataset("ade20k", "/nowhere/ADEChallengeData2016")
    assert (r.kind, r.status) == ("missing", "error") and "/nowhere" in r.problems[0]


def test_generated_sets_are_reported_and_fail_official_counts(tmp_path, synth_imagenet):
    root = write_synth_cls(tmp_path / "pets", dataset="pets", num_classes=3, train_per_class=4, test_per_class=2)
    r = check_dataset("pets", root, sample=2)
    assert (r.kind, r.status) == ("generated", "warning")
    assert r.found == {"trainval": 12, "test": 6, "classes": 3}
    strict = check_dataset("pets", root, strict=True)
    assert strict.status == "error" and "trainval split holds 12 images, the official release 3,680" in \
        strict.problems[0]
    assert check_dataset("pets", root, compare=False).status == "ok"
    im = check_dataset("imagenet", synth_imagenet, strict=True, sample=2)
    assert im.kind == "generated" and im.status == "error" and im.found["classes"] == 4
    assert im.provenance()["fingerprint"]["files"] == 4 * (24 + 8)


def test_sample_decode_names_the_corrupt_image(tmp_path):
    root = write_synth_cls(tmp_path / "folder", dataset="imagefolder", num_classes=2, train_per_class=2,
                           test_per_class=1)
    assert check_dataset("imagefolder", root, strict=True, sample=4).status == "ok"
    bad = sorted((root / "val").rglob("*.jpg"))[1]
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    r = check_dataset("imagefolder", root, strict=True, sample=4)
    assert r.status == "error" and str(bad) in r.problems[0] and "cannot be decoded" in r.problems[0]
    assert r.expected is None  # image folders have no official counts


GENERATORS: dict[str, Callable[[Path], Path]] = {
    "coco": lambda d: write_synth_coco(d, num_train=3, num_val=2, sizes=(64,)),
    "ade20k": lambda d: write_synth_ade20k(d, train_images=3, val_images=2, sizes=((64, 48),)),
    **{name: (lambda d, name=name: write_synth_cls(d, dataset=name, num_classes=2, train_per_class=2,
                                                   test_per_class=1))
       for name in ("cifar100", "flowers102", "pets", "stl10", "food101")},
}


@pytest.mark.parametrize("dataset", list(GENERATORS))
def test_generated_sets_of_every_format_decode(tmp_path, dataset):
    root = GENERATORS[dataset](tmp_path / dataset)
    r = check_dataset(dataset, root, compare=False, sample=3)
    assert (r.kind, r.status, r.problems) == ("generated", "ok", ()), r
    assert r.found[next(iter(r.found))] > 0 and r.fingerprint.bytes > 0


def test_data_check_command_prints_the_table(official, capsys):
    from dropbench.benchmarks.cli import main

    cheap = ("cifar100", "flowers102", "pets", "stl10")  # the test's point is the command, not the listing of COCO
    roots = [f"{k}={official[k]}" for k in cheap]
    assert main(["data", "check", "--data-root", *roots, "--sample", "0"]) == 0
    out = capsys.readouterr().out
    assert out.split("\n")[0].split() == ["data", "set", "root", "kind", "found", "expected", "status"]
    assert "train+val 2,040, test 6,149, 102 classes" in out and out.count(" real ") == len(cheap)
    # the paper preset: data sets without a root are missing (each named with its --data-root), the others checked
    assert main(["data", "check", "--preset", "paper", "--data-root", *roots, "--sample", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.out.count(" missing ") == 4 and captured.out.count(" ok") == len(cheap)
    for name in ("imagenet", "coco", "ade20k", "food101"):
        assert f"--data-root {name}=PATH" in captured.err
    assert "--data-root pets=PATH" not in captured.err


def test_readme_says_where_to_get_every_data_set():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Getting the data", 1)[1].split("\n## ", 1)[0]
    for name, official in OFFICIAL.items():
        assert f"`{name}`" in section and official.source.split()[0] in section, name
        assert all(f"{n:,}" in section for n in official.splits.values()), name


def test_a_data_set_of_a_new_registered_task_is_fingerprinted(tmp_path, monkeypatch):
    from dropbench.finetune.tasks import TASKS, Column, TableSpec, Task

    task = Task("probe", "m:f", "cls", ("svhn",), TableSpec("t7", "T7", "probe", (Column("svhn", "top1", "svhn"),),
                                                            "t7"), "m:f", "", "", "")
    monkeypatch.setitem(TASKS, "probe", task)
    (tmp_path / "svhn" / "train").mkdir(parents=True)
    (tmp_path / "svhn" / "train" / "a.mat").write_bytes(b"12345")
    r = check_dataset("svhn", tmp_path / "svhn", sample=2)
    assert (r.kind, r.status, r.found, r.expected) == ("real", "ok", {}, None)
    assert (r.fingerprint.files, r.fingerprint.bytes) == (1, 5)
    with pytest.raises(ValueError, match="unknown data set 'svhm'; choose one of: imagenet, .*svhn"):
        check_dataset("svhm", tmp_path)
