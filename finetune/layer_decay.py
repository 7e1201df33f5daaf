"""Layer-wise learning-rate decay for detectors and segmentors whose backbone is a timm model.

Two constructors, both keyed on the timm model that :class:`~finetune.backbone.TimmPyramidBackbone` keeps at
``backbone.model``:

* :class:`ConvNeXtLayerDecayOptimizerConstructor`: the ConvNeXt downstream recipe's rule (the paper recipes of
  ConvNeXt-F and Swin-F), re-implemented from ``LearningRateDecayOptimizerConstructor`` in facebookresearch/ConvNeXt
  ``object_detection/mmcv_custom/layer_decay_optimizer_constructor.py`` (the same file under
  ``semantic_segmentation/``), on timm's parameter names;
* :class:`TimmLayerDecayOptimizerConstructor`: BEiT-style decay per block (the ViT recipes and the smoke recipes).

mmseg's ``LearningRateDecayOptimizerConstructor`` only recognises its own ConvNeXt / BEiT / MAE classes and raises
``NotImplementedError`` for a timm backbone. :class:`TimmLayerDecayOptimizerConstructor` keys the layer ids on timm's
own ``group_matcher`` (as timm's ``param_groups_layer_decay`` does): a backbone parameter in layer ``i`` of ``L``
trainable layer groups (0: the stem) gets ``lr * decay ** (L - i)``, so the deepest block gets ``decay`` and the stem
``decay ** L``, as in the BEiT downstream recipe; everything outside the backbone (neck, heads, the adapter's
pyramid) gets the full rate. 1-D parameters and the model's ``no_weight_decay()`` names (position embeddings, class
token, relative position tables) get no weight decay. A timm architecture without a ``group_matcher`` trains without
layer decay (every parameter at the full rate; a warning says so) and :func:`layer_decay_in_force` records it.

Configs (mmengine)::

    optim_wrapper = dict(  # the paper-3x recipe of ConvNeXt-F / Swin-F (paper-160k: stage_wise, 0.9)
        type='AmpOptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        constructor='ConvNeXtLayerDecayOptimizerConstructor',
        paramwise_cfg=dict(decay_type='layer_wise', decay_rate=0.95, num_layers=6, backbone='backbone.model'))
    optim_wrapper = dict(  # BEiT-style
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        constructor='TimmLayerDecayOptimizerConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.9, backbone='backbone.model'))
"""

from __future__ import annotations

import logging
import re

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from timm.models import group_parameters

__all__ = ["ConvNeXtLayerDecayOptimizerConstructor", "TimmLayerDecayOptimizerConstructor", "convnext_layer_id",
           "layer_decay_in_force", "layer_groups", "reference_name"]

log = logging.getLogger(__name__)


def layer_groups(timm_model: nn.Module) -> tuple[dict[str, int], int]:
    """Parameter name -> layer id (0 = stem) from the model's ``group_matcher``; also the number of layers."""
    if not hasattr(timm_model, "group_matcher"):
        raise ValueError(f"{type(timm_model).__name__} has no group_matcher(); layer decay needs one")
    layer_map = group_parameters(timm_model, timm_model.group_matcher(coarse=False), reverse=True)
    return layer_map, max(layer_map.values()) + 1


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TimmLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Optimizer-wrapper constructor with layer-wise lr decay over a timm backbone.

    ``paramwise_cfg``: ``layer_decay_rate`` (e.g. 0.9) and ``backbone``, the dotted path of the timm model inside the
    detector / segmentor (default ``backbone.model``, where :class:`~finetune.backbone.TimmPyramidBackbone` keeps it).
    """

    def add_params(self, params: list[dict], module: nn.Module, **kwargs) -> None:
        cfg = dict(self.paramwise_cfg or {})
        decay = float(cfg.get("layer_decay_rate", 1.0))
        path = cfg.get("backbone", "backbone.model")
        try:
            timm_model = module.get_submodule(path)
        except AttributeError:
            raise ValueError(f"layer decay: the model has no submodule {path!r} (paramwise_cfg.backbone)") from None
        if hasattr(timm_model, "group_matcher"):
            layer_map, num_layers = layer_groups(timm_model)
        else:  # no layer structure timm knows of: no decay (recorded by layer_decay_in_force)
            log.warning("%s has no group_matcher(): it trains without layer decay", type(timm_model).__name__)
            layer_map, num_layers, decay = {}, 1, 1.0
        prefix = path + "."
        # the deepest layer that trains sets the scale (a frozen classifier-side norm, e.g. ConvNeXt's head.norm,
        # has a group of its own that would add a factor): that layer gets decay ** 1, as the BEiT recipe's last block
        trained = [layer_map.get(n[len(prefix):], num_layers) for n, p in module.named_parameters()
                   if p.requires_grad and n.startswith(prefix)]
        depth = max(trained, default=num_layers - 1) + 1
        no_wd = set(getattr(timm_model, "no_weight_decay", lambda: set())())
        base_lr, base_wd = self.base_lr, self.base_wd or 0.0
        groups: dict[tuple[int, bool], dict] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            inner = name[len(prefix):] if name.startswith(prefix) else None
            layer = layer_map.get(inner, depth) if inner is not None else depth + 1
            scale = decay ** (depth - layer) if layer < depth else 1.0
            skip_wd = param.ndim == 1 or (inner is not None and any(inner.startswith(n) for n in no_wd))
            key = (layer, skip_wd)
            if key not in groups:
                groups[key] = {"params": [], "lr": base_lr * scale, "weight_decay": 0.0 if skip_wd else base_wd,
                               "layer_id": layer, "lr_scale": scale}
            groups[key]["params"].append(param)
        params.extend(groups[k] for k in sorted(groups))
        log.info("layer decay %.3f over %d backbone layer groups: %d param groups", decay, depth, len(groups))


def layer_decay_in_force(optim_wrapper: dict, model_name: str) -> dict:
    """What layer decay a det / seg run's optimizer applies to ``model_name``, for ``result.json``.

    ``applied`` is False where the constructor's rule finds no layers in the model: a timm architecture without a
    ``group_matcher`` (:class:`TimmLayerDecayOptimizerConstructor`), a non-ConvNeXt backbone under the ConvNeXt rule
    (every parameter at scale 1, as in the reference). ``grouping`` says how layers were found.
    """
    from dropbench.pretrain.models import model_class, model_family

    constructor = optim_wrapper.get("constructor")
    cfg = dict(optim_wrapper.get("paramwise_cfg") or {})
    if constructor == "TimmLayerDecayOptimizerConstructor":
        applied = hasattr(model_class(model_name), "group_matcher")
        return {"constructor": constructor, "rate": cfg.get("layer_decay_rate"), "applied": applied,
                "grouping": "timm group_matcher" if applied else "none: the model has no group_matcher"}
    if constructor == "ConvNeXtLayerDecayOptimizerConstructor":
        applied = model_family(model_name) == "convnext"
        return {"constructor": constructor, "rate": cfg.get("decay_rate"), "decay_type": cfg.get("decay_type"),
                "applied": applied, "grouping": "ConvNeXt names" if applied else
                "none: the ConvNeXt rule recognises no layer of this model (scale 1, as the reference)"}
    return {"constructor": constructor, "applied": False, "grouping": "none"}


# timm names of a ConvNeXt -> the names the reference code reads (its ConvNeXt keeps the stem and the downsampling
# layers in ``downsample_layers``, the blocks in ``stages.i.j``); ViT-style tokens keep their name under ``backbone.``
_REFERENCE_RENAMES = (
    (re.compile(r"^stem\.(.*)$"), r"backbone.downsample_layers.0.\1"),
    (re.compile(r"^stages\.(\d+)\.downsample\.(.*)$"), r"backbone.downsample_layers.\1.\2"),
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.(.*)$"), r"backbone.stages.\1.\2.\3"),
    (re.compile(r"^(cls_token|mask_token|pos_embed)$"), r"backbone.\1"),
)
_TOKENS = ("backbone.cls_token", "backbone.mask_token", "backbone.pos_embed")


def reference_name(name: str, backbone: str = "backbone.model") -> str:
    """The name the reference constructor would see for parameter ``name`` of a dropbench detector / segmentor.

    The reference code reads a ConvNeXt at ``backbone.`` (``backbone.downsample_layers.i``, ``backbone.stages.i.j``);
    dropbench's timm ConvNeXt sits at ``backbone.model.`` under timm's names (``stem``, ``stages.i.downsample``,
    ``stages.i.blocks.j``), which are renamed. Any other name is returned unchanged: the reference recognises nothing
    else, so a Swin backbone (``backbone.model.layers...``), the adapter's output norms, the neck and the heads all
    fall to its "unrecognised" branch, as mmdet's Swin, the ConvNeXt ``norm{i}`` layers, FPN and heads do there.
    """
    prefix = backbone + "."
    if not name.startswith(prefix):
        return name
    inner = name[len(prefix):]
    for pattern, repl in _REFERENCE_RENAMES:
        if pattern.match(inner):
            return pattern.sub(repl, inner)
    return name


def convnext_layer_id(ref_name: str, decay_type: str, num_layers: int) -> int:
    """Layer id of a (reference-named) parameter, as ``get_num_layer_layer_wise`` / ``get_num_layer_stage_wise`` of
    facebookresearch/ConvNeXt ``object_detection/mmcv_custom/layer_decay_optimizer_constructor.py`` give it.

    ``num_layers`` is the config's value (6). ``layer_wise``: downsample 0 -> 0, 1 -> 2, 2 -> 3, 3 -> ``num_layers``;
    stage 0 -> 1, 1 -> 2, 2 -> 3 + block // 3, 3 -> ``num_layers``; anything else ``num_layers + 1``.
    ``stage_wise`` (called there with ``num_layers + 2``): downsample -> 0, stage i -> i + 1, anything else
    ``num_layers + 1``. Class / mask tokens and position embeddings get 0 in both.
    """
    if ref_name in _TOKENS:
        return 0
    parts = ref_name.split(".")
    if decay_type == "layer_wise":
        if ref_name.startswith("backbone.downsample_layers"):
            return {0: 0, 1: 2, 2: 3, 3: num_layers}[int(parts[2])]
        if ref_name.startswith("backbone.stages"):
            stage, block = int(parts[2]), int(parts[3])
            return {0: 1, 1: 2, 2: 3 + block // 3, 3: num_layers}[stage]
        return num_layers + 1
    if decay_type == "stage_wise":
        if ref_name.startswith("backbone.downsample_layers"):
            return 0
        if ref_name.startswith("backbone.stages"):
            return int(parts[2]) + 1
        return num_layers + 1
    raise ValueError(f"decay_type must be 'layer_wise' or 'stage_wise', got {decay_type!r}")


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ConvNeXtLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """The ConvNeXt downstream recipe's layer-wise lr decay (facebookresearch/ConvNeXt
    ``object_detection/mmcv_custom/layer_decay_optimizer_constructor.py``, ``LearningRateDecayOptimizerConstructor``)
    on a timm backbone.

    ``paramwise_cfg``: ``decay_rate``, ``decay_type`` (``layer_wise`` | ``stage_wise``), ``num_layers`` (6 in the
    reference configs) and ``backbone`` (the timm model's path, default ``backbone.model``). As in the reference:
    ``num_layers + 2`` layer ids; a parameter in layer ``i`` gets ``lr * decay_rate ** (num_layers + 2 - i - 1)``;
    names it does not recognise (neck, heads, the adapter's output norms, every parameter of a non-ConvNeXt backbone
    such as Swin) get the top id, scale 1; 1-D parameters and ``.bias`` get no weight decay (its
    ``name in ('pos_embed', 'cls_token')`` test never matches a full ``backbone.``-prefixed name, so it adds nothing:
    a Swin relative-position table, 2-D, keeps weight decay there and here). Frozen parameters are left out.
    """

    def add_params(self, params: list[dict], module: nn.Module, **kwargs) -> None:
        cfg = dict(self.paramwise_cfg or {})
        missing = [k for k in ("decay_rate", "num_layers") if k not in cfg]
        if missing:
            raise ValueError(f"ConvNeXtLayerDecayOptimizerConstructor needs paramwise_cfg keys {missing} "
                             f"(the reference configs: decay_rate=0.95 or 0.9, num_layers=6)")
        decay, given = float(cfg["decay_rate"]), int(cfg["num_layers"])
        decay_type = cfg.get("decay_type", "layer_wise")
        backbone = cfg.get("backbone", "backbone.model")
        num_layers = given + 2
        base_lr, base_wd = self.base_lr, self.base_wd or 0.0
        groups: dict[str, dict] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            no_wd = param.ndim == 1 or name.endswith(".bias")
            layer = convnext_layer_id(reference_name(name, backbone), decay_type, given)
            key = f"layer_{layer}_{'no_decay' if no_wd else 'decay'}"
            if key not in groups:
                scale = decay ** (num_layers - layer - 1)
                groups[key] = {"params": [], "lr": base_lr * scale, "weight_decay": 0.0 if no_wd else base_wd,
                               "layer_id": layer, "lr_scale": scale, "group_name": key}
            groups[key]["params"].append(param)
        params.extend(groups.values())
        log.info("ConvNeXt layer decay (%s, %.3f, num_layers %d): %d param groups", decay_type, decay, given,
                 len(groups))
