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
from typing import Any

import dropbench.finetune.layer_decay  # noqa: F401  (registers TimmLayerDecayOptimizerConstructor, used by every recipe)
import torch
from dropbench.finetune.backbone import TimmPyramidBackbone, pyramid_channels
from dropbench.finetune.datasets.ade20k import check_ade20k
from dropbench.finetune.mm import adapt_to_device, outcome, prepare_runner_config, run_runner
from dropbench.finetune.tasks import Job, Outcome, get_task
from mmengine.config import Config
from mmengine.model import is_model_wrapper
from mmseg.registry import MODELS

__all__ = ["SEG_METRICS", "evaluate_multi_scale", "prepare_seg_config", "run_ade20k"]

log = logging.getLogger(__name__)

MODELS.register_module(module=TimmPyramidBackbone)
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
    to a machine without one (:func:`finetune.mm.adapt_to_device`: AMP off, gloo).
    """
    cfg = prepare_runner_config(get_task("ade20k").stage, job)
    model, config = job.model, job.config
    channels = list(pyramid_channels(model))
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
    adapt_to_device(cfg)
    return cfg


def evaluate_multi_scale(cfg: Config, runner: Any) -> dict[str, float]:
    """Evaluate the trained model with the recipe's ``tta_pipeline`` (scales x flips) merged by ``SegTTAModel``.

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
    evaluator = runner.build_evaluator(cfg.test_evaluator)
    evaluator.dataset_meta = loader.dataset.metainfo
    with torch.no_grad():
        for data in loader:
            evaluator.process(data_samples=tta.test_step(data), data_batch=data)
    metrics = evaluator.evaluate(len(loader.dataset))
    log.info("multi-scale + flip: %s", {k: metrics[k] for k in SEG_METRICS if k in metrics})
    return {f"{k}_ms": round(float(metrics[k]), 2) for k in SEG_METRICS if k in metrics}


def run_ade20k(job: Job, max_check: int | None = None) -> Outcome:
    """Fine-tune a checkpoint with UperNet on ADE20K and evaluate it (``dropbench finetune ade20k``).

    Args:
        job: ``model`` a dense paper model (``vit_tiny``, ``vit_base``, ``swin_femto``, ``convnext_femto``);
            ``checkpoint`` None initialises randomly, with a warning; ``data`` an ADEChallengeData2016 folder
            (``images/{training,validation}``, ``annotations/...``); ``out`` the mmengine work dir (logs,
            ``iter_N.pth``, the resolved config); ``config`` a recipe name under ``configs/seg`` (``smoke``,
            ``paper-160k``) or a config file; ``seed`` default: the recipe's, 0.
        max_check: label maps per split whose values are checked before training (None, the default: all).

    Returns:
        The task outcome; metrics ``mIoU``, ``mAcc``, ``aAcc`` (percent), and ``mIoU_ms``, ``mAcc_ms``, ``aAcc_ms``
        when the recipe tests at multiple scales.
    """
    counts = check_ade20k(job.data, max_check=max_check)
    cfg = prepare_seg_config(job)
    run = run_runner(cfg)
    missing = [k for k in SEG_METRICS if k not in run.metrics]
    if missing:
        raise RuntimeError(f"the evaluator returned {sorted(run.metrics)}, not {missing}: is val_evaluator IoUMetric?")
    result = {k: round(run.metrics[k], 2) for k in SEG_METRICS}  # mmseg's own precision (float32 -> float adds noise)
    if cfg.get("test_multi_scale", False):
        result.update(evaluate_multi_scale(cfg, run.runner))
    extra = {"data": counts, "iterations": int(run.runner.iter)}
    return outcome(cfg, run, result, job, extra)
