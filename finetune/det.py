"""COCO detection and instance segmentation (the paper's Table 4): mmdet Mask R-CNN + FPN from any checkpoint.

Importing this module registers :class:`~finetune.backbone.TimmPyramidBackbone` in mmdet's ``MODELS`` registry (the
det recipes pull it in with ``custom_imports``) and the layer-decay optimizer constructor. :func:`run_coco` is the entry
function of the ``coco`` task (:mod:`finetune.tasks`; ``dropbench finetune coco``), a :class:`~finetune.tasks.Job` in,
an :class:`~finetune.tasks.Outcome` out:

1. check the COCO root and its annotation files (:func:`finetune.datasets.coco.check_coco`) before anything starts;
2. resolve the recipe (``smoke``, ``paper-1x``, ``paper-3x`` or a file under ``configs/det/``) for the model, point
   the data loaders and the evaluator at the root, take the classes from the annotation file;
3. run mmengine's Runner (launcher none / pytorch / slurm; ``resume='auto'`` continues a killed run), evaluate the
   final weights with COCO box and mask metrics, and return the outcome that becomes ``RUN_DIR/result.json``.

Drop rates are fixed by the recipe (``model.backbone.drop_path_rate``): nothing is scheduled while fine-tuning.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import dropbench.finetune.layer_decay  # noqa: F401  (registers TimmLayerDecayOptimizerConstructor)
from dropbench.finetune.backbone import TimmPyramidBackbone, pyramid_channels
from dropbench.finetune.datasets.coco import CocoSplit, check_coco
from dropbench.finetune.mm import adapt_to_device, outcome, prepare_runner_config, run_runner
from dropbench.finetune.tasks import Job, Outcome, get_task
from dropbench.pretrain.models import paper_model
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict

__all__ = ["COCO_METRICS", "configure_coco", "register_backbone", "run_coco"]

log = logging.getLogger(__name__)

# the names (mmdet's CocoMetric, scale 0-1) every COCO result carries
COCO_METRICS = tuple(f"coco/{kind}_mAP{suffix}" for kind in ("bbox", "segm")
                     for suffix in ("", "_50", "_75", "_s", "_m", "_l"))
_WRAPPERS = ("RepeatDataset", "ClassBalancedDataset", "MultiImageMixDataset")


def register_backbone() -> None:
    """Register :class:`TimmPyramidBackbone` in mmdet's ``MODELS`` (once; importing this module does it)."""
    if MODELS.get("TimmPyramidBackbone") is not TimmPyramidBackbone:
        MODELS.register_module(module=TimmPyramidBackbone)


register_backbone()


def _leaf_dataset(ds: ConfigDict) -> ConfigDict:
    while ds.get("type") in _WRAPPERS:
        ds = ds.dataset
    return ds


def _heads(roi_head: ConfigDict, key: str) -> list[ConfigDict]:
    head = roi_head.get(key)
    return [] if head is None else list(head) if isinstance(head, (list, tuple)) else [head]


def configure_coco(cfg: Config, data_root: str | os.PathLike, splits: dict[str, CocoSplit]) -> None:
    """Point a det recipe at a checked COCO root: data roots, annotation files, classes and class counts.

    The classes are the annotation file's categories in its own order (mmdet's label order), so any COCO-format set
    works; the box and mask heads get that many outputs. A recipe whose FPN ``in_channels`` is unset (a
    model-independent recipe) gets the backbone's pyramid channels.
    """
    root = str(Path(data_root).resolve())
    classes = splits["train2017"].classes
    for key, split in (("train_dataloader", "train2017"), ("val_dataloader", "val2017"),
                       ("test_dataloader", "val2017")):
        if cfg.get(key) is None:
            continue
        ds = _leaf_dataset(cfg[key].dataset)
        ds.data_root = root
        ds.ann_file = f"annotations/instances_{split}.json"
        ds.data_prefix = dict(img=f"{split}/")
        ds.metainfo = dict(classes=classes)
    for key in ("val_evaluator", "test_evaluator"):
        evaluators = cfg.get(key)
        for ev in evaluators if isinstance(evaluators, (list, tuple)) else [evaluators] if evaluators else []:
            ev.ann_file = str(splits["val2017"].ann_file.resolve())
    for head in _heads(cfg.model.roi_head, "bbox_head") + _heads(cfg.model.roi_head, "mask_head"):
        head.num_classes = len(classes)
    backbone = cfg.model.backbone
    if backbone.get("type") == "TimmPyramidBackbone" and cfg.model.neck.get("in_channels") is None:
        indices = backbone.get("out_indices", (0, 1, 2, 3))
        cfg.model.neck.in_channels = [pyramid_channels(backbone.model_name)[i] for i in indices]


def run_coco(job: Job) -> Outcome:
    """Fine-tune Mask R-CNN with a pretrained paper model as backbone on COCO and evaluate box and mask AP.

    Args:
        job: ``model`` a dense paper model (``vit_tiny``, ``vit_base``, ``swin_femto``, ``convnext_femto``);
            ``data`` a COCO root (``train2017/``, ``val2017/``, ``annotations/instances_{train,val}2017.json``);
            ``out`` the mmengine work dir; ``config`` a recipe name under ``configs/det/`` (``smoke``, ``paper-1x``,
            ``paper-3x``) or a config file; ``cfg_options`` apply before the data root and classes are set.

    Returns:
        The task outcome: metrics under mmdet's names (``coco/bbox_mAP``, ``coco/segm_mAP``, ..., scale 0-1), the
        resolved config, seed, the checkpoint's load report, hash and pretraining metadata.

    Raises:
        ValueError: a classification-only model, an unknown recipe, or a malformed COCO root
            (:class:`~finetune.datasets.coco.CocoFormatError`).
        finetune.convert.CheckpointError: the checkpoint does not fit the model.
    """
    if not paper_model(job.model).dense:
        raise ValueError(f"{job.model} cannot be a detection backbone (classification only); choose vit_tiny, "
                         f"vit_base, swin_femto or convnext_femto")
    splits = check_coco(job.data)
    cfg = prepare_runner_config(get_task("coco").stage, job)
    configure_coco(cfg, job.data, splits)
    device_changes = adapt_to_device(cfg)
    train = splits["train2017"]
    log.info("COCO fine-tuning of %s on %s: %d classes, %d train / %d val images, recipe %s", job.model, job.data,
             len(train.classes), train.num_images, splits["val2017"].num_images, job.config)
    run = run_runner(cfg)
    missing = [k for k in COCO_METRICS if k not in run.metrics]
    if missing:
        log.warning("evaluation did not report %s", missing)
    extra = {"recipe": job.config, "classes": list(train.classes), "train_images": train.num_images,
             "val_images": splits["val2017"].num_images, "epochs": run.runner.epoch, "iterations": run.runner.iter,
             "device_changes": device_changes}
    return outcome(cfg, run, run.metrics, job, extra=extra)
