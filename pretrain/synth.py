"""Generated image data with learnable structure: the embedded default when no real data set is at hand.

Scenes are drawn from a few primitives (filled polygons of several shapes, each with a colour and a texture) on a
noisy gradient background. :func:`write_synth_imagenet` writes an ImageNet-layout folder whose class decides an
object's shape and colour, so a classifier can learn it; the downstream generators (``finetune.synth``) draw scenes of
several objects from the same primitives and keep their boxes, polygons and masks.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

__all__ = ["IMAGENET_SIZES", "SHAPES", "Shape", "background", "draw_shape", "synth_marker", "write_synth_imagenet"]

SHAPES = ("circle", "square", "triangle", "cross", "star", "hexagon", "diamond", "arrow")
MARKER = "DROPBENCH_GENERATED.json"
# (width, height) of ``realistic`` generated ImageNet images: ILSVRC-2012's JPEGs are mostly 500 px on the long side
# (500x375 the most common, then 375x500, 500x333, 500x500, 333x500), with a tail of larger and smaller photos
IMAGENET_SIZES: tuple[tuple[int, int], ...] = ((500, 375), (500, 375), (375, 500), (500, 333), (500, 500),
                                               (333, 500), (640, 480), (1024, 768), (250, 188))


@dataclass(frozen=True)
class Shape:
    """One object to draw: ``kind`` from :data:`SHAPES`, centre and radius in pixels, rotation in radians."""

    kind: str
    cx: float
    cy: float
    radius: float
    angle: float
    color: tuple[int, int, int]
    texture: int = 0  # 0 flat, 1 stripes, 2 dots, 3 checker

    def polygon(self) -> list[tuple[float, float]]:
        """The outline as (x, y) vertices (a circle is a 32-gon)."""
        unit = _unit_outline(self.kind)
        c, s = math.cos(self.angle), math.sin(self.angle)
        return [(self.cx + self.radius * (x * c - y * s), self.cy + self.radius * (x * s + y * c)) for x, y in unit]


def _unit_outline(kind: str) -> list[tuple[float, float]]:
    if kind == "circle":
        return [(math.cos(t), math.sin(t)) for t in np.linspace(0, 2 * math.pi, 32, endpoint=False)]
    if kind == "square":
        return [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
    if kind == "triangle":
        return [(math.cos(t), math.sin(t)) for t in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if kind == "cross":
        a, b = 0.3, 1.0
        return [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a),
                (-a, -a)]
    if kind == "star":
        return [((1.0 if i % 2 == 0 else 0.45) * math.cos(t), (1.0 if i % 2 == 0 else 0.45) * math.sin(t))
                for i, t in enumerate(np.linspace(-math.pi / 2, 1.5 * math.pi, 10, endpoint=False))]
    if kind == "hexagon":
        return [(math.cos(t), math.sin(t)) for t in np.linspace(0, 2 * math.pi, 6, endpoint=False)]
    if kind == "diamond":
        return [(0.0, -1.0), (0.6, 0.0), (0.0, 1.0), (-0.6, 0.0)]
    if kind == "arrow":
        return [(-1.0, -0.25), (0.2, -0.25), (0.2, -0.6), (1.0, 0.0), (0.2, 0.6), (0.2, 0.25), (-1.0, 0.25)]
    raise ValueError(f"unknown shape {kind!r}; choose one of {SHAPES}")


def background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A noisy two-colour gradient, HxWx3 uint8 (``size`` is (width, height))."""
    w, h = size
    c0, c1 = rng.integers(40, 216, 3), rng.integers(40, 216, 3)
    t = np.linspace(0, 1, w)[None, :, None] if rng.random() < 0.5 else np.linspace(0, 1, h)[:, None, None]
    img = c0 * (1 - t) + c1 * t + rng.normal(0, 12, (h, w, 3))
    return np.clip(np.broadcast_to(img, (h, w, 3)), 0, 255).astype(np.uint8)


def _texture(kind: int, size: tuple[int, int], color: np.ndarray, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The texture over a ``size`` (width, height) window whose top-left pixel is ``origin`` (x, y) of the image."""
    w, h = size
    x0, y0 = origin
    yy, xx = np.mgrid[y0:y0 + h, x0:x0 + w]
    if kind == 1:
        on = (xx + yy) // 3 % 2 == 0
    elif kind == 2:
        on = (xx % 5 < 2) & (yy % 5 < 2)
    elif kind == 3:
        on = (xx // 4 + yy // 4) % 2 == 0
    else:
        on = np.ones((h, w), bool)
    dark = (color * 0.45).astype(np.uint8)
    return np.where(on[..., None], color[None, None], dark[None, None]).astype(np.uint8)


def draw_shape(img: np.ndarray, shape: Shape) -> np.ndarray:
    """Paint ``shape`` into ``img`` (HxWx3 uint8, in place) and return its boolean mask."""
    h, w = img.shape[:2]
    m = Image.new("L", (w, h), 0)
    ImageDraw.Draw(m).polygon(shape.polygon(), fill=255)
    mask = np.asarray(m) > 127
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size:  # the texture is computed over the shape's bounding box only (large images stay fast)
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        inside = mask[y0:y1, x0:x1]
        tex = _texture(shape.texture, (x1 - x0, y1 - y0), np.asarray(shape.color, dtype=np.float64), (x0, y0))
        img[y0:y1, x0:x1][inside] = tex[inside]
    return mask


def synth_marker(root: Path, kind: str, **info) -> None:
    """Mark a folder as generated (readers of real data sets may then skip checksums meant for real files)."""
    (root / MARKER).write_text(json.dumps({"generator": "dropbench", "kind": kind, **info}, indent=2))


def _class_look(c: int) -> tuple[str, tuple[int, int, int]]:
    kind = SHAPES[c % len(SHAPES)]
    hue = (c // len(SHAPES)) * 0.37 % 1.0 + (c % len(SHAPES)) * 0.11
    r, g, b = (int(127 + 110 * math.cos(2 * math.pi * (hue + k / 3))) for k in range(3))
    return kind, (r, g, b)


def write_synth_imagenet(
    out: str | Path,
    num_classes: int = 10,
    train_per_class: int = 100,
    val_per_class: int = 20,
    size: int = 64,
    seed: int = 0,
    progress: bool = True,
    realistic: bool = False,
) -> Path:
    """Write an ImageNet-layout set (``train/<wnid>/*.JPEG``, ``val/<wnid>/*.JPEG``) of generated images.

    Each class is one shape in one colour, drawn at a random place, size and angle over a random background, with a
    second, smaller distractor object of a random other class half of the time: learnable, not trivial.
    ``realistic`` draws each image's size from :data:`IMAGENET_SIZES` (the real set's JPEG sizes) instead of
    ``size`` x ``size`` (for rehearsing a recipe's real input pipeline).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    out = Path(out)
    rng = np.random.default_rng(seed)
    wnids = [f"n{9000000 + c:08d}" for c in range(num_classes)]
    jobs = [(split, c, i) for split, n in (("train", train_per_class), ("val", val_per_class))
            for c in range(num_classes) for i in range(n)]
    for split, c, i in tqdm(jobs, desc="synth-imagenet", disable=not progress):
        wh = IMAGENET_SIZES[int(rng.integers(len(IMAGENET_SIZES)))] if realistic else (size, size)
        img, side = background(rng, wh), min(wh)
        if rng.random() < 0.5:
            other = int(rng.integers(num_classes))
            kind, color = _class_look(other)
            draw_shape(img, Shape(kind, *rng.uniform(0.1, 0.9, 2) * wh, side * rng.uniform(0.08, 0.14),
                                  rng.uniform(0, 2 * math.pi), color))
        kind, color = _class_look(c)
        jitter = np.clip(np.array(color) + rng.normal(0, 12, 3), 0, 255).astype(int)
        draw_shape(img, Shape(kind, *rng.uniform(0.3, 0.7, 2) * wh, side * rng.uniform(0.18, 0.32),
                              rng.uniform(0, 2 * math.pi), tuple(int(v) for v in jitter)))
        folder = out / split / wnids[c]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{wnids[c]}_{i:05d}.JPEG", quality=92)
    synth_marker(out, "imagenet", classes=num_classes, train_per_class=train_per_class, val_per_class=val_per_class,
                 size="imagenet" if realistic else size, seed=seed)
    return out
