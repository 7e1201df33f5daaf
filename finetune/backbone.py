"""One backbone adapter for the dense tasks: a paper model, built by timm, as a 4-level NCHW feature pyramid.

:class:`TimmPyramidBackbone` builds the full timm model (classifier removed), loads converted weights through
:func:`finetune.convert.load_pretrained` in its own ``init_weights`` (mmengine calls ``init_weights`` on a detector's
children, and timm's ViT and Swin have one that would re-initialise them, so the adapter owns it), and returns
feature maps at strides 4, 8, 16 and 32 from timm's ``forward_intermediates``:

* Swin-F, ConvNeXt-F: the four stage outputs, each followed by a channels-first LayerNorm (as mmdet's Swin and the
  ConvNeXt detection backbone add);
* ViT-T, ViT-B: four intermediate blocks (evenly spaced: 3, 6, 9, 12 of 12) at stride 16, resampled to strides 4, 8,
  16, 32 by a simple feature pyramid (two / one 2x transposed convolutions, identity, 2x max-pool), the BEiT / ViTDet
  way. ViT is built with ``dynamic_img_size=True`` so any padded detection or segmentation size works.

The drop-path rate is fixed (the fine-tuning recipe's): no schedule is applied downstream. Mixer models are refused:
their token mixing is tied to the pretraining patch count.

mmdet and mmseg register this class in their registries (``finetune.det``, ``finetune.seg``); it imports only
mmengine and timm itself.
"""

from __future__ import annotations

import logging
from functools import cache

import torch
import torch.nn as nn
import torch.nn.functional as F
from dropbench.finetune.convert import LoadReport, load_pretrained
from dropbench.pretrain.models import create_paper_model, paper_model
from mmengine.model import BaseModule

__all__ = ["LayerNorm2d", "SimplePyramid", "TimmPyramidBackbone", "pyramid_channels"]

log = logging.getLogger(__name__)
_VIT_DIMS = {"vit_tiny": 192, "vit_base": 768}
# classifier-side norms the pyramid never uses: kept (the checkpoint fills them), frozen (no gradient would reach
# them, and DDP refuses parameters without gradients unless find_unused_parameters is set)
_UNUSED = {"vit": ("norm", "fc_norm"), "swin": ("norm",), "convnext": ("head.norm",)}


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map; the output is contiguous NCHW, the layout OpenMMLab's necks and
    heads are fastest on (a channels-last view made UperNet's CPU step about 8 % slower)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2).contiguous()


class SimplePyramid(nn.Module):
    """Stride-16 ViT maps -> strides 4, 8, 16, 32 (BEiT / ViTDet simple feature pyramid, channels kept)."""

    def __init__(self, dim: int, out_norm: bool = True) -> None:
        super().__init__()
        self.up4 = nn.Sequential(nn.ConvTranspose2d(dim, dim, 2, 2), LayerNorm2d(dim), nn.GELU(),
                                 nn.ConvTranspose2d(dim, dim, 2, 2))
        self.up2 = nn.ConvTranspose2d(dim, dim, 2, 2)
        self.down2 = nn.MaxPool2d(2, 2)
        self.norms = nn.ModuleList(LayerNorm2d(dim) if out_norm else nn.Identity() for _ in range(4))

    def forward(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = [self.up4(maps[0]), self.up2(maps[1]), maps[2], self.down2(maps[3])]
        return [norm(o) for norm, o in zip(self.norms, outs, strict=True)]


@cache
def pyramid_channels(model_name: str) -> tuple[int, ...]:
    """Channels of the four pyramid levels of a paper model (the FPN / UperNet ``in_channels``)."""
    spec = paper_model(model_name)
    if spec.family == "vit":
        return (_VIT_DIMS[model_name],) * 4
    m = create_paper_model(model_name, num_classes=0)
    return tuple(int(info["num_chs"]) for info in m.feature_info)


class TimmPyramidBackbone(BaseModule):
    """A paper model (timm) as a detection / segmentation backbone returning four NCHW maps.

    Args:
        model_name: paper model (``vit_tiny``, ``vit_base``, ``swin_femto``, ``convnext_femto``).
        checkpoint: pretrained checkpoint, any layout :mod:`finetune.convert` reads; loaded in ``init_weights``.
        use_ema: take the checkpoint's EMA weights.
        drop_path_rate: fixed stochastic-depth rate of the fine-tuning recipe.
        img_size: the size the model is built at (ViT position embeddings are resampled from it at run time).
        out_indices: which of the four levels to return.
        frozen_stages: freeze the patch embedding (0) and the first ``frozen_stages`` stages; -1 freezes nothing.
        out_norm: a LayerNorm over the channels of each output level (as mmdet's Swin and the ConvNeXt detection
            backbone have). Off, the levels are the raw stage outputs: a detector on a barely trained backbone
            (the CPU smoke recipe) learns far faster without the per-position normalisation.
        init_cfg: unused (weights come from ``checkpoint``); kept for mmengine's interface.
    """

    def __init__(
        self,
        model_name: str,
        checkpoint: str | None = None,
        use_ema: bool = False,
        drop_path_rate: float = 0.0,
        img_size: int = 224,
        out_indices: tuple[int, ...] = (0, 1, 2, 3),
        frozen_stages: int = -1,
        out_norm: bool = True,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=None)
        spec = paper_model(model_name)
        if not spec.dense:
            raise ValueError(f"{model_name} cannot be a detection / segmentation backbone: MLP-Mixer's token mixing "
                             f"is tied to the pretraining patch count (classification only)")
        self.model_name, self.family = model_name, spec.family
        self.checkpoint, self.use_ema = checkpoint, use_ema
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.load_report: LoadReport | None = None
        kwargs: dict = {}
        if spec.family == "vit":
            kwargs["dynamic_img_size"] = True
        elif spec.family == "swin":
            # any input size, masks computed per input; windows shifted in every stage, as in mmdet's SwinTransformer
            # and the Swin detection code (timm would drop the last stage's shift, sized for 224 px)
            kwargs.update(strict_img_size=False, always_partition=True)
        self.model = create_paper_model(model_name, num_classes=0, drop_path=drop_path_rate, img_size=img_size,
                                        **kwargs)
        if spec.family == "vit":
            depth = len(self.model.blocks)
            self.block_indices = [depth // 4 - 1, depth // 2 - 1, 3 * depth // 4 - 1, depth - 1]
            self.pyramid = SimplePyramid(self.model.embed_dim, out_norm)
        else:
            self.norms = nn.ModuleList(LayerNorm2d(c) if out_norm else nn.Identity()
                                       for c in pyramid_channels(model_name))
        for path in _UNUSED[self.family]:
            for p in self.model.get_submodule(path).parameters():
                p.requires_grad = False
        self._freeze()

    @property
    def out_channels(self) -> list[int]:
        return [pyramid_channels(self.model_name)[i] for i in self.out_indices]

    def init_weights(self) -> None:
        """Load the checkpoint (strictly, converted) into the timm model; the new neck keeps its fresh init."""
        if self.checkpoint:
            self.load_report = load_pretrained(self.model, self.checkpoint, self.model_name, self.use_ema)
        else:
            log.warning("%s backbone has no checkpoint: it starts from random initialisation", self.model_name)
        self._is_init = True

    def _freeze(self) -> None:
        if self.frozen_stages < 0:
            return
        m = self.model
        stem = [m.patch_embed] if hasattr(m, "patch_embed") else [m.stem]
        stages = list(m.layers if self.family == "swin" else m.stages if self.family == "convnext" else [])
        if self.family == "vit":
            per = len(m.blocks) // 4
            stages = [m.blocks[i * per:(i + 1) * per] for i in range(4)]
            stem += [p for p in (getattr(m, "cls_token", None), getattr(m, "pos_embed", None)) if p is not None]
        for part in stem + stages[: self.frozen_stages]:
            params = [part] if isinstance(part, nn.Parameter) else part.parameters()
            for p in params:
                p.requires_grad = False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.family == "vit":
            maps = self.model.forward_intermediates(x, indices=self.block_indices, output_fmt="NCHW",
                                                    intermediates_only=True)
            outs = self.pyramid(maps)
        else:
            maps = self.model.forward_intermediates(x, indices=4, output_fmt="NCHW", intermediates_only=True)
            outs = [norm(m) for norm, m in zip(self.norms, maps, strict=True)]
        return tuple(outs[i] for i in self.out_indices)
