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

Any input size is accepted (multi-scale test-time augmentation and sliding-window crops reach the backbone at arbitrary
sizes): the input is zero-padded at the bottom and right to the family's size divisor, as OpenMMLab's backbones pad
(``PatchEmbed(padding='corner')``), and level i is cropped to ``ceil(H / stride_i) x ceil(W / stride_i)``, the sizes
mmdet's / mmseg's Swin return. Swin-F pads to its patch size (4): timm's Swin then pads to whole windows and even
patch-merging sizes itself. Where a stage is no whole number of 7x7 windows (a 512 px crop: 128, 64, 32, 16), timm
shifts the windows before padding, the Swin detection / segmentation code (mmdet's and mmseg's ``SwinTransformer``, the
official Swin-Transformer-Object-Detection) pads before shifting; the adapter gives each block the reference order
(:func:`_swin_attn_pad_then_shift`), so the maps equal mmdet's at any size. ViT pads to its patch size (16); the
stride-32 level max-pools with ``ceil_mode``. ConvNeXt-F pads to 32 (dropbench's choice: the ConvNeXt segmentation
backbone leaves the input unpadded, its strided convolutions dropping the last rows and columns; the two agree on
multiples of 32, e.g. every full 512 x 512 sliding-window crop).

The drop-path rate is fixed (the fine-tuning recipe's): no schedule is applied downstream. Mixer models are refused:
their token mixing is tied to the pretraining patch count.

mmdet and mmseg register this class in their registries (``finetune.det``, ``finetune.seg``); it imports only
mmengine and timm itself.
"""

from __future__ import annotations

import logging
import math
import types
from functools import cache

import torch
import torch.nn as nn
import torch.nn.functional as F
from dropbench.finetune.convert import LoadReport, load_pretrained
from dropbench.pretrain.models import create_paper_model, paper_model
from mmengine.model import BaseModule
from timm.models.swin_transformer import window_partition, window_reverse

__all__ = ["LayerNorm2d", "SimplePyramid", "TimmPyramidBackbone", "pyramid_channels"]

log = logging.getLogger(__name__)
_VIT_DIMS = {"vit_tiny": 192, "vit_base": 768}
# classifier-side norms the pyramid never uses: kept (the checkpoint fills them), frozen (no gradient would reach
# them, and DDP refuses parameters without gradients unless find_unused_parameters is set)
_UNUSED = {"vit": ("norm", "fc_norm"), "swin": ("norm",), "convnext": ("head.norm",)}
# what the input is padded to (see the module docstring): the patch size, or the largest stride where the model
# cannot pad its later stages itself
_SIZE_DIVISOR = {"vit": 16, "swin": 4, "convnext": 32}
_STRIDES = (4, 8, 16, 32)


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
        self.down2 = nn.MaxPool2d(2, 2, ceil_mode=True)  # ceil: an odd stride-16 map keeps its last row
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
        if spec.family == "swin":
            for stage in self.model.layers:
                for block in stage.blocks:
                    block._attn = types.MethodType(_swin_attn_pad_then_shift, block)
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
        h, w = x.shape[-2:]
        div = _SIZE_DIVISOR[self.family]
        if h % div or w % div:
            x = F.pad(x, (0, -w % div, 0, -h % div))
        if self.family == "vit":
            maps = self.model.forward_intermediates(x, indices=self.block_indices, output_fmt="NCHW",
                                                    intermediates_only=True)
            outs = self.pyramid(maps)
        else:
            maps = self.model.forward_intermediates(x, indices=4, output_fmt="NCHW", intermediates_only=True)
            outs = [norm(m) for norm, m in zip(self.norms, maps, strict=True)]
        return tuple(_crop(outs[i], math.ceil(h / _STRIDES[i]), math.ceil(w / _STRIDES[i])) for i in self.out_indices)


def _swin_attn_pad_then_shift(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Window attention of a timm ``SwinTransformerBlock`` in the reference order: pad to whole windows, then shift.

    The Swin detection / segmentation backbones (mmdet's and mmseg's ``ShiftWindowMSA``) pad the NHWC map to a
    multiple of the window first, shift it cyclically, mask the shifted windows over the padded map and crop back;
    timm shifts the unpadded map, then pads, which computes another function wherever the map is no whole number of
    windows. Bound to each block by :class:`TimmPyramidBackbone` (timm's ``_attn`` signature).
    """
    _, h, w, c = x.shape
    wh, ww = block.window_size
    x = F.pad(x, (0, 0, 0, -w % ww, 0, -h % wh))
    _, hp, wp, _ = x.shape
    shift = tuple(block.shift_size)
    mask = None
    if any(shift):
        x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        mask = block.get_attn_mask(x)  # the shifted-window regions of the padded map, as mmdet computes them
    windows = window_partition(x, block.window_size).view(-1, wh * ww, c)
    x = window_reverse(block.attn(windows, mask=mask).view(-1, wh, ww, c), block.window_size, hp, wp)
    if any(shift):
        x = torch.roll(x, shifts=shift, dims=(1, 2))
    return x[:, :h, :w, :].contiguous()


def _crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The top-left ``h x w`` of an NCHW map, contiguous (a no-op when it is that size already)."""
    if x.shape[-2] < h or x.shape[-1] < w:
        raise RuntimeError(f"pyramid level of size {tuple(x.shape[-2:])} is smaller than the {h}x{w} it must cover")
    return x[..., :h, :w].contiguous() if x.shape[-2:] != (h, w) else x
