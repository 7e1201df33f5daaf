"""Generated image data with learnable structure: the embedded default when no real data set is at hand.

Every generated set shares one visual vocabulary: the :data:`TEXTURES` (flat, diagonal / horizontal / vertical
stripes, dots, checker) painted on filled polygons of a random shape in a random vivid colour, over a muted noisy
background. :func:`write_synth_imagenet` writes an ImageNet-layout folder whose class is the object's texture; the
downstream generators (COCO categories, ADE20K classes, the classification sets' classes) recombine the same textures
into scenes, regions and new label sets. Colour and shape carry no label anywhere, so an untrained network's features
(which separate colours well) do not solve the downstream tasks: what pretraining learned about textures does. That
is what lets the embedded default measure transfer (a pretrained row against its random-init row).

Texture periods are 6 to 10 px at the scale a recipe feeds the network (``scale`` maps image pixels to those units):
ImageNet images at 48 px, COCO scenes resized to 128 px, ADE20K scenes at about 160 x 128, classification images at
48-64 px.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

__all__ = ["IMAGENET_SIZES", "SHAPES", "TEXTURES", "TEXTURE_SIDE", "Shape", "background", "class_look", "draw_shape",
           "muted_background", "synth_marker", "vivid_color", "write_synth_imagenet"]

SHAPES = ("circle", "square", "triangle", "cross", "star", "hexagon", "diamond", "arrow")
# the label-carrying vocabulary of every generated set (index = ``Shape.texture``)
TEXTURES = ("flat", "diagonal stripes", "horizontal stripes", "vertical stripes", "dots", "checker")
MARKER = "DROPBENCH_GENERATED.json"
TEXTURE_SIDE = 48  # an image side at which texture periods are 6-10 px (the smoke pretraining input)
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
    texture: int = 0  # index into TEXTURES

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


def muted_background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """:func:`background` pulled towards grey (30 % colour), so that a vivid object stands out from it."""
    img = background(rng, size)
    return (0.3 * img + 0.7 * img.mean(axis=2, keepdims=True)).astype(np.uint8)


def vivid_color(rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated colour of a uniformly random hue."""
    hue = rng.random()
    return tuple(int(127 + 110 * math.cos(2 * math.pi * (hue + k / 3))) for k in range(3))


def _texture(kind: int, size: tuple[int, int], color: np.ndarray, origin: tuple[int, int] = (0, 0),
             scale: float = 1.0) -> np.ndarray:
    """Texture ``kind`` over a ``size`` (width, height) window whose top-left pixel is ``origin`` (x, y) of the image;
    ``scale`` texture units per image pixel. The "off" parts are the colour at 35 % brightness."""
    if not 0 <= kind < len(TEXTURES):
        raise ValueError(f"texture must be 0..{len(TEXTURES) - 1} (TEXTURES), got {kind}")
    w, h = size
    x0, y0 = origin
    yy, xx = np.mgrid[y0:y0 + h, x0:x0 + w] * scale
    on = (np.ones((h, w), bool), (xx + yy) // 4 % 2 == 0, yy // 3 % 2 == 0, xx // 3 % 2 == 0,
          (xx % 6 < 3) & (yy % 6 < 3), (xx // 5 + yy // 5) % 2 == 0)[kind]
    dark = color * 0.35
    return np.where(on[..., None], color[None, None], dark[None, None]).astype(np.uint8)


def draw_shape(img: np.ndarray, shape: Shape, scale: float = 1.0) -> np.ndarray:
    """Paint ``shape`` into ``img`` (HxWx3 uint8, in place) and return its boolean mask; ``scale``: texture units per
    image pixel (``TEXTURE_SIDE / side`` paints the texture as it looks at that side)."""
    h, w = img.shape[:2]
    m = Image.new("L", (w, h), 0)
    ImageDraw.Draw(m).polygon(shape.polygon(), fill=255)
    mask = np.asarray(m) > 127
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size:  # the texture is computed over the shape's bounding box only (large images stay fast)
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        inside = mask[y0:y1, x0:x1]
        tex = _texture(shape.texture, (x1 - x0, y1 - y0), np.asarray(shape.color, dtype=np.float64), (x0, y0),
                       scale)
        img[y0:y1, x0:x1][inside] = tex[inside]
    return mask


def synth_marker(root: Path, kind: str, **info) -> None:
    """Mark a folder as generated (readers of real data sets may then skip checksums meant for real files)."""
    (root / MARKER).write_text(json.dumps({"generator": "dropbench", "kind": kind, **info}, indent=2))


def class_look(c: int, num_classes: int) -> tuple[int, str | None]:
    """Class ``c``'s (texture, shape) in a set of ``num_classes``: its texture is ``TEXTURES[c % 6]``; the shape is
    free (None: drawn at random) while there are no more classes than textures, else it tells apart the classes that
    share a texture (``SHAPES[c // 6]``, much harder to learn)."""
    return c % len(TEXTURES), (SHAPES[c // len(TEXTURES) % len(SHAPES)] if num_classes > len(TEXTURES) else None)


def write_synth_imagenet(
    out: str | Path,
    num_classes: int = 6,
    train_per_class: int = 100,
    val_per_class: int = 20,
    size: int = 48,
    seed: int = 0,
    progress: bool = True,
    realistic: bool = False,
) -> Path:
    """Write an ImageNet-layout set (``train/<wnid>/*.JPEG``, ``val/<wnid>/*.JPEG``) of generated images.

    Each image holds one large object (a random polygon in a random vivid colour, at a random place and angle, over
    a muted background) whose texture is its class (:func:`class_look`): learnable from the image, not from colour or
    shape. Texture periods are set for the image's side (48 px units). ``realistic`` draws each image's size from
    :data:`IMAGENET_SIZES` (the real set's JPEG sizes) instead of ``size`` x ``size`` (for rehearsing a recipe's real
    input pipeline).
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
        img, side = muted_background(rng, wh), min(wh)
        texture, kind = class_look(c, num_classes)
        shape = Shape(kind or SHAPES[int(rng.integers(len(SHAPES)))], *rng.uniform(0.35, 0.65, 2) * wh,
                      side * rng.uniform(0.33, 0.48), rng.uniform(0, 2 * math.pi), vivid_color(rng), texture)
        draw_shape(img, shape, TEXTURE_SIDE / side)
        folder = out / split / wnids[c]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{wnids[c]}_{i:05d}.JPEG", quality=92)
    synth_marker(out, "imagenet", classes=num_classes, train_per_class=train_per_class, val_per_class=val_per_class,
                 size="imagenet" if realistic else size, seed=seed)
    return out
