"""One backbone adapter for the dense tasks: a paper model or any timm architecture as a 4-level NCHW feature pyramid.

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

Any other timm architecture is read through timm's own feature API (:func:`pyramid_layout`): its ``feature_info``
gives each feature level's channels and stride, ``forward_intermediates`` the maps. A hierarchical model (ResNet,
RegNet, EfficientNet, ConvNeXt, Swin, ...) gives the last level at each of the strides 4, 8, 16 and 32; a plain
transformer (every level at stride 16: ViT, DeiT) gives four evenly spaced blocks through the simple feature pyramid
above. ViT-like models are built with ``dynamic_img_size``, Swin-like ones as the paper's Swin-F (windows padded
before they are shifted); inputs are padded to the largest stride (to the patch for ViT / Swin). Output LayerNorms
(``out_norm``) are added for the transformer and ConvNeXt families, as for the paper models; convolutional networks
return their (batch-normalised) stage outputs, as mmdet's ResNet does. Classifier-side layers the pyramid never reaches
(a ViT's final norm, EfficientNet's head convolution) are found by one forward / backward pass on the meta device and
frozen. A model whose features cannot make the pyramid (no feature API, strides that miss 4-32, a fixed input size
such as MLP-Mixer's) is refused with :class:`PyramidError`, naming the reason and models that work.

The drop-path rate is fixed (the fine-tuning recipe's): no schedule is applied downstream. Mixer models are refused:
their token mixing is tied to the pretraining patch count.

mmdet and mmseg register this class in their registries (``finetune.det``, ``finetune.seg``); it imports only
mmengine and timm itself.
"""

from __future__ import annotations

import json
import logging
import math
import os
import types
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from dropbench.finetune.convert import LoadReport, build_for_checkpoint, hub_config, load_pretrained
from dropbench.pretrain.config import resolve_config
from dropbench.pretrain.models import (
    PAPER_MODELS,
    check_model,
    create_paper_model,
    model_accepts,
    model_family,
    paper_model,
)
from mmengine.model import BaseModule
from timm.models.swin_transformer import window_partition, window_reverse

__all__ = ["DENSE_EXAMPLES", "LayerNorm2d", "PyramidError", "PyramidLayout", "SimplePyramid", "TimmPyramidBackbone",
           "check_dense", "checkpoint_model_args", "pyramid_channels", "pyramid_layout", "recipe_template",
           "resolve_recipe"]

log = logging.getLogger(__name__)
_VIT_DIMS = {"vit_tiny": 192, "vit_base": 768}
# classifier-side norms the pyramid never uses: kept (the checkpoint fills them), frozen (no gradient would reach
# them, and DDP refuses parameters without gradients unless find_unused_parameters is set)
_UNUSED = {"vit": ("norm", "fc_norm"), "swin": ("norm",), "convnext": ("head.norm",)}
# what the input is padded to (see the module docstring): the patch size, or the largest stride where the model
# cannot pad its later stages itself
_SIZE_DIVISOR = {"vit": 16, "swin": 4, "convnext": 32}
_STRIDES = (4, 8, 16, 32)
# named in refusals: architectures whose features make the pyramid (checked by tests/finetune/test_any_model.py)
DENSE_EXAMPLES = ("vit_tiny", "swin_femto", "convnext_femto", "resnet50", "convnext_tiny",
                  "swin_tiny_patch4_window7_224", "vit_small_patch16_224", "deit_tiny_patch16_224", "efficientnet_b0",
                  "regnety_002")


class PyramidError(ValueError):
    """A model whose features cannot make the 4-level stride 4-32 pyramid of the detection / segmentation heads."""


@dataclass(frozen=True)
class PyramidLayout:
    """How a timm model (not a paper model) gives the pyramid, read off timm's feature API.

    Attributes:
        kind: ``stages`` (hierarchical: one feature level per stride) or ``blocks`` (plain transformer at stride 16,
            resampled by :class:`SimplePyramid`).
        indices: the ``forward_intermediates`` indices (= ``feature_info`` positions) of the four levels.
        channels: each pyramid level's channels.
        size_divisor: what inputs are padded to.
        build: keyword arguments the model is built with for variable input sizes.
        unused: parameters the pyramid never reaches (frozen).
        out_norm: whether the levels get an output LayerNorm (transformers and ConvNeXt).
    """

    kind: str
    indices: tuple[int, ...]
    channels: tuple[int, ...]
    size_divisor: int
    build: tuple[tuple[str, object], ...]
    unused: tuple[str, ...]
    out_norm: bool


def checkpoint_model_args(checkpoint: str | os.PathLike | None) -> str:
    """A hub folder's ``model_args`` (the architecture's reconstruction arguments) as a JSON key; ``{}`` otherwise."""
    if not checkpoint or not os.path.exists(checkpoint):
        return "{}"
    config = hub_config(checkpoint)
    return json.dumps((config or {}).get("model_args") or {}, sort_keys=True)


def check_dense(model_name: str, checkpoint: str | os.PathLike | None = None) -> None:
    """Refuse, before anything trains, a model that cannot be a detection / segmentation backbone (naming why and
    models that work): the paper's Mixers, and timm architectures whose features cannot make the pyramid."""
    if model_name in PAPER_MODELS:
        if not paper_model(model_name).dense:
            raise ValueError(f"{model_name} cannot be a detection backbone (classification only); choose vit_tiny, "
                             f"vit_base, swin_femto or convnext_femto")
        return
    pyramid_layout(model_name, checkpoint_model_args(checkpoint))


def recipe_template(model_name: str, model_args: str = "{}") -> str:
    """The paper model whose per-model recipes (``paper-3x``, ``paper-160k``) a timm architecture takes: Swin-F's for
    Swin-like models, ViT-B's for plain transformers, ConvNeXt-F's for any other hierarchical model (its layer-decay
    rule recognises ConvNeXt names; elsewhere it leaves every parameter at scale 1, as the reference does for Swin)."""
    if model_name in PAPER_MODELS:
        return model_name
    layout = pyramid_layout(model_name, model_args)
    if layout.kind == "blocks":
        return "vit_base"
    return "swin_femto" if model_family(model_name) == "swin" else "convnext_femto"


def resolve_recipe(stage: str, config: str, model_name: str, model_args: str = "{}") -> tuple[Path, str | None]:
    """A det / seg recipe file for ``model_name``: its own (model-independent recipes such as ``smoke``, a file, a
    paper model's), else, for a timm architecture, the per-model recipe of :func:`recipe_template`.

    Returns (file, the paper model whose recipe it is, or None when it is the model's own / model-independent); the
    caller replaces the model name and leaves the model-dependent values (FPN / head ``in_channels``) to be filled
    from the model.
    """
    try:
        return resolve_config(stage, config, model_name), None
    except ValueError:
        if model_name in PAPER_MODELS or os.sep in config or config.endswith(".py"):
            raise
    template = recipe_template(model_name, model_args)
    return resolve_config(stage, config, template), template


def _refuse(name: str, why: str) -> PyramidError:
    return PyramidError(f"{name} cannot be a detection / segmentation backbone: {why}. Models whose features make "
                        f"the stride 4-32 pyramid: hierarchical timm models (four feature levels at strides 4, 8, 16, "
                        f"32) and plain ViTs with 16 px patches, e.g. {', '.join(DENSE_EXAMPLES)}; "
                        f"{name} can still be fine-tuned for classification")


@cache
def pyramid_layout(model_name: str, model_args: str = "{}") -> PyramidLayout:
    """Read how a timm architecture gives the pyramid from its ``feature_info`` and a ``forward_intermediates`` /
    backward probe at an odd input size on the meta device (no memory, no compute).

    Args:
        model_name: a timm architecture (not a paper model: those have their own rules, above).
        model_args: JSON of the checkpoint's reconstruction arguments (:func:`checkpoint_model_args`).

    Raises:
        PyramidError: no feature API, strides that do not cover 4-32 (or a plain model not at stride 16), fewer than
            four levels, or maps that do not follow the input size (a model tied to one input size).
    """
    check_model(model_name)
    family = model_family(model_name)
    accepts = model_accepts(model_name, "dynamic_img_size", "strict_img_size", "always_partition")
    build: dict = {}
    if family == "swin" and accepts["strict_img_size"] and accepts["always_partition"]:
        build.update(strict_img_size=False, always_partition=True)  # as the paper's Swin-F (see the class)
    elif accepts["dynamic_img_size"]:
        build["dynamic_img_size"] = True
    try:
        with torch.device("meta"):
            model = build_for_checkpoint(model_name, {"model_args": json.loads(model_args)}, num_classes=0, **build)
    except Exception as e:  # noqa: BLE001  (any build failure is the model's: say which)
        raise _refuse(model_name, f"timm cannot build it for variable input sizes ({type(e).__name__}: {e})") from None
    info = getattr(model, "feature_info", None)
    if not info or not hasattr(model, "forward_intermediates"):
        raise _refuse(model_name, "it has no timm feature API (feature_info / forward_intermediates)")
    info = list(info)
    strides = [int(f["reduction"]) for f in info]
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if set(_STRIDES) <= set(strides):
        kind = "stages"
        indices = tuple(max(i for i, s in enumerate(strides) if s == stride) for stride in _STRIDES)
        channels = tuple(int(info[i]["num_chs"]) for i in indices)
        divisor = int(patch[0]) if family == "swin" and patch else max(_STRIDES)
    elif set(strides) == {16} and len(info) >= 4:
        kind, n = "blocks", len(info)
        indices = (n // 4 - 1, n // 2 - 1, 3 * n // 4 - 1, n - 1)
        channels = (int(info[-1]["num_chs"]),) * 4
        divisor = 16
    else:
        raise _refuse(model_name, f"its features are at strides {sorted(set(strides))} ({len(info)} levels), which "
                      f"give neither four levels at strides 4-32 nor a plain stride-16 transformer of 4+ blocks")
    h, w = 3 * 32 + divisor, 5 * 32  # not the pretraining size, not square; a multiple of the divisor
    try:
        with torch.device("meta"):
            model.train()
            maps = model.forward_intermediates(torch.zeros(1, 3, h, w), indices=list(indices), output_fmt="NCHW",
                                               intermediates_only=True)
            sum(m.float().sum() for m in maps).backward()
    except Exception as e:  # noqa: BLE001
        raise _refuse(model_name, f"its features do not take inputs of other sizes than its pretraining size "
                      f"({type(e).__name__}: {e})") from None
    want = ([(c, math.ceil(h / s), math.ceil(w / s)) for c, s in zip(channels, _STRIDES)] if kind == "stages" else
            [(c, h // 16, w // 16) for c in channels])
    got = [tuple(int(d) for d in m.shape[1:]) for m in maps]
    if got != want:
        raise _refuse(model_name, f"at input {h}x{w} its levels are {got}, not {want} (channels, height, width)")
    unused = tuple(n for n, p in model.named_parameters() if p.requires_grad and p.grad is None)
    out_norm = family in ("vit", "swin", "convnext") or kind == "blocks"
    return PyramidLayout(kind, indices, channels, divisor, tuple(sorted(build.items())), unused, out_norm)


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
def pyramid_channels(model_name: str, model_args: str = "{}") -> tuple[int, ...]:
    """Channels of the four pyramid levels of a model (the FPN / UperNet ``in_channels``); ``model_args``: a hub
    checkpoint's reconstruction arguments (:func:`checkpoint_model_args`), for timm architectures."""
    if model_name not in PAPER_MODELS:
        return pyramid_layout(model_name, model_args).channels
    spec = paper_model(model_name)
    if spec.family == "vit":
        return (_VIT_DIMS[model_name],) * 4
    m = create_paper_model(model_name, num_classes=0)
    return tuple(int(info["num_chs"]) for info in m.feature_info)


class TimmPyramidBackbone(BaseModule):
    """A paper model or a timm architecture as a detection / segmentation backbone returning four NCHW maps.

    Args:
        model_name: a paper model (``vit_tiny``, ``vit_base``, ``swin_femto``, ``convnext_femto``) or any timm
            architecture whose features make the pyramid (:func:`pyramid_layout`).
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
        self.checkpoint, self.use_ema = checkpoint, use_ema
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.load_report: LoadReport | None = None
        self.model_name = model_name
        self.layout: PyramidLayout | None = None
        if model_name not in PAPER_MODELS:
            self._build_any(model_name, checkpoint, drop_path_rate, img_size, out_norm)
            return
        spec = paper_model(model_name)
        if not spec.dense:
            raise ValueError(f"{model_name} cannot be a detection / segmentation backbone: MLP-Mixer's token mixing "
                             f"is tied to the pretraining patch count (classification only)")
        self.family = spec.family
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
            self._pad_then_shift()
        for path in _UNUSED[self.family]:
            for p in self.model.get_submodule(path).parameters():
                p.requires_grad = False
        self._freeze()

    def _build_any(self, model_name: str, checkpoint: str | None, drop_path_rate: float, img_size: int,
                   out_norm: bool) -> None:
        """A timm architecture as :func:`pyramid_layout` reads it (built with the checkpoint's ``model_args``)."""
        model_args = checkpoint_model_args(checkpoint)
        layout = pyramid_layout(model_name, model_args)
        if self.frozen_stages >= 0:
            raise ValueError(f"frozen_stages={self.frozen_stages}: freezing stages is implemented for the paper "
                             f"models; set model.backbone.frozen_stages=-1 for {model_name}")
        self.layout, self.family = layout, model_family(model_name)
        self.model = build_for_checkpoint(model_name, {"model_args": json.loads(model_args)}, num_classes=0,
                                          drop_path=drop_path_rate, img_size=img_size, **dict(layout.build))
        self.block_indices = list(layout.indices)
        use_norm = out_norm and layout.out_norm
        if layout.kind == "blocks":
            self.pyramid = SimplePyramid(layout.channels[0], use_norm)
        else:
            self.norms = nn.ModuleList(LayerNorm2d(c) if use_norm else nn.Identity() for c in layout.channels)
        if self.family == "swin":
            self._pad_then_shift()
        params = dict(self.model.named_parameters())
        for name in layout.unused:
            params[name].requires_grad = False

    def _pad_then_shift(self) -> None:
        for stage in self.model.layers:
            for block in stage.blocks:
                block._attn = types.MethodType(_swin_attn_pad_then_shift, block)

    @property
    def out_channels(self) -> list[int]:
        channels = self.layout.channels if self.layout is not None else pyramid_channels(self.model_name)
        return [channels[i] for i in self.out_indices]

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
        div = self.layout.size_divisor if self.layout is not None else _SIZE_DIVISOR[self.family]
        if h % div or w % div:
            x = F.pad(x, (0, -w % div, 0, -h % div))
        if self.layout is not None:
            maps = self.model.forward_intermediates(x, indices=self.block_indices, output_fmt="NCHW",
                                                    intermediates_only=True)
            outs = self.pyramid(maps) if self.layout.kind == "blocks" else \
                [norm(m) for norm, m in zip(self.norms, maps, strict=True)]
        elif self.family == "vit":
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
