"""ADE20K semantic segmentation (the paper's Table 5): mmseg's UperNet on any paper-model checkpoint.

Importing this module registers :class:`~finetune.backbone.TimmPyramidBackbone` in mmseg's ``MODELS`` (the
``configs/seg`` recipes import it through ``custom_imports``). :func:`run_ade20k`, the ``ade20k`` task's entry
(:mod:`finetune.tasks`: a :class:`~finetune.tasks.Job` in, an :class:`~finetune.tasks.Outcome` out), checks the data
(:func:`finetune.datasets.ade20k.check_ade20k`), resolves a recipe for the model, trains with mmengine's Runner
(:mod:`finetune.mm`), evaluates with mmseg's ``IoUMetric`` (``mIoU``, ``mAcc``, ``aAcc``, in percent) and, when the
recipe sets ``test_multi_scale``, again with multi-scale + flip test-time augmentation (``mIoU_ms``, ...).
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dropbench.finetune.layer_decay  # noqa: F401  (registers TimmLayerDecayOptimizerConstructor, used by every recipe)
import numpy as np
import torch
from dropbench.finetune.backbone import TimmPyramidBackbone, check_dense, checkpoint_model_args, pyramid_channels
from dropbench.finetune.datasets.ade20k import check_ade20k
from dropbench.finetune.mm import adapt_to_device, apply_data_config, outcome, prepare_runner_config, run_runner
from dropbench.finetune.samples import SegmentationState, write_samples
from dropbench.finetune.tasks import Job, Outcome, get_task
from mmengine.config import Config
from mmengine.model import is_model_wrapper
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS, MODELS

__all__ = ["SEG_METRICS", "SampleIoUMetric", "evaluate_multi_scale", "keep_samples", "prepare_seg_config",
           "run_ade20k"]

log = logging.getLogger(__name__)

MODELS.register_module(module=TimmPyramidBackbone)


@METRICS.register_module()
class SampleIoUMetric(IoUMetric):
    """mmseg's ``IoUMetric`` (same metrics) that also keeps each image's areas from its latest evaluation.

    ``last_state`` is a :class:`~finetune.samples.SegmentationState` (image id: the file stem) on the process that
    computes metrics (rank 0), None elsewhere; ``suffix`` names its metrics (``_ms`` for multi-scale).
    """

    def __init__(self, *args: Any, suffix: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.suffix = suffix
        self.last_state: SegmentationState | None = None

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        before = len(self.results)
        super().process(data_batch, data_samples)
        if len(self.results) - before == len(data_samples):  # not format_only: one result per image, add its id
            for i, sample in enumerate(data_samples):
                self.results[before + i] = (*self.results[before + i], Path(sample["img_path"]).stem)

    def compute_metrics(self, results: list) -> dict[str, float]:
        ids = [r[4] for r in results]
        metrics = super().compute_metrics([r[:4] for r in results])
        if results:
            areas = [np.stack([r[j].numpy() for r in results]) for j in range(4)]
            self.last_state = SegmentationState(np.asarray(ids), *areas, suffix=self.suffix)
        return metrics


def keep_samples(runner: Any, out_dir: str | os.PathLike, metrics: dict[str, float],
                 more: dict[str, SegmentationState] | None = None) -> dict[str, Any]:
    """Write the final evaluation's per-image areas (and ``more``: the multi-scale ones) to ``samples.npz``.

    The states must recompute ``metrics`` (:func:`finetune.samples.write_samples`). Returns ``{"samples": name}``
    for ``result.json``, or nothing (ranks other than 0, an evaluator that is not a :class:`SampleIoUMetric`).
    """
    evaluator = getattr(runner, "val_evaluator", None)
    metric = next((m for m in getattr(evaluator, "metrics", []) if isinstance(m, SampleIoUMetric)), None)
    states = {"seg": metric.last_state} if metric is not None and metric.last_state is not None else {}
    if not states:
        return {}
    states.update(more or {})
    name = write_samples(out_dir, states, metrics)
    return {"samples": name} if name else {}


def _sample_evaluators(cfg: Config) -> None:
    """mmseg's ``IoUMetric`` -> :class:`SampleIoUMetric` (same metrics, and the per-image areas)."""
    for key in ("val_evaluator", "test_evaluator"):
        ev = cfg.get(key)
        if isinstance(ev, dict) and ev.get("type") in ("IoUMetric", "mmseg.IoUMetric"):
            ev.type = "SampleIoUMetric"


SEG_METRICS = ("mIoU", "mAcc", "aAcc")


def _datasets(cfg: Config) -> list:
    """The dataset configs of the train / val / test loaders (through one dataset wrapper, if any)."""
    out = []
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        loader = cfg.get(key)
        if loader is None:
            continue
        ds = loader.dataset
        out.append(ds.dataset if "dataset" in ds and "data_prefix" not in ds else ds)
    return out


def prepare_seg_config(job: Job) -> Config:
    """The resolved mmseg config of one ADE20K run (see :func:`run_ade20k` for the job).

    Besides :func:`finetune.mm.prepare_runner_config`: the data root goes into every loader's dataset, heads left
    without ``in_channels`` (model-independent recipes) get the model's pyramid channels, and a GPU recipe is adapted
    to a machine without one (:func:`finetune.mm.adapt_to_device`: AMP off, gloo). mmseg's ``IoUMetric`` evaluators
    become :class:`SampleIoUMetric` (same metrics; the per-image areas are kept for the bootstrap).
    """
    cfg = prepare_runner_config(get_task("ade20k").stage, job)
    model, config = job.model, job.config
    channels = list(pyramid_channels(model, checkpoint_model_args(job.checkpoint)))
    for name in ("decode_head", "auxiliary_head"):
        head = cfg.model.get(name)
        if head is None:
            continue
        index = head.in_index
        fits = [channels[i] for i in index] if isinstance(index, (list, tuple)) else channels[index]
        have = head.get("in_channels")
        if have is None:
            head.in_channels = fits
        elif (list(have) if isinstance(fits, list) else have) != fits:
            raise ValueError(f"recipe {config!r}: model.{name}.in_channels={head.in_channels} does not fit {model}'s "
                             f"pyramid ({fits} at in_index {index}); set it to that or leave it None")
    for ds in _datasets(cfg):
        ds.data_root = job.data
    _sample_evaluators(cfg)
    adapt_to_device(cfg)
    return cfg


def evaluate_multi_scale(cfg: Config, runner: Any, states: dict[str, SegmentationState] | None = None
                         ) -> dict[str, float]:
    """Evaluate the trained model with the recipe's ``tta_pipeline`` (scales x flips) merged by ``SegTTAModel``.

    Args:
        states: if given, receives the per-image areas of this evaluation under ``seg_ms`` (rank 0).

    Returns:
        mmseg's metrics with an ``_ms`` suffix (``mIoU_ms``, ``mAcc_ms``, ``aAcc_ms``).
    """
    from mmengine.runner import Runner

    if not cfg.get("tta_pipeline"):
        raise ValueError("test_multi_scale is set but the recipe has no tta_pipeline; add one or unset it")
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    loader_cfg.dataset.pipeline = cfg.tta_pipeline
    loader = Runner.build_dataloader(loader_cfg, seed=cfg.randomness.seed)
    module = runner.model.module if is_model_wrapper(runner.model) else runner.model
    tta = MODELS.build({**cfg.get("tta_model", {"type": "SegTTAModel"}), "module": module})
    tta.eval()
    ev_cfg = copy.deepcopy(cfg.test_evaluator)
    if ev_cfg.get("type") == "SampleIoUMetric":
        ev_cfg["suffix"] = "_ms"
    evaluator = runner.build_evaluator(ev_cfg)
    evaluator.dataset_meta = loader.dataset.metainfo
    with torch.no_grad():
        for data in loader:
            evaluator.process(data_samples=tta.test_step(data), data_batch=data)
    metrics = evaluator.evaluate(len(loader.dataset))
    log.info("multi-scale + flip: %s", {k: metrics[k] for k in SEG_METRICS if k in metrics})
    kept = [m.last_state for m in evaluator.metrics if isinstance(m, SampleIoUMetric) and m.last_state is not None]
    if states is not None and kept:
        states["seg_ms"] = kept[0]
    return {f"{k}_ms": round(float(metrics[k]), 2) for k in SEG_METRICS if k in metrics}


def run_ade20k(job: Job, max_check: int | None = None) -> Outcome:
    """Fine-tune a checkpoint with UperNet on ADE20K and evaluate it (``dropbench finetune ade20k``).

    Args:
        job: ``model`` a dense paper model (``vit_tiny``, ``vit_base``, ``swin_femto``, ``convnext_femto``) or a
            timm architecture whose features make the pyramid (:func:`finetune.backbone.pyramid_layout`);
            ``checkpoint`` None initialises randomly, with a warning; ``data`` an ADEChallengeData2016 folder
            (``images/{training,validation}``, ``annotations/...``); ``out`` the mmengine work dir (logs,
            ``iter_N.pth``, the resolved config); ``config`` a recipe name under ``configs/seg`` (``smoke``,
            ``paper-160k``) or a config file; ``seed`` default: the recipe's, 0.
        max_check: label maps per split whose values are checked before training (None, the default: all).

    Returns:
        The task outcome; metrics ``mIoU``, ``mAcc``, ``aAcc`` (percent), and ``mIoU_ms``, ``mAcc_ms``, ``aAcc_ms``
        when the recipe tests at multiple scales.
    """
    check_dense(job.model, job.checkpoint)  # before the data check: a model that cannot work is named first
    counts = check_ade20k(job.data, max_check=max_check)
    cfg = prepare_seg_config(job)
    data_config = apply_data_config(cfg, job.checkpoint)
    run = run_runner(cfg)
    missing = [k for k in SEG_METRICS if k not in run.metrics]
    if missing:
        raise RuntimeError(f"the evaluator returned {sorted(run.metrics)}, not {missing}: is val_evaluator IoUMetric?")
    result = {k: round(run.metrics[k], 2) for k in SEG_METRICS}  # mmseg's own precision (float32 -> float adds noise)
    ms_states: dict[str, SegmentationState] = {}
    if cfg.get("test_multi_scale", False):
        result.update(evaluate_multi_scale(cfg, run.runner, ms_states))
    extra = {"recipe": job.config, "data": counts, "iterations": int(run.runner.iter), "data_config": data_config}
    extra.update(keep_samples(run.runner, job.out, result, ms_states))  # samples.npz, named in result.json
    return outcome(cfg, run, result, job, extra)
