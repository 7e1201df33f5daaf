"""Shared fixtures: small generated data sets, made once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "2")
torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def synth_imagenet(tmp_path_factory) -> Path:
    """A tiny generated ImageNet-layout set: 4 classes, 24 train / 8 val images each, 32 px."""
    from dropbench.pretrain.synth import write_synth_imagenet

    return write_synth_imagenet(tmp_path_factory.mktemp("imagenet"), num_classes=4, train_per_class=24,
                                val_per_class=8, size=32, seed=0, progress=False)
