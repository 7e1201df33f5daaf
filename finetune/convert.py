"""The one checkpoint converter: any checkpoint of a paper model -> that model's timm state dict, loaded strictly.

Sources it accepts:

* dropbench pretraining checkpoints (``{"model", "pretrain", "config", ...}``);
* the paper's released checkpoints (``{"model", "epoch", "args": argparse.Namespace, ...}``; weights named as in its
  ViT, Swin, ConvNeXt and Mixer classes written against timm 0.4.12: Swin's patch merging at the end of each stage
  and ``relative_position_index`` / ``attn_mask`` buffers, ConvNeXt's ``downsample_layers`` / ``pwconv`` names);
* plain timm state dicts, bare or under ``state_dict`` / ``model``; ``module.`` and ``_orig_mod.`` prefixes;
* EMA weights (``model_ema``) on request.

The flow is that of timm's ``checkpoint_filter_fn``: unwrap the container, rename with the family's filter (timm's
own rules, which also resample position embeddings and relative-position tables to the target's sizes), then compare
with the target model: anything missing, unexpected or of another shape is refused with :class:`CheckpointError`,
except the classification head, which may be absent, dropped, or of another size. Every fine-tuning path (detection,
segmentation, classification) and ``dropbench convert`` call :func:`load_pretrained`.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn
from dropbench.pretrain.checkpoint import CheckpointError, atomic_save, load_checkpoint_file
from dropbench.pretrain.models import create_paper_model, paper_model
from dropbench.pretrain.schedules import DropSpec
from timm.models import convnext, mlp_mixer, swin_transformer, vision_transformer

__all__ = [
    "CheckpointError",
    "LoadReport",
    "checkpoint_model",
    "convert_checkpoint",
    "convert_state_dict",
    "file_sha256",
    "load_pretrained",
    "read_checkpoint",
]

log = logging.getLogger(__name__)

_FILTERS = {
    "vit": vision_transformer.checkpoint_filter_fn,
    "swin": swin_transformer.checkpoint_filter_fn,
    "convnext": convnext.checkpoint_filter_fn,
    "mixer": mlp_mixer.checkpoint_filter_fn,
}
# the classifier: the only tensors a checkpoint may lack, or carry in another shape (another class count); a final
# norm (ConvNeXt's head.norm, ViT's fc_norm) is backbone and must load
_HEAD_KEYS = ("head.weight", "head.bias", "head.fc.weight", "head.fc.bias")
_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class LoadReport:
    """What loading a checkpoint into a model did.

    Attributes:
        path: the checkpoint file.
        sha256: its content hash.
        layout: ``dropbench``, ``paper`` or ``timm``.
        loaded: number of tensors copied into the model.
        missing: model tensors the checkpoint lacked (only head tensors can be here).
        unexpected: checkpoint tensors the model has no place for (only head tensors can be here).
        dropped_head: head tensors dropped because the model's head differs (other classes, or none).
        pretrain: how the checkpoint was pretrained (dropbench metadata, or read from the paper's ``args``).
        weights: ``model`` or ``model_ema``.
    """

    path: str
    sha256: str
    layout: str
    loaded: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped_head: list[str] = field(default_factory=list)
    pretrain: dict = field(default_factory=dict)
    weights: str = "model"

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (f"{self.path} ({self.layout} layout, {self.weights} weights): {self.loaded} tensors loaded, "
                f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                f"{len(self.dropped_head)} head tensors dropped")

    def to_dict(self) -> dict:
        return asdict(self)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (the checkpoint hash in every result)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _strip_prefixes(sd: dict[str, Any]) -> dict[str, Any]:
    for prefix in _PREFIXES:
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _paper_metadata(args: argparse.Namespace) -> dict:
    a = vars(args)
    dropout, drop_path = float(a.get("dropout", 0) or 0), float(a.get("drop_path", 0) or 0)
    kind = "dropout" if dropout > 0 else "drop_path" if drop_path > 0 else "none"
    try:  # no rate: a run without dropout, whatever its mode flags said
        drop = DropSpec(kind, dropout or drop_path, a.get("drop_mode", "standard") if kind != "none" else "standard",
                        a.get("drop_schedule", "constant"), a.get("cutoff_epoch", 0) or 0)
    except ValueError as e:
        raise CheckpointError(f"the checkpoint's args describe drop settings the paper does not define: {e}") from None
    return {"model": a.get("model"), **drop.metadata(), "epochs": a.get("epochs"), "source": "paper"}


def read_checkpoint(path: str | os.PathLike, use_ema: bool = False) -> tuple[dict[str, torch.Tensor], str, dict]:
    """Load a checkpoint file as data and unwrap it.

    Returns:
        (state dict with container prefixes stripped, layout guess ``dropbench`` / ``paper`` / ``timm``, metadata).

    Raises:
        CheckpointError: unreadable, unsafe, or not a state dict; EMA asked for but absent.
    """
    obj = load_checkpoint_file(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict or state dict")
    meta: dict = {}
    layout = "timm"
    if "pretrain" in obj and isinstance(obj.get("pretrain"), dict):
        layout, meta = "dropbench", dict(obj["pretrain"], source="dropbench")
    elif isinstance(obj.get("args"), argparse.Namespace):
        layout, meta = "paper", _paper_metadata(obj["args"])
    key = "model"
    if use_ema:
        if not isinstance(obj.get("model_ema"), dict):
            raise CheckpointError(f"{path} has no EMA weights ('model_ema'); drop the EMA option to use 'model'")
        key = "model_ema"
    sd = obj
    for k in (key, "state_dict", "module"):
        if isinstance(sd.get(k), dict):
            sd = sd[k]
            break
    sd = _strip_prefixes(sd)
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if not sd or bad:
        keys = ", ".join(list(obj)[:8])
        raise CheckpointError(f"{path} is not a model checkpoint: expected a state dict (or one under 'model' / "
                              f"'state_dict'), found keys {keys}")
    meta["weights"] = key
    return sd, layout, meta


def _is_head(key: str) -> bool:
    return key in _HEAD_KEYS


def convert_state_dict(sd: dict[str, torch.Tensor], model: nn.Module, family: str) -> dict[str, torch.Tensor]:
    """Rename (and resample) a state dict to ``model``'s timm keys with the family's filter.

    Raises:
        CheckpointError: the filter cannot map it (typically: a checkpoint of another model family).
    """
    if family not in _FILTERS:
        raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(_FILTERS)}")
    try:
        return dict(_FILTERS[family](dict(sd), model))
    except (KeyError, AttributeError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"checkpoint keys do not fit a {family} model ({type(e).__name__}: {e}); is it a "
                              f"checkpoint of another model?") from None


def _fit(converted: dict[str, torch.Tensor], model: nn.Module, name: str) -> tuple[dict, list, list, list]:
    target = model.state_dict()
    missing = [k for k in target if k not in converted]
    unexpected = [k for k in converted if k not in target]
    shape = [k for k in converted if k in target and converted[k].shape != target[k].shape]
    bad_missing = [k for k in missing if not _is_head(k)]
    bad_unexpected = [k for k in unexpected if not _is_head(k)]
    bad_shape = [k for k in shape if not _is_head(k)]
    if bad_missing or bad_unexpected or bad_shape:
        parts = []
        if bad_missing:
            parts.append(f"{len(bad_missing)} model tensors missing from the checkpoint (e.g. {bad_missing[:3]})")
        if bad_unexpected:
            parts.append(f"{len(bad_unexpected)} checkpoint tensors the model lacks (e.g. {bad_unexpected[:3]})")
        if bad_shape:
            k = bad_shape[0]
            parts.append(f"{len(bad_shape)} tensors of another shape (e.g. {k}: checkpoint "
                         f"{tuple(converted[k].shape)}, model {tuple(target[k].shape)})")
        raise CheckpointError(f"checkpoint does not fit {name}: " + "; ".join(parts) +
                              ". Check --model against the model the checkpoint was trained as.")
    dropped = sorted(set(k for k in unexpected + shape if _is_head(k)))
    keep = {k: v for k, v in converted.items() if k in target and k not in dropped}
    return keep, missing, unexpected, dropped


def load_pretrained(model: nn.Module, path: str | os.PathLike, model_name: str, use_ema: bool = False) -> LoadReport:
    """Load a checkpoint into ``model`` (a timm model of paper model ``model_name``): convert, check, copy.

    Every backbone tensor must be present and of the right shape; only classification-head tensors may be missing,
    dropped or re-initialised. Returns a :class:`LoadReport`; raises :class:`CheckpointError` otherwise.
    """
    spec = paper_model(model_name)
    sd, layout, meta = read_checkpoint(path, use_ema)
    if meta.get("model") and meta["model"] != model_name and meta["model"] in _known_names():
        raise CheckpointError(f"{path} was pretrained as {meta['model']}, not {model_name}; pass --model "
                              f"{meta['model']}")
    converted = convert_state_dict(sd, model, spec.family)
    keep, missing, unexpected, dropped = _fit(converted, model, model_name)
    model.load_state_dict(keep, strict=False)
    report = LoadReport(path=str(path), sha256=file_sha256(path), layout=layout, loaded=len(keep),
                        missing=missing, unexpected=[k for k in unexpected if k not in dropped], dropped_head=dropped,
                        pretrain={k: v for k, v in meta.items() if k != "weights"}, weights=meta["weights"])
    log.info("loaded %s", report.summary())
    return report


def checkpoint_model(path: str | os.PathLike) -> str:
    """The paper model a checkpoint says it holds (dropbench's ``pretrain.model``, the paper's ``args.model``).

    Raises:
        CheckpointError: unreadable, or its metadata names no paper model (then ``--model`` must be given).
    """
    _, layout, meta = read_checkpoint(path)
    name = meta.get("model")
    if name not in _known_names():
        found = f"names {name!r}" if name else "names no model"
        raise CheckpointError(f"{path} ({layout} layout) {found}: pass --model (one of "
                              f"{', '.join(sorted(_known_names()))})")
    return str(name)


def _known_names() -> set[str]:
    from dropbench.pretrain.models import PAPER_MODELS

    return set(PAPER_MODELS)


def _source_img_size(sd: dict[str, torch.Tensor], meta: dict, family: str, patch: int) -> int | None:
    """The resolution a checkpoint was trained at, where the weights tie the model to one (ViT, Mixer)."""
    if family == "vit" and "pos_embed" in sd:
        tokens = sd["pos_embed"].shape[1] - 1
        side = int(round(tokens ** 0.5))
        if side * side == tokens:
            return side * patch
    if family == "mixer":
        w = sd.get("blocks.0.mlp_tokens.fc1.weight")
        if w is not None:
            side = int(round(w.shape[1] ** 0.5))
            return side * patch
    return None


def convert_checkpoint(path: str | os.PathLike, model_name: str, out: str | os.PathLike, use_ema: bool = False,
                       img_size: int | None = None) -> LoadReport:
    """``dropbench convert``: normalise a checkpoint to the timm state dict of ``model_name`` and save it.

    The output is ``{"model": timm state dict, "pretrain": metadata, "converted_from": {...}}``, which the
    converter, timm (``checkpoint_path=``) and the paper's code all read.
    """
    spec = paper_model(model_name)
    sd, _, meta = read_checkpoint(path, use_ema)
    probe = create_paper_model(model_name, num_classes=0)
    patch = getattr(getattr(probe, "patch_embed", None), "patch_size", None) or getattr(
        getattr(probe, "stem", None), "patch_size", (16,))
    size = img_size or _source_img_size(sd, meta, spec.family, patch[0]) or 224
    head = sd.get("head.weight", sd.get("head.fc.weight"))
    num_classes = int(head.shape[0]) if head is not None and head.ndim == 2 else 0
    model = create_paper_model(model_name, num_classes=num_classes, img_size=size)
    report = load_pretrained(model, path, model_name, use_ema)
    payload: dict[str, Any] = {"model": model.state_dict(),
                               "converted_from": {"path": str(path), "sha256": report.sha256, "layout": report.layout,
                                                  "img_size": size, "weights": report.weights}}
    if report.pretrain:
        payload["pretrain"] = report.pretrain
    atomic_save(payload, out)
    return report
