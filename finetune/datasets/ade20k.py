"""ADE20K (ADEChallengeData2016) on disk: a layout check before training, and a generated stand-in.

The layout mmseg's ``ADE20KDataset`` reads::

    ROOT/images/training/*.jpg        ROOT/annotations/training/*.png     (same stems, 20,210 pairs)
    ROOT/images/validation/*.jpg      ROOT/annotations/validation/*.png   (2,000 pairs)

Label maps are single-channel 8-bit PNGs holding 0 (unlabelled, ignored: mmseg's ``reduce_zero_label``) and 1..150
(class ``v - 1`` of the 150). A value above 150 would reach the loss as class 150..254 and stop training hours in
(or trip a CUDA device-side assert), so :func:`check_ade20k` refuses such data before the Runner starts.
:data:`DATA_CHECKS` is what the data preflight knows of it: the official split sizes, source and layout, and a count
of a root from its listings (:func:`pair_files`).

:func:`write_synth_ade20k` writes small generated scenes in the same layout: a few regions (sky, wall, floor, grass,
person, car under their ADE20K ids) meeting at irregular borders, and a few objects over them, with unlabelled (0)
outlines as real ADE20K has. A class is a texture of the shared vocabulary (``pretrain.synth.TEXTURES``) in any
colour, and any class may fill a region or an object anywhere in the image: neither colour nor position tells it,
what the backbone knows of textures does. ``realistic=True`` shapes the set
like the real one instead (for rehearsing a recipe): image sizes from 256x341 to 2100x1600 (:data:`ADE20K_SIZES`)
and all 150 classes, regions and 3 to 12 objects drawn from any of them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from dropbench.pretrain.inventory import DataCheck, Inventory, Official, decode_files, spread
from dropbench.pretrain.synth import SHAPES, TEXTURES, Shape, draw_shape, synth_marker, vivid_color
from PIL import Image, UnidentifiedImageError

__all__ = ["ADE20KDataError", "ADE20K_SIZES", "DATA_CHECKS", "NUM_CLASSES", "OFFICIAL", "SPLITS", "SYNTH_CLASSES",
           "check_ade20k", "pair_files", "write_synth_ade20k"]

log = logging.getLogger(__name__)

NUM_CLASSES = 150
SPLITS = ("training", "validation")
_IMG_SUFFIX, _SEG_SUFFIX = ".jpg", ".png"


class ADE20KDataError(ValueError):
    """An ADE20K root that mmseg's ``ADE20KDataset`` cannot train on correctly."""


def _names(paths: list[Path], n: int = 5) -> str:
    shown = ", ".join(p.name for p in paths[:n])
    return shown + (f" and {len(paths) - n} more" if len(paths) > n else "")


def _open(path: Path, what: str) -> Image.Image:
    try:
        return Image.open(path)
    except (OSError, UnidentifiedImageError, SyntaxError) as e:
        raise ADE20KDataError(f"{what} {path} is not a readable image ({type(e).__name__}: {e}); re-extract or "
                              f"re-download it, or remove the pair") from None


def pair_files(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """The (image, label map) pairs of one split, sorted by stem, from the folder listings alone (nothing is opened).

    Raises:
        ADE20KDataError: a missing folder, a split without images, an image without its label map or a label map
            without its image.
    """
    root = Path(root)
    img_dir, ann_dir = root / "images" / split, root / "annotations" / split
    for d in (img_dir, ann_dir):
        if not d.is_dir():
            hint = ""
            if (root / "ADEChallengeData2016").is_dir():
                hint = f"; did you mean --data {root / 'ADEChallengeData2016'}?"
            raise ADE20KDataError(f"ADE20K root {root} has no {d.relative_to(root)}/ folder: expected the "
                                  f"ADEChallengeData2016 layout images/{{training,validation}}/*.jpg and "
                                  f"annotations/{{training,validation}}/*.png{hint}")
    images = {p.stem: p for p in img_dir.glob(f"*{_IMG_SUFFIX}")}
    labels = {p.stem: p for p in ann_dir.glob(f"*{_SEG_SUFFIX}")}
    if not images:
        raise ADE20KDataError(f"{img_dir} holds no *{_IMG_SUFFIX} images (mmseg's ADE20KDataset reads only .jpg)")
    missing = sorted(images.keys() - labels.keys())
    if missing:
        raise ADE20KDataError(f"{len(missing)} image(s) in {img_dir} have no annotation in {ann_dir} (expected "
                              f"<stem>{_SEG_SUFFIX}): {_names([images[s] for s in missing])}; add the label maps or "
                              f"remove those images")
    orphans = sorted(labels.keys() - images.keys())
    if orphans:
        raise ADE20KDataError(f"{len(orphans)} annotation(s) in {ann_dir} have no image in {img_dir}: "
                              f"{_names([labels[s] for s in orphans])}; a half-copied split? Restore the images or "
                              f"remove those label maps")
    return [(images[stem], labels[stem]) for stem in sorted(images)]


def _check_split(root: Path, split: str, max_check: int | None) -> int:
    pairs = pair_files(root, split)
    images = {img.stem: img for img, _ in pairs}
    labels = {lab.stem: lab for _, lab in pairs}
    stems = sorted(images)
    for stem in stems:  # headers only: cheap for all 22k files
        with _open(labels[stem], "annotation") as lab:
            if lab.mode not in ("L", "P"):
                raise ADE20KDataError(f"annotation {labels[stem]} has PIL mode {lab.mode!r}: ADE20K label maps are "
                                      f"single-channel 8-bit PNGs (mode 'L') of class ids, not colour or 16-bit "
                                      f"images; convert it to class ids 0..{NUM_CLASSES}")
            lab_size = lab.size
        with _open(images[stem], "image") as img:
            img_size = img.size
        if img_size != lab_size:
            raise ADE20KDataError(f"annotation {labels[stem]} is {lab_size[0]}x{lab_size[1]} but its image "
                                  f"{images[stem]} is {img_size[0]}x{img_size[1]}; they must match pixel for pixel")
    if max_check is not None and len(stems) > max_check:
        sample = [stems[int(i)] for i in np.linspace(0, len(stems) - 1, max_check).round()]
    else:
        sample = stems
    for stem in sample:
        path = labels[stem]
        try:
            with Image.open(path) as lab:
                values = np.asarray(lab)
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
            raise ADE20KDataError(f"annotation {path} cannot be decoded ({type(e).__name__}: {e}); it is truncated "
                                  f"or corrupt: re-extract it") from None
        top = int(values.max()) if values.size else 0
        if top > NUM_CLASSES:
            bad = sorted(int(v) for v in np.unique(values[values > NUM_CLASSES]))[:8]
            raise ADE20KDataError(f"annotation {path} holds label value(s) {bad} outside 0..{NUM_CLASSES} (0 = "
                                  f"unlabelled, 1..{NUM_CLASSES} = the ADE20K classes); fix or remove that file "
                                  f"(a colour-coded or re-indexed label map?)")
    return len(stems)


def check_ade20k(root: str | Path, max_check: int | None = None) -> dict[str, int]:
    """Check an ADEChallengeData2016 root before training; raise naming the first bad file and the fix.

    Every file is checked for pairing (each ``.jpg`` has its ``.png`` and no label map lacks its image), readable
    headers, single-channel 8-bit label maps, and equal image / label sizes. Label values (0..150) are decoded for
    every map (the default; real ADE20K's 22,210 maps take about a minute on one core), or for ``max_check`` evenly
    spaced maps per split.

    Returns:
        Number of image / label pairs per split.

    Raises:
        ADE20KDataError: a missing folder or file, an orphan, an unreadable or multi-channel map, a size mismatch,
            or a label value outside 0..150.
    """
    root = Path(root)
    if not root.is_dir():
        raise ADE20KDataError(f"ADE20K root {root} does not exist or is not a folder (give the ADEChallengeData2016 "
                              f"folder, or write a generated one with `dropbench data synth-ade20k --out DIR`)")
    if max_check is not None and max_check < 1:
        raise ValueError(f"max_check must be a positive number of label maps per split or None (all), got {max_check}")
    counts = {split: _check_split(root, split, max_check) for split in SPLITS}
    log.info("ADE20K at %s: %d training / %d validation pairs checked", root, counts["training"],
             counts["validation"])
    return counts


OFFICIAL = Official(
    {"training": 20_210, "validation": 2_000}, None,
    "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip (the SceneParsing benchmark)",
    "PATH = ADEChallengeData2016/ with images/{training,validation}/*.jpg and annotations/{training,validation}/*.png")


def _inventory(root: Path) -> Inventory:
    """The data preflight's count of an ADE20K root: the pairs of each split, from the listings."""
    if not root.is_dir():
        raise ADE20KDataError(f"ADE20K root {root} does not exist or is not a folder; expected {OFFICIAL.layout}")
    pairs = {split: pair_files(root, split) for split in SPLITS}
    files = [p for split in SPLITS for pair in pairs[split] for p in pair]

    def decode(k: int) -> None:
        for split in SPLITS:
            decode_files("ade20k", [p for pair in spread(pairs[split], k) for p in pair])

    return Inventory(root, {s: len(p) for s, p in pairs.items()}, None, len(files),
                     sum(p.stat().st_size for p in files), decode)


# the data preflight's check of ADE20K (the task registry's ``checks`` names it)
DATA_CHECKS: dict[str, DataCheck] = {"ade20k": DataCheck(_inventory, OFFICIAL, (ADE20KDataError,))}


@dataclass(frozen=True)
class _SynthClass:
    label: int  # value in the PNG: ADE20K class id + 1
    name: str
    texture: int  # index into pretrain.synth.TEXTURES


# the generated classes under ADE20K's own ids and names, one texture each
_SYNTH = (_SynthClass(3, "sky", 0), _SynthClass(1, "wall", 2), _SynthClass(4, "floor", 5), _SynthClass(10, "grass", 1),
          _SynthClass(13, "person", 4), _SynthClass(21, "car", 3))
SYNTH_CLASSES = {c.label: c.name for c in _SYNTH}
# ``realistic``: (width, height) as ADE20K's images come (most 683x512 / 512x683 or near, from 256x341 up to
# 2100x1600), and every class value 1..150
ADE20K_SIZES: tuple[tuple[int, int], ...] = ((683, 512), (512, 683), (512, 512), (640, 480), (341, 256), (256, 341),
                                             (1024, 768), (2100, 1600))
_ALL_CLASSES = tuple(_SynthClass(v, f"class_{v}", v % len(TEXTURES)) for v in range(1, NUM_CLASSES + 1))
_SCENE_SIDE = 160  # the long side the smoke recipe resizes to; textures are painted at their 6-10 px periods there


def _outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def _paint(img: np.ndarray, region: np.ndarray, cls: _SynthClass, rng: np.random.Generator, scale: float) -> None:
    """Fill ``region`` of ``img`` with ``cls``'s texture in a random colour, half-way to grey (stuff is duller)."""
    h, w = region.shape
    patch = np.zeros_like(img)
    draw_shape(patch, Shape("square", w / 2, h / 2, 2 * max(w, h), 0.0, vivid_color(rng), cls.texture), scale)
    img[region] = (0.5 * patch + 0.5 * patch.mean(axis=2, keepdims=True)).astype(np.uint8)[region]


def _scene(rng: np.random.Generator, w: int, h: int, realistic: bool = False) -> tuple[np.ndarray, np.ndarray]:
    img = np.zeros((h, w, 3), np.uint8)
    label = np.zeros((h, w), np.uint8)
    classes, scale = (_ALL_CLASSES if realistic else _SYNTH), _SCENE_SIDE / max(w, h)
    # regions: the cells of a few random seeds under a wobbly distance, so borders are irregular
    seeds = rng.uniform(0, 1, (int(rng.integers(3, 6)), 2)) * (w, h)
    yy, xx = np.mgrid[0:h, 0:w]
    wobble = 0.06 * min(w, h) * np.sin(2 * math.pi * (xx / w * rng.uniform(1, 3) + yy / h * rng.uniform(1, 3)))
    dist = np.stack([np.hypot(xx - x, yy - y) + wobble * (-1) ** k for k, (x, y) in enumerate(seeds)])
    cell = dist.argmin(axis=0)
    for k in range(len(seeds)):
        region = cell == k
        cls = classes[rng.integers(len(classes))]
        _paint(img, region, cls, rng, scale)
        label[region] = cls.label
        label[_outline(region)] = 0
    for _ in range(int(rng.integers(3, 13) if realistic else rng.integers(1, 4))):
        cls = classes[rng.integers(len(classes))]
        radius = min(w, h) * (rng.uniform(0.04, 0.2) if realistic else rng.uniform(0.15, 0.28))
        shape = Shape(SHAPES[int(rng.integers(len(SHAPES)))], rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h,
                      radius, rng.uniform(0, 2 * math.pi), vivid_color(rng), cls.texture)
        mask = draw_shape(img, shape, scale)
        label[mask] = cls.label
        label[_outline(mask)] = 0
    noisy = img.astype(np.float64) + rng.normal(0, 8, img.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8), label


def write_synth_ade20k(
    out: str | Path,
    seed: int = 0,
    train_images: int = 48,
    val_images: int = 16,
    sizes: tuple[tuple[int, int], ...] = ((160, 120), (144, 128)),
    realistic: bool = False,
) -> Path:
    """Write a small generated set in the ADEChallengeData2016 layout and return its root.

    Each scene is split into three to five regions with irregular borders, with one to three objects over them; a
    region or object is any of six classes (sky, wall, floor, grass, person, car, under their ADE20K ids: label value
    = class id + 1), each a texture in a random colour (see the module docstring). Region and object outlines are 0
    (unlabelled). Image sizes (width, height)
    are drawn from ``sizes``. ``realistic`` draws them from :data:`ADE20K_SIZES` instead, and regions and objects
    from all 150 classes (see the module docstring).
    """
    if train_images < 1 or val_images < 1:
        raise ValueError(f"need at least one training and one validation image, got {train_images} / {val_images}")
    out = Path(out)
    rng = np.random.default_rng(seed)
    counts = np.zeros(NUM_CLASSES + 1, np.int64)
    for split, n, prefix in (("training", train_images, "ADE_train"), ("validation", val_images, "ADE_val")):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shapes = ADE20K_SIZES if realistic else sizes
            w, h = shapes[int(rng.integers(len(shapes)))]
            img, label = _scene(rng, w, h, realistic)
            stem = f"{prefix}_{i + 1:08d}"
            Image.fromarray(img).save(out / "images" / split / f"{stem}{_IMG_SUFFIX}", quality=92)
            Image.fromarray(label).save(out / "annotations" / split / f"{stem}{_SEG_SUFFIX}")
            if split == "validation":
                counts += np.bincount(label.ravel(), minlength=NUM_CLASSES + 1)
    labelled = counts[1:].sum()
    classes = {c.label: c.name for c in _ALL_CLASSES} if realistic else SYNTH_CLASSES
    fractions = {classes[v]: round(float(counts[v] / labelled), 4) for v in sorted(classes)
                 if counts[v] or not realistic}
    synth_marker(out, "ade20k", classes=classes, train_images=train_images, val_images=val_images, seed=seed,
                 val_pixel_fraction=fractions, realistic=realistic)
    log.info("wrote a generated ADE20K set (%d / %d images, %d classes) to %s", train_images, val_images,
             len(classes), out)
    return out
