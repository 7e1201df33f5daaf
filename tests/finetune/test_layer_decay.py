"""The paper recipes' layer decay against a table written from the reference code's rules.

Reference: facebookresearch/ConvNeXt ``object_detection/mmcv_custom/layer_decay_optimizer_constructor.py`` (identical
under ``semantic_segmentation/``). Its ConvNeXt names, mapped here by hand to timm's (``downsample_layers.0`` = timm's
``stem``, ``downsample_layers.i`` = ``stages.i.downsample``, ``stages.i.j`` = ``stages.i.blocks.j``), and its ids:

* ``layer_wise`` (COCO 3x: rate 0.95, num_layers 6): downsample 0 -> 0, 1 -> 2, 2 -> 3, 3 -> 6; stage 0 -> 1,
  1 -> 2, 2 -> 3 + block // 3, 3 -> 6; anything else 7;
* ``stage_wise`` (ADE20K 160k: rate 0.9, num_layers 6): every downsample -> 0, stage i -> i + 1; anything else 7;

scale ``rate ** (8 - id - 1)``; weight decay 0 for 1-D parameters and names ending ``.bias``, else the base 0.05.
A Swin backbone has no name the reference recognises: every parameter gets id 7, scale 1.
"""

from __future__ import annotations

import re

import pytest
import torch
from dropbench.finetune.tasks import Job

pytest.importorskip("mmdet")
pytest.importorskip("mmseg")

from dropbench.finetune.mm import adapt_to_device, prepare_runner_config  # noqa: E402
from dropbench.finetune.seg import prepare_seg_config  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

# (regex on the detector / segmentor parameter name, layer id), first match wins; written from the reference rules
CONVNEXT_LAYER_WISE = [
    (r"^backbone\.model\.stem\.", 0),
    (r"^backbone\.model\.stages\.0\.blocks\.\d+\.", 1),
    (r"^backbone\.model\.stages\.1\.downsample\.", 2),
    (r"^backbone\.model\.stages\.1\.blocks\.\d+\.", 2),
    (r"^backbone\.model\.stages\.2\.downsample\.", 3),
    (r"^backbone\.model\.stages\.2\.blocks\.[0-2]\.", 3),  # block // 3 == 0
    (r"^backbone\.model\.stages\.2\.blocks\.[3-5]\.", 4),  # block // 3 == 1 (ConvNeXt-F's stage 2 has 6 blocks)
    (r"^backbone\.model\.stages\.3\.downsample\.", 6),
    (r"^backbone\.model\.stages\.3\.blocks\.\d+\.", 6),
    (r".*", 7),  # backbone.norms (the adapter's output norms), neck, heads
]
CONVNEXT_STAGE_WISE = [
    (r"^backbone\.model\.stem\.", 0),
    (r"^backbone\.model\.stages\.\d\.downsample\.", 0),
    (r"^backbone\.model\.stages\.0\.blocks\.", 1),
    (r"^backbone\.model\.stages\.1\.blocks\.", 2),
    (r"^backbone\.model\.stages\.2\.blocks\.", 3),
    (r"^backbone\.model\.stages\.3\.blocks\.", 4),
    (r".*", 7),
]
SWIN = [(r".*", 7)]  # nothing of a Swin backbone is recognised
EXPECTED = {
    ("det", "convnext_femto"): (CONVNEXT_LAYER_WISE, 0.95),
    ("det", "swin_femto"): (SWIN, 0.95),
    ("seg", "convnext_femto"): (CONVNEXT_STAGE_WISE, 0.9),
    ("seg", "swin_femto"): (SWIN, 0.9),
}


def _det_cfg(model: str, recipe: str):
    return prepare_runner_config("det", Job(model=model, checkpoint=None, data="/data/coco", out="/tmp/unused",
                                            config=recipe))


def _seg_cfg(model: str, recipe: str):
    return prepare_seg_config(Job(model=model, checkpoint=None, data="/data/ade", out="/tmp/unused", config=recipe))


def _expected(name: str, param: torch.Tensor, table: list[tuple[str, int]], rate: float) -> tuple[float, float]:
    layer = next(i for pattern, i in table if re.match(pattern, name))
    wd = 0.0 if param.ndim == 1 or name.endswith(".bias") else 0.05
    return rate ** (8 - layer - 1), wd


def _build(task: str, model: str):
    if task == "det":
        from mmdet.registry import MODELS

        init_default_scope("mmdet")
        cfg = _det_cfg(model, "paper-3x")
    else:
        from mmseg.registry import MODELS

        init_default_scope("mmseg")
        cfg = _seg_cfg(model, "paper-160k")
        cfg.model.decode_head.channels = cfg.model.auxiliary_head.channels = 32  # heads' width: not what is tested
        cfg.model.decode_head.norm_cfg = cfg.model.auxiliary_head.norm_cfg = dict(type="BN", requires_grad=True)
    return MODELS.build(cfg.model), cfg


@pytest.mark.parametrize("task, model", list(EXPECTED))
def test_reference_layer_decay_for_every_parameter(task, model):
    net, cfg = _build(task, model)
    assert cfg.optim_wrapper.constructor == "ConvNeXtLayerDecayOptimizerConstructor"
    adapt_to_device(cfg)
    groups = build_optim_wrapper(net, cfg.optim_wrapper).optimizer.param_groups
    trainable = {id(p): (n, p) for n, p in net.named_parameters() if p.requires_grad}
    got = {trainable[id(p)][0]: (g["lr"] / 1e-4, g["weight_decay"]) for g in groups for p in g["params"]}
    assert sum(len(g["params"]) for g in groups) == len(got) == len(trainable)  # each trainable parameter once
    table, rate = EXPECTED[(task, model)]
    wrong = {}
    for name, param in trainable.values():
        want = _expected(name, param, table, rate)
        if got[name][0] != pytest.approx(want[0], rel=1e-12) or got[name][1] != want[1]:
            wrong[name] = (got[name], want)
    assert not wrong, wrong
    backbone = [n for n, _ in trainable.values() if n.startswith("backbone.model.")]
    assert len(backbone) > 40  # the whole timm model is covered, not a handful of names
    scales = {got[n][0] for n in backbone}
    if model == "swin_femto":
        assert scales == {1.0}
    else:  # the stem's scale, as the reference computes it
        assert min(scales) == pytest.approx(rate ** 7)


def test_vit_recipes_keep_the_beit_style_constructor():
    init_default_scope("mmdet")
    for model in ("vit_tiny", "vit_base"):
        det = _det_cfg(model, "paper-3x")
        seg = _seg_cfg(model, "paper-160k")
        for cfg in (det, seg):
            assert cfg.optim_wrapper.constructor == "TimmLayerDecayOptimizerConstructor"
            assert dict(cfg.optim_wrapper.paramwise_cfg) == {"layer_decay_rate": 0.9, "backbone": "backbone.model"}


def test_unknown_decay_type_is_refused():
    from dropbench.finetune.layer_decay import convnext_layer_id

    with pytest.raises(ValueError, match="layer_wise"):
        convnext_layer_id("backbone.stages.0.0.gamma", "block_wise", 6)


@pytest.mark.parametrize("model", ["convnext_femto", "swin_femto"])
def test_resolved_paper_recipes_carry_the_reference_values(model):
    """paper-3x (ConvNeXt 3x), paper-160k (ConvNeXt 160k) and basic (dropout main.py / README), as resolved."""
    from dropbench.finetune.mm import hyperparameters
    from dropbench.pretrain.config import load_config, resolve_config

    det = _det_cfg(model, "paper-3x")
    ow = det.optim_wrapper
    assert (ow.type, ow.constructor, dict(ow.paramwise_cfg)) == (
        "AmpOptimWrapper", "ConvNeXtLayerDecayOptimizerConstructor",
        dict(decay_type="layer_wise", decay_rate=0.95, num_layers=6, backbone="backbone.model"))
    assert (ow.optimizer.type, ow.optimizer.lr, ow.optimizer.betas, ow.optimizer.weight_decay) == (
        "AdamW", 1e-4, (0.9, 0.999), 0.05)
    assert det.train_cfg.max_epochs == 36 and det.param_scheduler[1].milestones == [27, 33]
    assert (det.param_scheduler[0].start_factor, det.param_scheduler[0].end) == (0.001, 500)
    assert det.train_dataloader.batch_size == 2 and det.model.backbone.drop_path_rate == 0.1
    hp = hyperparameters(det, world_size=8)
    assert (hp["total_batch"], hp["drop_path"], hp["layer_decay"]["decay_rate"], hp["epochs"]) == (16, 0.1, 0.95, 36)
    one = _det_cfg(model, "paper-1x")
    assert one.train_cfg.max_epochs == 12 and one.param_scheduler[1].milestones == [8, 11]
    assert one.train_dataloader.dataset.pipeline[3].transforms[0][0].scales[0] == (480, 1333)  # multi-scale

    seg = _seg_cfg(model, "paper-160k")
    ow = seg.optim_wrapper  # AmpOptimWrapper in the recipe; prepare_seg_config drops AMP where no GPU is visible
    assert ow.type == ("AmpOptimWrapper" if torch.cuda.is_available() else "OptimWrapper")
    assert load_config(resolve_config("seg", "paper-160k", model)).optim_wrapper.type == "AmpOptimWrapper"
    assert (ow.constructor, dict(ow.paramwise_cfg)) == (
        "ConvNeXtLayerDecayOptimizerConstructor",
        dict(decay_type="stage_wise", decay_rate=0.9, num_layers=6, backbone="backbone.model"))
    assert (ow.optimizer.lr, ow.optimizer.weight_decay) == (1e-4, 0.05)
    warm, poly = seg.param_scheduler
    assert (warm.start_factor, warm.end, poly.type, poly.power, poly.eta_min, poly.end) == (
        1e-6, 1500, "PolyLR", 1.0, 0.0, 160000)
    assert seg.train_cfg.max_iters == 160000 and seg.train_dataloader.batch_size == 2
    assert (seg.model.test_cfg.mode, seg.model.test_cfg.crop_size, seg.model.test_cfg.stride) == (
        "slide", (512, 512), (341, 341))
    assert seg.model.backbone.drop_path_rate == 0.1 and seg.test_multi_scale

    basic = load_config(resolve_config("pretrain", "basic"))
    assert (basic.runtime.amp, basic.runtime.tf32) == (None, True)  # float32 (+TF32), main.py without --use_amp
    assert (basic.optim.opt, basic.optim.lr, basic.optim.lr_batch_size, basic.optim.weight_decay) == (
        "adamw", 4e-3, 4096, 0.05)
    assert (basic.schedule.epochs, basic.schedule.warmup_epochs, basic.schedule.min_lr) == (300, 50, 1e-6)
    assert (basic.augment.mixup, basic.augment.cutmix, basic.augment.smoothing, basic.augment.re_prob,
            basic.augment.auto_augment) == (0.8, 1.0, 0.1, 0.25, "rand-m9-mstd0.5-inc1")
    assert basic.data.batch_size == 128
