"""The recipes' data pipeline on real images: every augmentation they can draw must run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dropbench.pretrain.config import load_config, resolve_config
from dropbench.pretrain.data import build_transforms
from PIL import Image
from timm.data.auto_augment import AugmentOp, rand_augment_transform


def _image(seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8))


@pytest.mark.parametrize("magnitude", [0, 5, 10])
def test_every_randaugment_op_of_the_recipes_runs_at_any_magnitude(magnitude):
    """rand-m9-mstd0.5-inc1 draws magnitudes up to 10, where timm posterizes to 0 bits (Pillow 13 refuses that)."""
    hparams = {"translate_const": 100, "img_mean": (124, 116, 104)}
    names = [op.name for op in rand_augment_transform("rand-m9-mstd0.5-inc1", hparams).ops]
    assert "PosterizeIncreasing" in names
    for name in names:
        op = AugmentOp(name, prob=1.0, magnitude=magnitude, hparams=hparams)
        out = op(_image())
        assert out.size == (64, 48), name


@pytest.mark.parametrize("recipe", ["basic", "improved"])
def test_paper_recipe_train_transform_runs(recipe):
    cfg = load_config(resolve_config("pretrain", recipe))
    assert cfg.augment.auto_augment == "rand-m9-mstd0.5-inc1"
    train, evaluate = build_transforms(dict(cfg.data, input_size=32), cfg.augment)
    torch.manual_seed(0)
    for i in range(200):
        x = train(_image(i))
        assert x.shape == (3, 32, 32) and torch.isfinite(x).all()
    assert evaluate(_image()).shape == (3, 32, 32)
