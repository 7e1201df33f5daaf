"""Image-classification data: ImageNet-layout folders, timm transforms, and a resumable, seeded sampling order.

Augmentation randomness is a pure function of (seed, epoch, sample index): :class:`SeededDataset` reseeds Python,
numpy and torch before transforming each sample, and :class:`ResumableSampler` yields ``(index, epoch)`` pairs in an
order fixed by (seed, epoch) that can start part-way through an epoch. A run that is killed and resumed therefore sees
exactly the images, crops and flips an uninterrupted run sees, whatever the number of loader workers.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dropbench.pretrain.inventory import (
    GETTING_THE_DATA,
    DataCheck,
    DataLayoutError,
    Inventory,
    Official,
    decode_files,
    file_sizes,
    spread,
)
from dropbench.pretrain.stop import shield_worker, worker_context
from timm.data import create_transform, resolve_data_config
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

__all__ = [
    "IMAGENET_CHECK",
    "PRETRAIN_DATASET",
    "DataLayoutError",
    "ResumableSampler",
    "SeededDataset",
    "build_imagenet",
    "build_transforms",
    "check_imagefolder",
    "eval_loader",
    "imagefolder_inventory",
    "train_loader",
]

log = logging.getLogger(__name__)
PRETRAIN_DATASET = "imagenet"  # the pretraining set's name: its data root, its runs' results, the data preflight


def check_imagefolder(root: str | Path, splits: Sequence[str] = ("train", "val"), hint: str = "") -> list[str]:
    """Check an ImageNet-layout root (``<split>/<class>/<image>``) and return its class names.

    Raises:
        DataLayoutError: a missing root or split, a split without class folders, a class without images, or
            splits whose classes differ.
    """
    root = Path(root)
    fix = hint or "point --data at a folder holding train/<class>/*.JPEG and val/<class>/*.JPEG"
    if not root.is_dir():
        raise DataLayoutError(f"data root {root} does not exist; {fix}")
    classes: list[str] | None = None
    for split in splits:
        folder = root / split
        if not folder.is_dir():
            raise DataLayoutError(f"{folder} is missing: expected {root}/{split}/<class>/<images>; {fix}")
        found = sorted(d.name for d in folder.iterdir() if d.is_dir())
        if not found:
            raise DataLayoutError(f"{folder} has no class folders: expected {folder}/<class>/<images>; {fix}")
        for c in found:
            if not any(f.suffix.lower() in IMG_EXTENSIONS for f in (folder / c).iterdir()):
                raise DataLayoutError(f"class folder {folder / c} holds no images ({', '.join(IMG_EXTENSIONS)})")
        if classes is None:
            classes = found
        elif found != classes:
            extra = sorted(set(found) ^ set(classes))
            raise DataLayoutError(
                f"{folder} and {root / splits[0]} have different classes (e.g. {', '.join(extra[:5])}); "
                "every split needs the same class folders"
            )
    return classes or []


def build_transforms(data_cfg: dict, aug_cfg: dict, model: torch.nn.Module | None = None) -> tuple[Callable, Callable]:
    """Train and eval transforms from timm's ``create_transform`` (RandAugment, random erasing, crop_pct)."""
    size = data_cfg["input_size"]
    base = resolve_data_config({"input_size": (3, size, size)}, model=model)
    if data_cfg.get("crop_pct"):
        base["crop_pct"] = data_cfg["crop_pct"]
    if data_cfg.get("mean"):
        base["mean"], base["std"] = tuple(data_cfg["mean"]), tuple(data_cfg["std"])
    train = create_transform(
        input_size=size,
        is_training=True,
        color_jitter=aug_cfg.get("color_jitter", 0.4),
        auto_augment=aug_cfg.get("auto_augment") or None,
        interpolation=data_cfg.get("interpolation", "bicubic"),
        re_prob=aug_cfg.get("re_prob", 0.0),
        re_mode=aug_cfg.get("re_mode", "pixel"),
        re_count=aug_cfg.get("re_count", 1),
        scale=tuple(aug_cfg.get("scale", (0.08, 1.0))),
        mean=base["mean"],
        std=base["std"],
    )
    evaluate = create_transform(
        input_size=size,
        is_training=False,
        interpolation=data_cfg.get("interpolation", "bicubic"),
        crop_pct=base["crop_pct"],
        mean=base["mean"],
        std=base["std"],
    )
    return train, evaluate


class SeededDataset(Dataset):
    """Wraps a dataset of (image, target); transforms each sample under a seed fixed by (seed, epoch, index).

    Indexed with ``(index, epoch)`` pairs (as :class:`ResumableSampler` yields them) or plain indices (epoch 0).
    """

    def __init__(self, base: Dataset, transform: Callable | None, seed: int) -> None:
        self.base, self.transform, self.seed = base, transform, seed

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, Any]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        img, target = self.base[index]
        if self.transform is not None:
            s = (self.seed * 1_000_003 + epoch) * 10_000_019 + index
            random.seed(s)
            np.random.seed(s % 2**32)
            torch.manual_seed(s)
            img = self.transform(img)
        return img, target


class ResumableSampler(Sampler):
    """Per-rank sampling order fixed by (seed, epoch), sharded like ``DistributedSampler``, resumable mid-epoch.

    Args:
        num_samples: dataset length.
        batch_size: per-process micro-batch size; with ``drop_last`` each rank gets whole batches only.
        rank: this process's rank.
        world_size: number of processes.
        seed: base seed of the shuffling.
        shuffle: shuffle (training) or keep the dataset order (evaluation).
        drop_last: drop the tail so every rank runs the same number of whole batches (training).
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
    ) -> None:
        self.n, self.batch_size, self.rank, self.world = num_samples, batch_size, rank, world_size
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.epoch, self.start = 0, 0
        if drop_last:
            self.per_rank = (num_samples // (batch_size * world_size)) * batch_size
        else:
            self.per_rank = math.ceil(num_samples / world_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's order and skip its first ``start_batch`` batches (for resuming)."""
        self.epoch, self.start = epoch, start_batch * self.batch_size

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        if self.drop_last:
            return order[: self.per_rank * self.world][self.rank :: self.world]
        return order[self.rank :: self.world]  # evaluation: every sample exactly once over all ranks

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self._indices()[self.start :]:
            yield i, self.epoch

    def __len__(self) -> int:
        return len(self._indices()) - self.start


def build_imagenet(root: str | Path, train_tf: Callable, eval_tf: Callable, seed: int) -> tuple[Dataset, Dataset]:
    """Train and val datasets of an ImageNet-layout folder, checked first (see :func:`check_imagefolder`)."""
    classes = check_imagefolder(
        root, hint="point --data at an ImageNet-layout folder, or make one with `dropbench data synth-imagenet`"
    )
    train = ImageFolder(str(Path(root) / "train"))
    val = ImageFolder(str(Path(root) / "val"))
    log.info("data %s: %d classes, %d train / %d val images", root, len(classes), len(train), len(val))
    return SeededDataset(train, train_tf, seed), SeededDataset(val, eval_tf, seed)


def imagefolder_inventory(dataset: str, root: Path, splits: tuple[str, str], fix: str) -> Inventory:
    """The data preflight's count of an image-folder root (``<split>/<class>/<image>``), from its listings.

    Args:
        dataset: the data set's name, for messages.
        root: the root.
        splits: the split folders read.
        fix: the expected layout, for messages.
    """
    classes = check_imagefolder(root, splits=splits, hint=fix)
    counts, n_bytes, firsts = {}, 0, {}
    for split in splits:
        n, first = 0, []
        for c in classes:
            names = sorted(file_sizes(root / split / c, IMG_EXTENSIONS).items())
            n += len(names)
            n_bytes += sum(size for _, size in names)
            first.append(root / split / c / names[0][0])  # check_imagefolder: every class holds an image
        counts[split], firsts[split] = n, first

    def decode(k: int) -> None:
        for split in splits:
            decode_files(dataset, spread(firsts[split], k))  # the first image of evenly spaced classes

    return Inventory(root, counts, len(classes), sum(counts.values()), n_bytes, decode)


IMAGENET = Official(
    {"train": 1_281_167, "val": 50_000}, 1000,
    "https://image-net.org/download.php (ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar; the val images sorted "
    "into one folder per class, e.g. with the PyTorch ImageNet example's valprep.sh)",
    "PATH/train/<wnid>/*.JPEG, PATH/val/<wnid>/*.JPEG")


def _imagenet_inventory(root: Path) -> Inventory:
    fix = (f"expected {IMAGENET.layout} ({GETTING_THE_DATA}; `dropbench data synth-imagenet` writes a small "
           f"generated one)")
    return imagefolder_inventory(PRETRAIN_DATASET, root, ("train", "val"), fix)


# the data preflight's check of the pretraining set (``finetune.tasks.data_checks`` collects it)
IMAGENET_CHECK = DataCheck(_imagenet_inventory, IMAGENET)


def _worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)
    shield_worker(worker_id)  # stopping on SIGTERM / SIGINT is the training process's decision


def train_loader(dataset: Dataset, sampler: ResumableSampler, num_workers: int, pin_memory: bool) -> DataLoader:
    """Loader over whole micro-batches in the sampler's order."""
    return DataLoader(
        dataset,
        batch_size=sampler.batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=True,
        worker_init_fn=_worker_init if num_workers else None,
        multiprocessing_context=worker_context() if num_workers else None,
        persistent_workers=False,
    )


def eval_loader(dataset: Dataset, batch_size: int, rank: int, world_size: int, num_workers: int) -> DataLoader:
    """Loader that visits every sample exactly once over all ranks (no padding, so metrics are exact)."""
    sampler = ResumableSampler(len(dataset), batch_size, rank, world_size, shuffle=False, drop_last=False)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        worker_init_fn=_worker_init if num_workers else None,
        multiprocessing_context=worker_context() if num_workers else None,
    )
