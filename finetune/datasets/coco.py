"""COCO detection / instance segmentation data: a layout and annotation check, and a small generated stand-in.

* :func:`check_coco` validates a COCO root (``train2017/``, ``val2017/``, ``annotations/instances_<split>.json``)
  before any training starts: every problem mmdet would otherwise hit mid-run (or silently skip) is reported with the
  file, the offending image / annotation id and the fix, as a :class:`CocoFormatError`.
* :data:`DATA_CHECKS` is what the data preflight knows of COCO 2017: its official split sizes, source and layout, and
  a count of a root from :func:`check_coco` and the image folders' listings.
* :func:`write_synth_coco` writes a small COCO-layout set of generated scenes (a few shape categories, several objects
  per image, boxes and polygon masks) on which Mask R-CNN learns within minutes on a CPU.

Neither imports mmdet: the check runs before the engine is started.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from dropbench.pretrain.inventory import DataCheck, Inventory, Official, decode_files, file_sizes, spread
from dropbench.pretrain.io import atomic_write
from dropbench.pretrain.synth import SHAPES, TEXTURES, Shape, draw_shape, muted_background, synth_marker, vivid_color
from PIL import Image

__all__ = ["DATA_CHECKS", "OFFICIAL", "SYNTH_CATEGORIES", "CocoFormatError", "CocoSplit", "check_coco",
           "write_synth_coco"]

SPLITS = ("train2017", "val2017")
MAX_REPORTED = 5
_BOX_TOLERANCE = 1.0  # pixels a box may exceed the image by (rounding in real annotation files)

# generated categories: the shared texture vocabulary (category i is texture i of pretrain.synth.TEXTURES; any shape,
# any colour), so that a detector's classification rests on what the backbone knows of textures
SYNTH_CATEGORIES: tuple[str, ...] = TEXTURES
# the side (px) the smoke detection recipe resizes scenes to; textures are painted at their 6-10 px periods there
_SCENE_SIDE = 96


# ``realistic``: COCO 2017's 80 categories under their own (non-contiguous) ids, and its common image sizes
COCO_CATEGORIES: tuple[tuple[int, str], ...] = tuple(zip(
    (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35,
     36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64,
     65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90),
    ("person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
     "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant",
     "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
     "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
     "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli",
     "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet",
     "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
     "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush"), strict=True))
COCO_SIZES: tuple[tuple[int, int], ...] = ((640, 480), (640, 427), (427, 640), (480, 640), (640, 425), (500, 375))
COCO_MAX_OBJECTS = 50


class CocoFormatError(ValueError):
    """A COCO root or annotation file that mmdet cannot train or evaluate on as it is."""


@dataclass(frozen=True)
class CocoSplit:
    """What :func:`check_coco` found in one split.

    Attributes:
        split: ``train2017`` or ``val2017``.
        ann_file: the annotation file.
        img_dir: the image folder.
        num_images: images listed.
        num_annotations: object annotations listed.
        classes: category names in the file's category order (mmdet's label order).
        category_ids: the matching category ids.
    """

    split: str
    ann_file: Path
    img_dir: Path
    num_images: int
    num_annotations: int
    classes: tuple[str, ...]
    category_ids: tuple[int, ...] = field(default=())


def _ann_file(root: Path, split: str) -> Path:
    return root / "annotations" / f"instances_{split}.json"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _raise_problems(path: Path, problems: list[str], fix: str) -> None:
    if problems:
        shown = "\n  ".join(problems[:MAX_REPORTED])
        more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        raise CocoFormatError(f"{path}: {len(problems)} problem(s):\n  {shown}{more}\n{fix}")


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise CocoFormatError(f"annotation file {path} does not exist; a COCO root holds "
                              f"annotations/instances_{{train,val}}2017.json (or run `dropbench data synth-coco`)")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CocoFormatError(f"annotation file {path} is not valid JSON ({e}); re-download or regenerate it") from None
    if not isinstance(data, dict):
        raise CocoFormatError(f"annotation file {path} holds a JSON {type(data).__name__}, not a COCO object with "
                              f"'images', 'annotations' and 'categories'")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise CocoFormatError(f"annotation file {path} lacks the list(s) {missing}; a COCO instances file has "
                              f"'images', 'annotations' and 'categories'")
    return data


def _check_categories(path: Path, cats: list) -> dict[int, str]:
    problems, out, names = [], {}, set()
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or not isinstance(c.get("name"), str):
            problems.append(f"categories[{i}] needs an integer 'id' and a string 'name', got {c!r:.80}")
        elif c["id"] in out:
            problems.append(f"category id {c['id']} is listed twice")
        elif c["name"] in names:
            problems.append(f"category name {c['name']!r} is used by two ids (mmdet maps classes by name)")
        else:
            out[c["id"]] = c["name"]
            names.add(c["name"])
    if not cats:
        problems.append("no categories")
    _raise_problems(path, problems, "Fix: give every category a unique integer 'id' and a unique 'name'.")
    return out


def _check_images(path: Path, images: list, img_dir: Path) -> dict[int, tuple[float, float]]:
    problems, sizes = [], {}
    try:
        present = set(os.listdir(img_dir))
    except OSError:
        present = set()
    for i, im in enumerate(images):
        if not isinstance(im, dict):
            problems.append(f"images[{i}] is not an object")
            continue
        missing = [k for k in ("id", "file_name", "width", "height") if k not in im]
        if missing:
            problems.append(f"image {im.get('id', f'at index {i}')} lacks {missing}")
            continue
        iid = im["id"]
        if not isinstance(iid, int):
            problems.append(f"image at index {i} has a non-integer id {iid!r}")
        elif iid in sizes:
            problems.append(f"image id {iid} is listed twice")
        elif not (_is_number(im["width"]) and _is_number(im["height"]) and im["width"] > 0 and im["height"] > 0):
            problems.append(f"image {iid} has an invalid size {im['width']!r} x {im['height']!r}")
        elif im["file_name"] not in present and not (img_dir / im["file_name"]).is_file():
            problems.append(f"image {iid}: file {img_dir / im['file_name']} does not exist")
        else:
            sizes[iid] = (float(im["width"]), float(im["height"]))
    _raise_problems(path, problems, f"Fix: every image needs a unique integer 'id', 'file_name' (a file in "
                                    f"{img_dir}), 'width' and 'height'.")
    return sizes


def _check_segmentation(seg: Any) -> str | None:
    if isinstance(seg, list):
        if not seg:
            return "an empty polygon list"
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2 or not all(_is_number(v) for v in poly):
                return "a polygon that is not a flat list of >= 3 (x, y) pairs"
        return None
    if isinstance(seg, dict):
        return None if {"counts", "size"} <= set(seg) else "an RLE without 'counts' and 'size'"
    return f"a segmentation of type {type(seg).__name__}"


def _check_annotations(path: Path, anns: list, sizes: dict[int, tuple[float, float]], cats: dict[int, str],
                       require_masks: bool) -> int:
    problems, seen = [], set()
    keys = ("id", "image_id", "category_id", "bbox", "area") + (("segmentation",) if require_masks else ())
    tol = _BOX_TOLERANCE
    for i, a in enumerate(anns):
        if not isinstance(a, dict):
            problems.append(f"annotations[{i}] is not an object")
            continue
        aid = a.get("id", f"at index {i}")
        missing = [k for k in keys if k not in a]
        if missing:
            problems.append(f"annotation {aid} (image {a.get('image_id')}) lacks {missing}")
            continue
        if aid in seen:
            problems.append(f"annotation id {aid} is listed twice")
            continue
        seen.add(aid)
        if a["image_id"] not in sizes:
            problems.append(f"annotation {aid} refers to unknown image id {a['image_id']!r}")
            continue
        if a["category_id"] not in cats:
            problems.append(f"annotation {aid} (image {a['image_id']}) has unknown category id {a['category_id']!r} "
                            f"(known: {sorted(cats)})")
            continue
        box = a["bbox"]
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
            problems.append(f"annotation {aid} (image {a['image_id']}): bbox {box!r} is not [x, y, w, h]")
            continue
        x, y, w, h = box
        iw, ih = sizes[a["image_id"]]
        if w < 0 or h < 0:
            problems.append(f"annotation {aid} (image {a['image_id']}): bbox {box} has a negative width or height")
        elif x < -tol or y < -tol or x + w > iw + tol or y + h > ih + tol:
            problems.append(f"annotation {aid} (image {a['image_id']}): bbox {box} lies outside the "
                            f"{iw:g} x {ih:g} image")
        elif not _is_number(a["area"]) or a["area"] < 0:
            problems.append(f"annotation {aid} (image {a['image_id']}): area {a['area']!r} is not a number >= 0")
        elif require_masks and (bad := _check_segmentation(a["segmentation"])):
            problems.append(f"annotation {aid} (image {a['image_id']}): segmentation is {bad}")
    _raise_problems(path, problems, "Fix: each annotation needs a unique 'id', an existing 'image_id' and "
                                    "'category_id', 'bbox' [x, y, w, h] inside its image, 'area' and (for masks) a "
                                    "polygon or RLE 'segmentation'.")
    return len(anns)


def check_coco(root: str | os.PathLike, splits: tuple[str, ...] = SPLITS, require_masks: bool = True
               ) -> dict[str, CocoSplit]:
    """Check a COCO root and its annotation files before training.

    Args:
        root: folder holding ``<split>/`` image folders and ``annotations/instances_<split>.json``.
        splits: which splits to check (all must share one category list).
        require_masks: every annotation must carry a ``segmentation`` (instance segmentation).

    Returns:
        Split name -> :class:`CocoSplit`.

    Raises:
        CocoFormatError: a missing folder or file, a non-JSON file, missing keys, duplicate ids, boxes outside their
            image, unknown image or category ids, image files that do not exist, or categories that differ between
            splits; the message names the file, the ids and the fix.
    """
    root = Path(root)
    if not root.is_dir():
        raise CocoFormatError(f"COCO root {root} does not exist (or is not a folder); give the folder holding "
                              f"train2017/, val2017/ and annotations/ (or run `dropbench data synth-coco --out DIR`)")
    out: dict[str, CocoSplit] = {}
    for split in splits:
        img_dir, path = root / split, _ann_file(root, split)
        if not img_dir.is_dir():
            raise CocoFormatError(f"image folder {img_dir} does not exist; a COCO root holds {', '.join(SPLITS)}")
        data = _load_json(path)
        cats = _check_categories(path, data["categories"])
        sizes = _check_images(path, data["images"], img_dir)
        n_anns = _check_annotations(path, data["annotations"], sizes, cats, require_masks)
        out[split] = CocoSplit(split, path, img_dir, len(sizes), n_anns, tuple(cats.values()), tuple(cats))
    first = next(iter(out.values()), None)
    for s in out.values():
        if (s.category_ids, s.classes) != (first.category_ids, first.classes):
            raise CocoFormatError(f"{s.ann_file} and {first.ann_file} list different categories "
                                  f"({dict(zip(s.category_ids, s.classes))} vs "
                                  f"{dict(zip(first.category_ids, first.classes))}); every split must share one "
                                  f"category list, in the same order")
    return out


OFFICIAL = Official(
    {"train2017": 118_287, "val2017": 5_000}, 80,
    "https://cocodataset.org/#download (2017 Train images, 2017 Val images, 2017 Train/Val annotations)",
    "PATH/train2017/*.jpg, PATH/val2017/*.jpg, PATH/annotations/instances_{train,val}2017.json")


def _inventory(root: Path) -> Inventory:
    """The data preflight's count of a COCO root: :func:`check_coco`'s, and the image folders' listings."""
    splits = check_coco(root)
    n_files = n_bytes = 0
    listed: dict[str, list[Path]] = {}
    for split in SPLITS:
        sizes = file_sizes(root / split)
        n_files += len(sizes) + 1
        n_bytes += sum(sizes.values()) + splits[split].ann_file.stat().st_size
        listed[split] = [root / split / name for name in sorted(sizes)]

    def decode(k: int) -> None:
        for split in SPLITS:
            decode_files("coco", spread(listed[split], k))

    first = splits[SPLITS[0]]
    return Inventory(root, {s: splits[s].num_images for s in SPLITS}, len(first.classes), n_files, n_bytes, decode)


# the data preflight's check of COCO (the task registry's ``checks`` names it)
DATA_CHECKS: dict[str, DataCheck] = {"coco": DataCheck(_inventory, OFFICIAL, (CocoFormatError,))}


def _place(rng: np.random.Generator, size: tuple[int, int], placed: list[tuple[float, float, float]],
           r_range: tuple[float, float]) -> tuple[float, float, float] | None:
    """A centre and radius inside the image that overlaps no placed object (None after a few tries)."""
    w, h = size
    for _ in range(30):
        r = rng.uniform(*r_range)
        if 2 * r >= min(w, h):
            continue
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        if all(math.hypot(cx - x, cy - y) > r + q + 2 for x, y, q in placed):
            return cx, cy, r
    return None


def _scene(rng: np.random.Generator, size: tuple[int, int], max_objects: int, num_categories: int,
           r_range: tuple[float, float] = (0.12, 0.26), min_objects: int = 2,
           squares: bool = False) -> tuple[np.ndarray, list[dict]]:
    img = muted_background(rng, size)
    w, h = size
    r_range = (r_range[0] * min(w, h), r_range[1] * min(w, h))
    objects: list[dict] = []
    placed: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(min_objects, max_objects + 1))):
        spot = _place(rng, size, placed, r_range)
        if spot is None:
            continue
        placed.append(spot)
        label = int(rng.integers(num_categories))
        if squares:
            kind, angle = "square", 0.0
        else:
            kind, angle = SHAPES[int(rng.integers(len(SHAPES)))], rng.uniform(0, 2 * math.pi)
        shape = Shape(kind, *spot, angle, vivid_color(rng), texture=label % len(TEXTURES))
        mask = draw_shape(img, shape, _SCENE_SIDE / max(w, h))
        if mask.sum() < 16:
            continue
        poly = [(min(max(x, 0.0), w), min(max(y, 0.0), h)) for x, y in shape.polygon()]
        xs, ys = [p[0] for p in poly], [p[1] for p in poly]
        box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        objects.append({"category_id": label + 1, "bbox": [round(v, 2) for v in box], "area": float(mask.sum()),
                        "segmentation": [[round(v, 2) for p in poly for v in p]], "iscrowd": 0})
    return img, objects


def write_synth_coco(
    out: str | os.PathLike,
    seed: int = 0,
    num_train: int = 64,
    num_val: int = 20,
    sizes: tuple[int, ...] = (128, 160, 192),
    max_objects: int = 4,
    realistic: bool = False,
    radius: tuple[float, float] = (0.12, 0.26),
    squares: bool = False,
) -> Path:
    """Write a small COCO-layout set of generated scenes.

    Each image (sides drawn from ``sizes``) holds 2 to ``max_objects`` non-overlapping objects of the
    :data:`SYNTH_CATEGORIES`: a category is a texture (any shape, any vivid colour, textures painted as they look at
    96 px, the side the smoke recipe resizes to), so a detector classifies what its backbone knows of textures.
    ``radius`` bounds the objects' radii (fractions of the image's short side); ``squares`` draws axis-aligned squares
    only (a box is then its object: localisation is easy, and AP turns on telling the textures apart, which is what
    pretraining changes; the smoke preset's choice). Boxes are tight around the polygons, areas are the painted pixel
    counts, masks are polygons. ``realistic`` shapes the set like COCO 2017 instead (for rehearsing a recipe): its 80
    categories under their real ids (:data:`COCO_CATEGORIES`), its image sizes (:data:`COCO_SIZES`: 640x480,
    427x640, ...) and 1 to :data:`COCO_MAX_OBJECTS` objects per image, from small to large; ``sizes`` and
    ``max_objects`` are then unused.

    Returns:
        The root, with ``train2017/``, ``val2017/`` and ``annotations/instances_{train,val}2017.json``.
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(f"num_train and num_val must be >= 1, got {num_train} and {num_val}")
    if max_objects < 2:
        raise ValueError(f"max_objects must be >= 2, got {max_objects}")
    if not 0 < radius[0] <= radius[1] < 0.5:
        raise ValueError(f"radius must be (low, high) with 0 < low <= high < 0.5 (fractions of the short side: an "
                         f"object must fit in the image), got {tuple(radius)}")
    root = Path(out)
    rng = np.random.default_rng(seed)
    if realistic:
        names, ids = [name for _, name in COCO_CATEGORIES], [cid for cid, _ in COCO_CATEGORIES]
    else:
        names, ids = list(SYNTH_CATEGORIES), list(range(1, len(SYNTH_CATEGORIES) + 1))
    categories = [{"id": cid, "name": name, "supercategory": "texture"} for cid, name in zip(ids, names, strict=True)]
    image_id, ann_id = 0, 0
    for split, n in (("train2017", num_train), ("val2017", num_val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for _ in range(n):
            image_id += 1
            if realistic:
                w, h = COCO_SIZES[int(rng.integers(len(COCO_SIZES)))]
                img, objects = _scene(rng, (w, h), COCO_MAX_OBJECTS, len(names), (0.02, 0.2), 1)
            else:
                w, h = int(rng.choice(sizes)), int(rng.choice(sizes))
                img, objects = _scene(rng, (w, h), max_objects, len(names), radius, squares=squares)
            name = f"{image_id:012d}.jpg"
            Image.fromarray(img).save(root / split / name, quality=92)
            images.append({"id": image_id, "file_name": name, "width": w, "height": h})
            for obj in objects:
                ann_id += 1
                annotations.append({"id": ann_id, "image_id": image_id, **obj,
                                    "category_id": ids[obj["category_id"] - 1]})
        path = _ann_file(root, split)
        atomic_write(path, json.dumps({"info": {"description": "dropbench generated scenes", "seed": seed},
                                       "images": images, "annotations": annotations, "categories": categories}))
    synth_marker(root, "coco", train=num_train, val=num_val, categories=len(categories), seed=seed,
                 realistic=realistic)
    return root
