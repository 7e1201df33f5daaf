"""Layer-wise learning-rate decay for detectors and segmentors whose backbone is a timm model.

mmseg's ``LearningRateDecayOptimizerConstructor`` only recognises its own ConvNeXt / BEiT / MAE classes and raises
``NotImplementedError`` for a timm backbone. :class:`TimmLayerDecayOptimizerConstructor` keys the layer ids on timm's
own ``group_matcher`` (as timm's ``param_groups_layer_decay`` does): a backbone parameter in layer ``i`` of ``L``
trainable layer groups (0: the stem) gets ``lr * decay ** (L - i)``, so the deepest block gets ``decay`` and the stem
``decay ** L``, as in the BEiT downstream recipe; everything outside the backbone (neck, heads, the adapter's
pyramid) gets the full rate. 1-D parameters and the model's ``no_weight_decay()`` names (position embeddings, class
token, relative position tables) get no weight decay.

Config (mmengine)::

    optim_wrapper = dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        constructor='TimmLayerDecayOptimizerConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.9, backbone='backbone.model'))
"""

from __future__ import annotations

import logging

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from timm.models import group_parameters

__all__ = ["TimmLayerDecayOptimizerConstructor", "layer_groups"]

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
        layer_map, num_layers = layer_groups(timm_model)
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
