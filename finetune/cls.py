"""Classification transfer (Table 6): fine-tune any checkpoint on CIFAR-100, Flowers-102, Pets, STL-10, Food-101 or
an image folder with fixed drop rates, through pretraining's own training loop.

    dropbench finetune cls --dataset flowers102 --checkpoint runs/vit_tiny_early_do/checkpoint.pth \
        --model vit_tiny --data /datasets --config transfer --out runs/flowers_vit_tiny_early_do

:func:`run_cls`, the ``cls`` task's entry (:mod:`finetune.tasks`), resolves the recipe (``configs/cls/``), merges the
data set's settings and the job's overrides, and calls :func:`pretrain.train.run` with two hooks: the data set's
torchvision reader (:mod:`finetune.datasets.cls`) and the shared converter (:func:`finetune.convert.load_pretrained`,
strict except the classifier head). It returns the task's :class:`~finetune.tasks.Outcome`, which
:func:`benchmarks.runs.run_and_record` writes as ``result.json``: last-epoch test ``top1`` / ``top5`` and
``mean_per_class_top1`` (percent), per-class accuracy, the load report, the checkpoint's hash and pretraining metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.nn as nn
from dropbench.finetune.convert import CheckpointError, LoadReport, load_pretrained
from dropbench.finetune.datasets.cls import CLS_DATASETS, ClsData, load_cls_data
from dropbench.finetune.tasks import Job, Outcome, get_task
from dropbench.pretrain.config import config_hash, load_config, plain, resolve_config
from dropbench.pretrain.data import SeededDataset
from dropbench.pretrain.distributed import setup_launcher
from dropbench.pretrain.models import paper_model
from dropbench.pretrain.schedules import DropSpec
from dropbench.pretrain.train import run
from mmengine.config import Config

__all__ = ["build_cls_config", "run_cls"]

log = logging.getLogger(__name__)
_RESUME_FREE = ("runtime",)  # as pretrain.train: keys that may change on resumption; left out of the config hash


def build_cls_config(job: Job) -> Config:
    """The resolved fine-tuning config: recipe, then ``per_dataset[job.dataset]``, then the job, then its overrides."""
    dataset = job.dataset
    if dataset not in CLS_DATASETS:
        raise ValueError(f"unknown --dataset {dataset!r}; choose one of: {', '.join(CLS_DATASETS)}")
    paper_model(job.model)  # validates the name
    cfg = load_config(resolve_config(get_task("cls").stage, job.config))
    per_dataset = cfg.pop("per_dataset", None) or {}
    if dataset in per_dataset:
        cfg.merge_from_dict(per_dataset[dataset].to_dict())
    cfg.merge_from_dict({"model.name": job.model, "model.checkpoint": str(job.checkpoint),
                         "model.use_ema": bool(job.use_ema), "data.dataset": dataset, "data.root": job.data})
    if job.seed is not None:
        cfg.merge_from_dict({"runtime.seed": int(job.seed)})
    if job.cfg_options:
        cfg.merge_from_dict(dict(job.cfg_options))
    if DropSpec.from_config(cfg.drop).scheduled:
        raise ValueError(f"fine-tuning uses fixed drop rates: drop.mode must be 'standard', got {cfg.drop.mode!r}")
    if cfg.data.dataset != dataset:
        raise ValueError(f"data.dataset is {cfg.data.dataset!r} but --dataset is {dataset!r}")
    return cfg


def _mean(values: list[float | None] | None) -> float | None:
    present = [v for v in values or [] if v is not None]
    return sum(present) / len(present) if present else None


def run_cls(job: Job) -> Outcome:
    """Fine-tune ``job.checkpoint`` (paper model ``job.model``) on a classification set and return the outcome.

    Args:
        job: ``dataset`` one of :data:`~finetune.datasets.cls.CLS_DATASETS`, its root ``data`` (see
            :mod:`finetune.datasets.cls`); ``out`` the run directory (``log.jsonl``, ``config.py``,
            ``checkpoint.pth``; ``result.json`` by the caller); ``config`` a recipe name under ``configs/cls/``
            (``smoke``, ``transfer``) or a config file; ``resume`` ``auto`` (continue the run in ``out``) or a
            checkpoint of this run; ``cfg_options`` e.g. ``{"schedule.epochs": 10}``.

    Returns:
        The task outcome (metrics ``top1``, ``top5``, ``mean_per_class_top1``).

    Raises:
        DataLayoutError: the data root does not hold the data set (``ValueError`` subclass).
        CheckpointError: the checkpoint does not fit the model (only the head may differ).
    """
    setup_launcher(job.launcher)
    cfg = build_cls_config(job)
    state: dict[str, Any] = {}

    def datasets(cfg: Config, train_tf: Callable, eval_tf: Callable, seed: int) -> tuple[Any, Any, int]:
        data: ClsData = load_cls_data(cfg.data.dataset, cfg.data.root)
        state["data"] = data
        return SeededDataset(data.train, train_tf, seed), SeededDataset(data.test, eval_tf, seed), data.num_classes

    def prepare_model(net: nn.Module) -> dict:
        try:
            report: LoadReport = load_pretrained(net, cfg.model.checkpoint, cfg.model.name, bool(cfg.model.use_ema))
        except CheckpointError as e:
            if paper_model(cfg.model.name).family == "mixer" and "another shape" in str(e):
                raise CheckpointError(f"{e} Mixer's token mixing is tied to the input size: fine-tune at the "
                                      f"resolution of pretraining (--cfg-options data.input_size=N).") from None
            raise
        state["report"] = report
        return {"report": report.to_dict(), "pretrain": report.pretrain}

    summary = run(cfg, job.out, job.resume, datasets=datasets, prepare_model=prepare_model)
    report, data = state["report"], state["data"]
    per_class = summary.get("per_class_top1")
    metrics = {"top1": summary["top1"], "top5": summary["top5"]}
    mean_per_class = _mean(per_class)
    if mean_per_class is not None:
        metrics["mean_per_class_top1"] = mean_per_class
    return Outcome(
        metrics=metrics, config=plain(cfg), config_hash=config_hash(cfg, exclude=_RESUME_FREE),
        seed=int(cfg.runtime.seed), checkpoint=job.checkpoint, load_report=report,
        log_path=str(Path(job.out) / "log.jsonl"),
        extra={
            "per_class_top1": per_class,
            "classes": data.classes,
            "num_classes": summary["num_classes"],
            "splits": data.splits,
            "train_images": len(data.train),
            "test_images": len(data.test),
            "generated_data": data.generated,
            "epochs": summary["epochs"],
            "train_loss": summary["train_loss"],
            "world_size": summary["world_size"],
            "finetuned_checkpoint": summary["checkpoint"],
        },
    )
