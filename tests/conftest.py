"""Shared fixtures: small generated data sets, made once per test session."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "2")
torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[1]


def pytest_report_header(config) -> str:
    """Free disk and memory where the tests write: a full disk shows up as errors in every test after it."""
    import shutil
    import tempfile

    tmp = tempfile.gettempdir()
    free = shutil.disk_usage(tmp).free / 2**30
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") / 2**30
    return f"dropbench: {free:.1f} GiB free in {tmp}, {mem:.1f} GiB memory free, {os.cpu_count()} CPUs"


@pytest.fixture(scope="session", autouse=True)
def feature_cache(tmp_path_factory) -> Path:
    """The probe's feature cache of every test and of the commands they start: a fresh folder, never ~/.cache."""
    folder = tmp_path_factory.mktemp("dropbench-cache")
    os.environ["DROPBENCH_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def synth_imagenet(tmp_path_factory) -> Path:
    """A tiny generated ImageNet-layout set: 4 classes, 24 train / 8 val images each, 32 px."""
    from dropbench.pretrain.synth import write_synth_imagenet

    return write_synth_imagenet(tmp_path_factory.mktemp("imagenet"), num_classes=4, train_per_class=24,
                                val_per_class=8, size=32, seed=0, progress=False)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_thread")``): on a shared
    2-core machine, oversubscribed threads stall every op (a Mask R-CNN step measured 13 s with two threads beside
    other jobs, 0.5 s with one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def paper_checkpoint(tmp_path_factory) -> Callable[..., Path]:
    """Factory: ``paper_checkpoint(model, num_classes=10, epoch=1, **pretrain)`` is a dropbench-layout checkpoint of a
    paper model (weights seeded with 0, ``pretrain`` metadata ``{"model": model, **pretrain}``), written once per
    session for each set of arguments."""
    made: dict[tuple, Path] = {}

    def make(model: str, num_classes: int = 10, epoch: int = 1, **pretrain: Any) -> Path:
        key = (model, num_classes, epoch, json.dumps(pretrain, sort_keys=True))
        if key not in made:
            from dropbench.pretrain.models import create_paper_model

            torch.manual_seed(0)
            path = tmp_path_factory.mktemp("ckpt") / f"{model}.pth"
            torch.save({"model": create_paper_model(model, num_classes=num_classes).state_dict(), "epoch": epoch,
                        "pretrain": {"model": model, **pretrain}}, path)
            made[key] = path
        return made[key]

    return make


@pytest.fixture(scope="session")
def pretrained_vit_tiny(tmp_path_factory) -> Path:
    """A ViT-T checkpoint pretrained with the smoke recipe on generated textures (6 classes x 100 images, 48 px, 4
    epochs: ~70 % top-1, about 15 s): the generated downstream sets' classes are textures too, which untrained weights
    do not learn in a short fine-tune, so tests that ask a fine-tune to beat chance start from this."""
    from dropbench.pretrain.synth import write_synth_imagenet
    from dropbench.pretrain.train import build_config, get_args_parser, run

    base = tmp_path_factory.mktemp("pretrained")
    data = write_synth_imagenet(base / "data", num_classes=6, train_per_class=100, val_per_class=10, size=48,
                                progress=False)
    args = get_args_parser().parse_args(["--config", "smoke", "--model", "vit_tiny", "--data", str(data), "--out",
                                         str(base / "run"), "--epochs", "4", "--cfg-options", "data.num_workers=0",
                                         "runtime.progress=False"])
    run(build_config(args), args.out)
    return base / "run" / "checkpoint.pth"


@pytest.fixture(scope="session")
def synth_cls(tmp_path_factory) -> Callable[..., Path]:
    """Factory: ``synth_cls(dataset, num_classes=4, train_per_class=16, test_per_class=8)`` is the root of a generated
    classification set in that data set's format (``write_synth_cls``, seed 0), written once per session for each
    set of arguments."""
    made: dict[tuple, Path] = {}

    def make(dataset: str, num_classes: int = 4, train_per_class: int = 16, test_per_class: int = 8) -> Path:
        key = (dataset, num_classes, train_per_class, test_per_class)
        if key not in made:
            from dropbench.finetune.datasets.cls import write_synth_cls

            made[key] = write_synth_cls(tmp_path_factory.mktemp(f"cls-{dataset}"), seed=0, dataset=dataset,
                                        num_classes=num_classes, train_per_class=train_per_class,
                                        test_per_class=test_per_class)
        return made[key]

    return make


@pytest.fixture(scope="session")
def timm_hub(tmp_path_factory) -> Callable[..., Path]:
    """Factory: ``timm_hub(architecture, input_size=64, num_classes=10, **model_args)`` is a timm hub folder
    (``model.safetensors`` + ``config.json``, written by timm's ``save_for_hf``) of a randomly initialised model
    (seed 0), its ``pretrained_cfg`` saying it was pretrained at ``input_size`` px; written once per session."""
    made: dict[tuple, Path] = {}

    def make(architecture: str, input_size: int = 64, num_classes: int = 10, **model_args: Any) -> Path:
        key = (architecture, input_size, num_classes, json.dumps(model_args, sort_keys=True))
        if key not in made:
            import timm
            from timm.models import save_for_hf

            torch.manual_seed(0)
            model = timm.create_model(architecture, pretrained=False, num_classes=num_classes, **model_args)
            if model.pretrained_cfg.get("fixed_input_size"):  # ViT, Swin: built for the pretraining size
                model = timm.create_model(architecture, pretrained=False, num_classes=num_classes,
                                          img_size=input_size, **model_args)
            folder = tmp_path_factory.mktemp("hub") / architecture
            save_for_hf(model, folder, safe_serialization=True, data_config={"input_size": (3, input_size, input_size)})
            made[key] = folder
        return made[key]

    return make


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory) -> Path:
    """The smallest generated COCO root: 2 train / 1 val images (one detection step, one evaluation)."""
    from dropbench.finetune.datasets.coco import write_synth_coco

    return write_synth_coco(tmp_path_factory.mktemp("tiny_coco"), seed=1, num_train=2, num_val=1)


@pytest.fixture(scope="session")
def tiny_ade(tmp_path_factory) -> Path:
    """The smallest generated ADE20K root: 2 training / 1 validation scenes."""
    from dropbench.finetune.datasets.ade20k import write_synth_ade20k

    return write_synth_ade20k(tmp_path_factory.mktemp("tiny_ade"), seed=1, train_images=2, val_images=1)


@pytest.fixture(scope="session")
def tiny_flowers(tmp_path_factory) -> Path:
    """A generated Flowers-102 root in its own format: 2 classes, 4 train / 2 test images per class."""
    from dropbench.finetune.datasets.cls import write_synth_cls

    return write_synth_cls(tmp_path_factory.mktemp("tiny_flowers"), seed=0, dataset="flowers102", num_classes=2,
                           train_per_class=4, test_per_class=2)
