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
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.nn as nn
from dropbench.finetune.convert import (
    CheckpointError,
    LoadReport,
    checkpoint_data_config,
    checkpoint_model_args,
    load_pretrained,
)
from dropbench.finetune.datasets.cls import CLS_DATASETS, ClsData, load_cls_data
from dropbench.finetune.samples import ClassificationState, kept_samples, write_samples
from dropbench.finetune.tasks import Job, Outcome, get_task
from dropbench.pretrain.config import config_hash, load_config, plain, resolve_config
from dropbench.pretrain.data import SeededDataset
from dropbench.pretrain.distributed import setup_launcher
from dropbench.pretrain.models import PAPER_MODELS, check_model, model_class, model_family
from dropbench.pretrain.schedules import DropSpec
from dropbench.pretrain.train import run
from mmengine.config import Config

__all__ = ["build_cls_config", "hyperparameters", "run_cls"]

log = logging.getLogger(__name__)
_RESUME_FREE = ("runtime",)  # as pretrain.train: keys that may change on resumption; left out of the config hash


def build_cls_config(job: Job) -> Config:
    """The resolved fine-tuning config: recipe, then ``per_dataset[job.dataset]``, then the job, then its overrides."""
    dataset = job.dataset
    if dataset not in CLS_DATASETS:
        raise ValueError(f"unknown --dataset {dataset!r}; choose one of: {', '.join(CLS_DATASETS)}")
    check_model(job.model)  # a paper model or any timm architecture
    cfg = load_config(resolve_config(get_task("cls").stage, job.config))
    per_dataset = cfg.pop("per_dataset", None) or {}
    if dataset in per_dataset:
        cfg.merge_from_dict(per_dataset[dataset].to_dict())
    cfg.merge_from_dict({"model.name": job.model, "model.checkpoint": str(job.checkpoint),
                         "model.use_ema": bool(job.use_ema), "data.dataset": dataset, "data.root": job.data})
    cfg.merge_from_dict(checkpoint_settings(job.model, job.checkpoint, cfg))
    if job.seed is not None:
        cfg.merge_from_dict({"runtime.seed": int(job.seed)})
    if job.cfg_options:
        cfg.merge_from_dict(dict(job.cfg_options))
    if DropSpec.from_config(cfg.drop).scheduled:
        raise ValueError(f"fine-tuning uses fixed drop rates: drop.mode must be 'standard', got {cfg.drop.mode!r}")
    if cfg.data.dataset != dataset:
        raise ValueError(f"data.dataset is {cfg.data.dataset!r} but --dataset is {dataset!r}")
    return cfg


def checkpoint_settings(model: str, checkpoint: str | None, cfg: Config) -> dict:
    """Recipe values a checkpoint decides, as overrides (the job's own overrides come after and win).

    A timm hub checkpoint's ``pretrained_cfg`` sets the input size, interpolation, crop and normalisation
    (``data.input_size``, ``data.interpolation``, ``data.crop_pct``, ``data.mean`` / ``data.std``) and its
    ``model_args`` the architecture's reconstruction arguments (``model.kwargs``, e.g. a reduced width; a dropbench
    checkpoint's come from its pretraining's ``model.kwargs``); a model
    without a ``group_matcher`` trains without layer decay (``optim.layer_decay`` None; the run's
    ``extra.hparams.layer_decay_grouping`` says so). Empty for the paper models' checkpoints, so their recipes and
    config hashes are unchanged.
    """
    out: dict = {}
    if model not in PAPER_MODELS and cfg.optim.get("layer_decay") and not hasattr(model_class(model), "group_matcher"):
        out["optim.layer_decay"] = None
    if checkpoint is None or not Path(checkpoint).exists():  # (a missing file is the loader's error to name)
        return out
    data = checkpoint_data_config(checkpoint)
    if data.get("input_size"):
        out["data.input_size"] = int(data["input_size"][-1])
    if data.get("mean") and data.get("std"):
        out["data.mean"], out["data.std"] = list(data["mean"]), list(data["std"])
    for key in ("interpolation", "crop_pct"):
        if data.get(key):
            out[f"data.{key}"] = data[key]
    kwargs = checkpoint_model_args(checkpoint)
    if kwargs:
        out["model.kwargs"] = kwargs
    return out


def hyperparameters(cfg: Config, world_size: int, precision: dict | None = None) -> dict:
    """Every setting a classification run trained with, flat, for ``result.json`` (``extra.hparams``)."""
    o, s, a, d, dr = cfg.optim, cfg.schedule, cfg.augment, cfg.data, cfg.drop
    total = int(d.batch_size) * int(d.update_freq) * int(world_size)
    return {
        "optimizer": o.opt, "lr": float(o.lr), "lr_batch_size": int(o.lr_batch_size),
        "lr_effective": float(o.lr) * total / float(o.lr_batch_size), "weight_decay": float(o.weight_decay),
        "layer_decay": o.layer_decay, "opt_eps": o.opt_eps, "opt_betas": plain(o.opt_betas), "clip_grad": o.clip_grad,
        "epochs": int(s.epochs), "warmup_epochs": int(s.warmup_epochs), "min_lr": float(s.min_lr),
        "warmup_lr": float(s.warmup_lr), "batch_size": int(d.batch_size), "update_freq": int(d.update_freq),
        "world_size": int(world_size), "total_batch": total, "input_size": int(d.input_size),
        "interpolation": d.interpolation, "crop_pct": d.crop_pct,
        "drop_path": float(dr.rate) if dr.kind == "drop_path" else 0.0,
        "dropout": float(dr.rate) if dr.kind == "dropout" else 0.0,
        "auto_augment": a.auto_augment, "color_jitter": a.color_jitter, "re_prob": a.re_prob,
        "mixup": a.mixup, "cutmix": a.cutmix, "mixup_prob": a.mixup_prob, "mixup_switch_prob": a.mixup_switch_prob,
        "smoothing": a.smoothing, "scale": plain(a.get("scale")), "ema": bool(cfg.ema.enabled),
        "use_ema_weights": bool(cfg.model.use_ema), "seed": int(cfg.runtime.seed), "precision": precision,
        "layer_decay_grouping": _layer_grouping(cfg),
        "normalisation": {"mean": plain(d.get("mean")), "std": plain(d.get("std")),
                          "source": "checkpoint pretrained_cfg" if d.get("mean") else "recipe (timm's ImageNet)"},
    }


def _layer_grouping(cfg: Config) -> str:
    if cfg.optim.get("layer_decay") is None:
        if cfg.model.name not in PAPER_MODELS and not hasattr(model_class(cfg.model.name), "group_matcher"):
            return "none: the model has no group_matcher, trained without layer decay"
        return "none"
    return "timm group_matcher"


def _mean(values: list[float | None] | None) -> float | None:
    present = [v for v in values or [] if v is not None]
    return sum(present) / len(present) if present else None


def keep_samples(summary: dict, out_dir: str | os.PathLike, metrics: dict[str, float]) -> dict[str, str]:
    """Write the final evaluation's label + top-5 per test image (dataset index order) to ``samples.npz``.

    Returns ``{"samples": name}`` for ``result.json`` (nothing on ranks other than 0); the state must recompute
    ``metrics``. A run resumed after its final evaluation keeps the file the finishing process wrote.
    """
    samples = summary.get("samples")
    if os.environ.get("RANK", "0") != "0":
        return {}
    if samples is None:
        name = kept_samples(out_dir, metrics)
        return {"samples": name} if name else {}
    state = ClassificationState(samples["index"], samples["label"], samples["topk"], int(summary["num_classes"]))
    name = write_samples(out_dir, {"cls": state}, metrics)
    return {"samples": name} if name else {}


def run_cls(job: Job) -> Outcome:
    """Fine-tune ``job.checkpoint`` (paper model or timm architecture ``job.model``) on a classification set and
    return the outcome.

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
            if model_family(cfg.model.name) == "mixer" and "another shape" in str(e):
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
    samples = keep_samples(summary, job.out, metrics)
    return Outcome(
        metrics=metrics, config=plain(cfg), config_hash=config_hash(cfg, exclude=_RESUME_FREE),
        seed=int(cfg.runtime.seed), checkpoint=job.checkpoint, load_report=report,
        log_path=str(Path(job.out) / "log.jsonl"),
        extra={
            "recipe": job.config,
            "hparams": hyperparameters(cfg, summary["world_size"], summary.get("precision")),
            "per_class_top1": per_class,
            "classes": data.classes,
            "num_classes": summary["num_classes"],
            "splits": data.splits,
            "train_images": len(data.train),
            "test_images": len(data.test),
            "generated_data": data.generated,
            **samples,
            "epochs": summary["epochs"],
            "train_loss": summary["train_loss"],
            "world_size": summary["world_size"],
            "loop": summary["loop"],
            "finetuned_checkpoint": summary["checkpoint"],
        },
    )
