"""The paper's ImageNet models, built from timm.

"Dropout Reduces Underfitting" (Liu et al., ICML 2023, https://arxiv.org/abs/2303.01500) trains ViT-T/16, ViT-B/16,
Swin-F, ConvNeXt-F, Mixer-S/32 and Mixer-B/16 under the names its official code registers (facebookresearch/dropout,
CC-BY-NC 4.0). The architectures are timm's; this module only registers the paper's names that timm lacks, so that
``timm.create_model('swin_femto')`` works, and keeps one table (:data:`PAPER_MODELS`) that the rest of dropbench reads:
which timm family each model belongs to and whether it accepts dropout (ConvNeXt does not, as in the paper's code).
Fine-tuning also takes any other timm architecture (:func:`create_model`, :func:`check_model`): built by timm at a
fixed drop-path rate, never with the paper's dropout schedules.

Drop rates are ordinary keyword arguments (``drop_rate``, ``drop_path_rate``). Unlike timm's own Swin, whose default
stochastic-depth rate is 0.1, every model here defaults to no dropout and no stochastic depth. Dropout sits where the
official models have it (facebookresearch/dropout ``models/``): timm's Swin has no dropout after the patch embedding,
so ``swin_femto`` adds one (``patch_embed.pos_drop``, rate ``pos_drop_rate``), as the official Swin's ``pos_drop``;
:func:`create_paper_model` never sets the classifier's dropout (timm's ``head_drop``, Swin's ``head.drop``), which the
official models do not have.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cache, partial

import timm
import torch
import torch.nn as nn
from dropbench.pretrain.schedules import DropRateApplier
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import PatchEmbed
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.mlp_mixer import MlpMixer
from timm.models.mlp_mixer import checkpoint_filter_fn as _mixer_filter
from timm.models.swin_transformer import SwinTransformer
from timm.models.swin_transformer import checkpoint_filter_fn as _swin_filter
from timm.models.vision_transformer import VisionTransformer
from timm.models.vision_transformer import checkpoint_filter_fn as _vit_filter

__all__ = ["PAPER_MODELS", "PaperModel", "PatchEmbedDropout", "check_model", "create_model", "create_paper_model",
           "model_class", "model_family", "model_label", "paper_model"]


@dataclass(frozen=True)
class PaperModel:
    """What dropbench needs to know about one of the paper's models.

    Attributes:
        name: the paper's (and timm registry's) model name.
        label: the name the paper's tables use.
        family: timm model family (``vit``, ``swin``, ``convnext``, ``mixer``); selects checkpoint rules and features.
        supports_dropout: whether dropout may be scheduled (the paper's ConvNeXt has no dropout).
        dense: whether the model can serve as a detection / segmentation backbone (Mixer's token mixing is tied to
            the patch count, so it is classification only).
    """

    name: str
    label: str
    family: str
    supports_dropout: bool = True
    dense: bool = True


PAPER_MODELS: dict[str, PaperModel] = {
    m.name: m
    for m in (
        PaperModel("vit_tiny", "ViT-T", "vit"),
        PaperModel("vit_base", "ViT-B", "vit"),
        PaperModel("swin_femto", "Swin-F", "swin"),
        PaperModel("convnext_femto", "ConvNeXt-F", "convnext", supports_dropout=False),
        PaperModel("mixer_s32", "Mixer-S", "mixer", dense=False),
        PaperModel("mixer_b16", "Mixer-B", "mixer", dense=False),
    )
}


def paper_model(name: str) -> PaperModel:
    """Look up a paper model by name; raises ``ValueError`` naming the valid choices."""
    try:
        return PAPER_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(PAPER_MODELS)}") from None


def create_paper_model(
    name: str,
    num_classes: int = 1000,
    dropout: float = 0.0,
    drop_path: float = 0.0,
    img_size: int | None = None,
    **kwargs,
) -> nn.Module:
    """Build one of the paper's models with the given dropout and stochastic-depth rates.

    Args:
        name: a key of :data:`PAPER_MODELS`.
        num_classes: classifier outputs (0 for none).
        dropout: dropout rate of the official models' dropouts (ViT, Swin: position, attention, projection, MLP;
            Mixer: token and channel MLPs); never the classifier's.
        drop_path: peak stochastic-depth rate; block i of D gets ``drop_path * i / (D - 1)`` (Mixer too).
        img_size: input resolution for models that fix it at build time (ViT, Swin, Mixer); ignored by ConvNeXt.
        **kwargs: further timm keyword arguments (they win over the defaults).
    """
    spec = paper_model(name)
    if dropout and not spec.supports_dropout:
        raise ValueError(f"{name} has no dropout (as in the paper's code); use drop_path instead")
    args = dict(num_classes=num_classes, drop_path_rate=drop_path)
    if dropout:  # never drop_rate: timm gives it to the classifier's dropout, which the official models lack
        args.update(proj_drop_rate=dropout)
        if spec.family in ("vit", "swin"):
            args.update(pos_drop_rate=dropout, attn_drop_rate=dropout)
    if img_size is not None and spec.family != "convnext":
        args["img_size"] = img_size
    args.update(kwargs)
    model = timm.create_model(name, **args)
    # timm gives Mixer's blocks one uniform drop-path rate; the one applier writes the paper's rates into exactly
    # the modules a schedule controls, as scheduled runs have them
    if dropout:
        DropRateApplier(model, "dropout", dropout)(dropout)
    if drop_path:
        DropRateApplier(model, "drop_path", drop_path)(drop_path)
    return model


def check_model(name: str) -> str:
    """Validate a model name: a paper model or any timm architecture (a pretrained tag such as ``.fb_in1k`` allowed).

    Returns the name; raises ``ValueError`` naming the paper models and how to list timm's.
    """
    if name in PAPER_MODELS or timm.is_model(name):
        return name
    raise ValueError(f"unknown model {name!r}: neither a paper model ({', '.join(PAPER_MODELS)}) nor a timm "
                     f"architecture (python -c \"import timm; print(timm.list_models('{name.split('_')[0]}*'))\" "
                     f"lists timm's)")


def model_label(name: str) -> str:
    """The name tables print for a model: the paper's label (``Swin-F``) or the timm name itself."""
    return PAPER_MODELS[name].label if name in PAPER_MODELS else name


@cache
def model_class(name: str) -> type[nn.Module]:
    """The class timm builds for ``name`` (built once on the meta device: no memory, no weights)."""
    check_model(name)
    with torch.device("meta"):
        return type(timm.create_model(name, pretrained=False))


# timm modules -> the families the paper models use (so any ViT / Swin / ConvNeXt is treated as the paper's are)
_TIMM_FAMILIES = {"vision_transformer": "vit", "swin_transformer": "swin", "convnext": "convnext", "mlp_mixer": "mixer"}


def model_family(name: str) -> str:
    """``vit`` / ``swin`` / ``convnext`` / ``mixer`` for the paper models and timm models of those classes, else the
    timm module's name (``resnet``, ``efficientnet``, ...)."""
    if name in PAPER_MODELS:
        return PAPER_MODELS[name].family
    module = model_class(name).__module__.rsplit(".", 1)[-1]
    return _TIMM_FAMILIES.get(module, module)


def model_accepts(name: str, *keys: str) -> dict[str, bool]:
    """Which of the keyword arguments ``keys`` the model's class takes (``img_size``, ``dynamic_img_size``, ...)."""
    params = inspect.signature(model_class(name).__init__).parameters
    return {k: k in params for k in keys}


def create_model(
    name: str,
    num_classes: int = 1000,
    dropout: float = 0.0,
    drop_path: float = 0.0,
    img_size: int | None = None,
    **kwargs,
) -> nn.Module:
    """A paper model (:func:`create_paper_model`, unchanged) or any timm architecture, at fixed drop rates.

    A timm architecture gets timm's own ``drop_path_rate`` (its own spread over depth) and ``img_size`` where its class
    takes one (ViT, Swin; convolutional networks take any size). Scheduled dropout is the paper models' (ConvNeXt,
    ResNet, EfficientNet have no dropouts of the kind the paper schedules): a timm architecture with ``dropout``
    raises ``ValueError``.
    """
    if name in PAPER_MODELS:
        return create_paper_model(name, num_classes=num_classes, dropout=dropout, drop_path=drop_path,
                                  img_size=img_size, **kwargs)
    check_model(name)
    if dropout:
        raise ValueError(f"{name} is not a paper model: dropout is scheduled only in the paper models "
                         f"({', '.join(PAPER_MODELS)}); fine-tune it with drop path (drop.kind='drop_path')")
    args: dict = dict(num_classes=num_classes, pretrained=False)
    if drop_path:
        args["drop_path_rate"] = drop_path
    if img_size is not None and model_accepts(name, "img_size")["img_size"]:
        args["img_size"] = img_size
    args.update(kwargs)
    return timm.create_model(name, **args)


class PatchEmbedDropout(PatchEmbed):
    """timm's patch embedding followed by the official Swin's ``pos_drop`` (facebookresearch/dropout
    ``models/swin_transformer.py``: ``x = self.pos_drop(self.patch_embed(x))``); no parameters of its own, so
    checkpoints and timm's key names are unchanged."""

    def __init__(self, *args, drop_rate: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pos_drop = nn.Dropout(p=drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pos_drop(super().forward(x))


def _cfg(**kwargs) -> dict:
    return {
        "url": "",
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": None,
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj",
        "classifier": "head",
        **kwargs,
    }


default_cfgs = generate_default_cfgs(
    {
        "vit_tiny": _cfg(),
        "vit_base": _cfg(),
        "swin_femto": _cfg(),
        "mixer_s32": _cfg(first_conv="stem.proj"),
        "mixer_b16": _cfg(first_conv="stem.proj"),
    }
)


def _create(cls: type[nn.Module], variant: str, filter_fn, model_args: dict, **kwargs) -> nn.Module:
    """Build ``cls`` through timm's builder, as timm's own families do; the caller's kwargs win."""
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    out_indices = kwargs.pop("out_indices", 3 if cls is not SwinTransformer else (0, 1, 2, 3))
    if cls is SwinTransformer:
        feature_cfg = dict(flatten_sequential=True, out_indices=out_indices)
    else:
        feature_cfg = dict(out_indices=out_indices, feature_cls="getter")
    return build_model_with_cfg(
        cls,
        variant,
        pretrained=False,
        pretrained_filter_fn=filter_fn,
        feature_cfg=feature_cfg,
        **dict(model_args, **kwargs),
    )


def _unique(fn):
    """Register a model entrypoint with timm; registering a name that timm already knows is an error."""
    if timm.is_model(fn.__name__):
        raise RuntimeError(f"timm already has a model named {fn.__name__!r}; refusing to overwrite it")
    return register_model(fn)


@_unique
def vit_tiny(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """ViT-T/16 (the paper's ``vit_tiny``): dim 192, depth 12, 3 heads."""
    model_args = dict(patch_size=16, embed_dim=192, depth=12, num_heads=3, drop_path_rate=0.0)
    return _create(VisionTransformer, "vit_tiny", _vit_filter, model_args, **kwargs)


@_unique
def vit_base(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """ViT-B/16 (the paper's ``vit_base``): dim 768, depth 12, 12 heads."""
    model_args = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, drop_path_rate=0.0)
    return _create(VisionTransformer, "vit_base", _vit_filter, model_args, **kwargs)


@_unique
def swin_femto(pretrained: bool = False, **kwargs) -> SwinTransformer:
    """Swin-F (the paper's ``swin_femto``): patch 4, window 7, embed 40, depths 2-2-6-2, heads 2-4-8-16; a dropout
    after the patch embedding (``pos_drop_rate``), as the official Swin."""
    pos_drop_rate = float(kwargs.pop("pos_drop_rate", None) or 0.0)
    model_args = dict(
        patch_size=4, window_size=7, embed_dim=40, depths=(2, 2, 6, 2), num_heads=(2, 4, 8, 16), drop_path_rate=0.0,
        embed_layer=partial(PatchEmbedDropout, drop_rate=pos_drop_rate),
    )
    return _create(SwinTransformer, "swin_femto", _swin_filter, model_args, **kwargs)


@_unique
def mixer_s32(pretrained: bool = False, **kwargs) -> MlpMixer:
    """Mixer-S/32 (the paper's ``mixer_s32``): patch 32, 8 blocks, dim 512."""
    model_args = dict(patch_size=32, num_blocks=8, embed_dim=512)
    return _create(MlpMixer, "mixer_s32", _mixer_filter, model_args, **kwargs)


@_unique
def mixer_b16(pretrained: bool = False, **kwargs) -> MlpMixer:
    """Mixer-B/16 (the paper's ``mixer_b16``): patch 16, 12 blocks, dim 768."""
    model_args = dict(patch_size=16, num_blocks=12, embed_dim=768)
    return _create(MlpMixer, "mixer_b16", _mixer_filter, model_args, **kwargs)
