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

import contextlib
import gzip
import io
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dropbench.finetune.layer_decay  # noqa: F401  (registers TimmLayerDecayOptimizerConstructor)
from dropbench.finetune.backbone import TimmPyramidBackbone, check_dense, checkpoint_model_args, pyramid_channels
from dropbench.finetune.datasets.coco import CocoSplit, check_coco
from dropbench.finetune.mm import adapt_to_device, apply_data_config, outcome, prepare_runner_config, run_runner
from dropbench.finetune.samples import DetectionState, write_samples
from dropbench.finetune.tasks import Job, Outcome, get_task
from dropbench.pretrain.io import atomic_write
from mmdet.evaluation.metrics import CocoMetric
from mmdet.registry import METRICS, MODELS
from mmengine.config import Config, ConfigDict

__all__ = ["COCO_METRICS", "SampleCocoMetric", "configure_coco", "keep_samples", "register_backbone", "run_coco"]

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


@METRICS.register_module()
class SampleCocoMetric(CocoMetric):
    """mmdet's ``CocoMetric`` (same metrics) that also keeps what the bootstrap needs from its latest evaluation.

    It keeps the detections JSON that ``results2json`` writes (bbox and segm, as ``outfile_prefix`` files hold them)
    and the ground truth; :meth:`sample_states` evaluates them once more with COCOeval (same parameters) and returns
    its per-image matches as :class:`~finetune.samples.DetectionState` (``bbox``, ``segm``). Only the process that
    computes metrics (rank 0) holds them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_json: dict[str, bytes] = {}

    def results2json(self, results: Sequence[dict], outfile_prefix: str) -> dict:
        files = super().results2json(results, outfile_prefix)
        self.last_json = {k: Path(files[k]).read_bytes() for k in ("bbox", "segm") if k in files}
        return files

    def sample_states(self) -> dict[str, DetectionState]:
        """COCOeval's per-image matches of the latest evaluation, per IoU type (empty if this rank holds none)."""
        from mmdet.datasets.api_wrappers import COCOeval

        states = {}
        for iou_type in (m for m in self.metrics if m in ("bbox", "segm")):
            preds = json.loads(self.last_json.get(iou_type, b"[]"))
            if not preds or self._coco_api is None:
                continue
            if iou_type == "segm":  # as CocoMetric: the mask area, not the box area, decides the area ranges
                for x in preds:
                    x.pop("bbox", None)
            with contextlib.redirect_stdout(io.StringIO()):
                ev = COCOeval(self._coco_api, self._coco_api.loadRes(preds), iou_type)
                ev.params.catIds, ev.params.imgIds = self.cat_ids, self.img_ids
                ev.params.maxDets, ev.params.iouThrs = list(self.proposal_nums), self.iou_thrs
                ev.evaluate()
            states[iou_type] = DetectionState.from_cocoeval(ev)
        return states


def keep_samples(runner: Any, out_dir: str | os.PathLike, metrics: dict[str, float]) -> dict[str, Any]:
    """Write the final evaluation's per-sample outputs beside ``result.json``; returns the entries that name them.

    ``samples.npz`` holds COCOeval's per-image matches (:class:`~finetune.samples.DetectionState`, ``bbox`` and
    ``segm``), checked to recompute ``metrics``; ``detections.<bbox|segm>.json.gz`` the detections JSON of mmdet's
    ``CocoMetric`` (its ``outfile_prefix`` files), gzipped. Nothing on ranks other than 0, or when the evaluator is
    not a :class:`SampleCocoMetric`.
    """
    evaluator = getattr(runner, "val_evaluator", None)
    metric = next((m for m in getattr(evaluator, "metrics", []) if isinstance(m, SampleCocoMetric)), None)
    if metric is None or not metric.last_json:
        return {}
    out_dir = Path(out_dir)
    extra: dict[str, Any] = {"detections": {}}
    for iou_type, data in metric.last_json.items():
        name = f"detections.{iou_type}.json.gz"
        atomic_write(out_dir / name, gzip.compress(data, mtime=0))
        extra["detections"][iou_type] = name
    samples = write_samples(out_dir, metric.sample_states(), metrics)
    if samples:
        extra["samples"] = samples
    return extra


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
            if ev.get("type") in ("CocoMetric", "mmdet.CocoMetric"):  # same metrics, and the per-sample outputs
                ev.type = "SampleCocoMetric"
    for head in _heads(cfg.model.roi_head, "bbox_head") + _heads(cfg.model.roi_head, "mask_head"):
        head.num_classes = len(classes)
    backbone = cfg.model.backbone
    if backbone.get("type") == "TimmPyramidBackbone" and cfg.model.neck.get("in_channels") is None:
        indices = backbone.get("out_indices", (0, 1, 2, 3))
        channels = pyramid_channels(backbone.model_name, checkpoint_model_args(backbone.get("checkpoint")))
        cfg.model.neck.in_channels = [channels[i] for i in indices]


def run_coco(job: Job) -> Outcome:
    """Fine-tune Mask R-CNN with a pretrained paper model as backbone on COCO and evaluate box and mask AP.

    Args:
        job: ``model`` a dense paper model (``vit_tiny``, ``vit_base``, ``swin_femto``, ``convnext_femto``) or a
            timm architecture whose features make the pyramid (:func:`finetune.backbone.pyramid_layout`);
            ``data`` a COCO root (``train2017/``, ``val2017/``, ``annotations/instances_{train,val}2017.json``);
            ``out`` the mmengine work dir; ``config`` a recipe name under ``configs/det/`` (``smoke``, ``paper-1x``,
            ``paper-3x``) or a config file; ``cfg_options`` apply before the data root and classes are set.

    Returns:
        The task outcome: metrics under mmdet's names (``coco/bbox_mAP``, ``coco/segm_mAP``, ..., scale 0-1), the
        resolved config, seed, the checkpoint's load report, hash and pretraining metadata.

    Raises:
        ValueError: a classification-only model (:class:`~finetune.backbone.PyramidError`), an unknown recipe, or a
            malformed COCO root
            (:class:`~finetune.datasets.coco.CocoFormatError`).
        finetune.convert.CheckpointError: the checkpoint does not fit the model.
    """
    check_dense(job.model, job.checkpoint)  # before the data check: a model that cannot work is named first
    splits = check_coco(job.data)
    cfg = prepare_runner_config(get_task("coco").stage, job)
    configure_coco(cfg, job.data, splits)
    data_config = apply_data_config(cfg, job.checkpoint)
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
             "device_changes": device_changes, "data_config": data_config}
    extra.update(keep_samples(run.runner, job.out, run.metrics))  # samples.npz + detections JSON, named in result
    return outcome(cfg, run, run.metrics, job, extra=extra)
