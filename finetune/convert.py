"""The one checkpoint converter: any checkpoint of a paper model or a timm architecture -> that model's timm state
dict, loaded strictly.

Sources it accepts:

* dropbench pretraining checkpoints (``{"model", "pretrain", "config", ...}``);
* the paper's released checkpoints (``{"model", "epoch", "args": argparse.Namespace, ...}``; weights named as in its
  ViT, Swin, ConvNeXt and Mixer classes written against timm 0.4.12: Swin's patch merging at the end of each stage
  and ``relative_position_index`` / ``attn_mask`` buffers, ConvNeXt's ``downsample_layers`` / ``pwconv`` names);
* plain timm state dicts, bare or under ``state_dict`` / ``model``; ``module.`` and ``_orig_mod.`` prefixes;
* EMA weights (``model_ema``) on request;
* ``.safetensors`` files (read with the ``safetensors`` library, which runs no code) and timm's hub folders: a folder
  holding ``model.safetensors`` or ``pytorch_model.bin`` and the ``config.json`` timm's ``save_for_hf`` /
  ``push_to_hub`` write (``architecture``, ``num_classes``, ``model_args``, ``pretrained_cfg``), read by timm's own
  parser. Such a folder, a dropbench checkpoint and the paper's name their architecture: :func:`resolve_model` reads
  it, so ``--model`` may be left out, and a ``--model`` that disagrees is refused.

Paper models are renamed with their family's filter (below); any other timm architecture with its timm module's own
``checkpoint_filter_fn`` where the module has one (timm's ``build_model_with_cfg`` applies the same function to
pretrained weights), unchanged otherwise. The classifier is the model's ``pretrained_cfg['classifier']``.

The flow is that of timm's ``checkpoint_filter_fn``: unwrap the container, rename with the family's filter (timm's
own rules, which also resample position embeddings and relative-position tables to the target's sizes), then compare
with the target model: anything missing, unexpected or of another shape is refused with :class:`CheckpointError`,
except the classification head, which may be absent, dropped, or of another size. Every fine-tuning path (detection,
segmentation, classification) and ``dropbench convert`` call :func:`load_pretrained`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from dropbench.pretrain.checkpoint import CheckpointError, atomic_save, load_checkpoint_file
from dropbench.pretrain.models import PAPER_MODELS, check_model, create_model, model_family
from dropbench.pretrain.schedules import DropSpec
from timm.models import convnext, mlp_mixer, split_model_name_tag, swin_transformer, vision_transformer

__all__ = [
    "CheckpointError",
    "LoadReport",
    "checkpoint_architecture",
    "checkpoint_data_config",
    "checkpoint_model_args",
    "checkpoint_sha256",
    "convert_checkpoint",
    "convert_state_dict",
    "file_sha256",
    "hub_config",
    "load_pretrained",
    "read_checkpoint",
    "resolve_model",
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
# timm's hub folder: the weight files save_for_hf / push_to_hub write (safetensors preferred), and their config
HUB_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
HUB_CONFIG = "config.json"
# metadata keys that describe the file, not how it was pretrained (kept out of a result's ``pretrain``)
_FILE_META = ("weights", "architecture", "pretrained_cfg", "model_args")


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
        architecture: the architecture the file names (hub ``config.json``, dropbench / paper metadata), if any.
        data_config: the checkpoint's own ``pretrained_cfg`` data settings (mean, std, input size, ...), if any.
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
    architecture: str | None = None
    data_config: dict = field(default_factory=dict)

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


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """The input hash of a checkpoint: its file's sha256, or for a hub folder the sha256 of its weight file's and
    ``config.json``'s hashes (both decide what is loaded)."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    weights, config = _locate(path)
    parts = [file_sha256(weights)] + ([file_sha256(config)] if config is not None else [])
    return hashlib.sha256(" ".join(parts).encode()).hexdigest()


def _locate(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """The weight file and timm ``config.json`` (or None) of a checkpoint: a file, or a timm hub folder."""
    path = Path(path)
    if path.is_dir():
        weights = next((path / n for n in HUB_WEIGHTS if (path / n).is_file()), None)
        if weights is None:
            raise CheckpointError(f"{path} is a folder without {' or '.join(HUB_WEIGHTS)}: give a checkpoint file or a "
                                  f"timm hub folder (save_for_hf / push_to_hub write {HUB_WEIGHTS[0]} + {HUB_CONFIG})")
        config = path / HUB_CONFIG
        return weights, config if config.is_file() else None
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (check the path)")
    config = path.parent / HUB_CONFIG
    return path, config if path.name in HUB_WEIGHTS and config.is_file() else None


def hub_config(path: str | os.PathLike) -> dict | None:
    """timm's ``config.json`` of a hub folder (or beside its weight file), parsed by timm's own reader.

    Returns ``{"architecture", "num_classes", "model_args", "pretrained_cfg"}``, or None when there is none.
    """
    _, config = _locate(path)
    if config is None:
        return None
    from timm.models._hub import _parse_model_cfg  # timm's parser of config.json (legacy single-dict layout too)

    try:
        raw = json.loads(config.read_text())
        pretrained_cfg, architecture, model_args = _parse_model_cfg(raw, {})
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{config} is not a timm config.json (it needs 'architecture' and 'pretrained_cfg'): "
                              f"{type(e).__name__}: {e}") from None
    return {"architecture": architecture, "num_classes": raw.get("num_classes"), "model_args": dict(model_args),
            "pretrained_cfg": pretrained_cfg}


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
    """Load a checkpoint (a file or a timm hub folder) as data and unwrap it.

    Returns:
        (state dict with container prefixes stripped, layout guess ``dropbench`` / ``paper`` / ``timm`` /
        ``timm-hub`` / ``safetensors``, metadata: how it was pretrained, plus ``architecture``, ``pretrained_cfg``
        and ``model_args`` where the file names them).

    Raises:
        CheckpointError: unreadable, unsafe, or not a state dict; EMA asked for but absent.
    """
    weights, config_file = _locate(path)
    config = hub_config(path) if config_file is not None else None
    if weights.suffix == ".safetensors":
        obj = _load_safetensors(weights)
    else:
        obj = load_checkpoint_file(weights)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict or state dict")
    meta: dict = {}
    layout = "timm-hub" if config is not None else "safetensors" if weights.suffix == ".safetensors" else "timm"
    if "pretrain" in obj and isinstance(obj.get("pretrain"), dict):
        layout, meta = "dropbench", dict(obj["pretrain"], source="dropbench")
        if meta.get("model"):
            meta["architecture"] = meta["model"]
    elif isinstance(obj.get("args"), argparse.Namespace):
        layout, meta = "paper", _paper_metadata(obj["args"])
        if meta.get("model"):
            meta["architecture"] = meta["model"]
    if config is not None:
        meta.update(architecture=config["architecture"], pretrained_cfg=config["pretrained_cfg"],
                    model_args=config["model_args"])
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


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A ``.safetensors`` file's tensors (the format holds tensors only: nothing runs while it loads)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (an interrupted copy or save?)")
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({type(e).__name__}: {e})") from None


def _arch(name: str | None) -> str | None:
    """An architecture name without timm's pretrained tag (``convnext_tiny.fb_in1k`` -> ``convnext_tiny``)."""
    return split_model_name_tag(name)[0] if name else None


def checkpoint_architecture(path: str | os.PathLike) -> str | None:
    """The architecture a checkpoint names: a hub folder's ``config.json``, dropbench's ``pretrain.model`` or the
    paper's ``args.model``; None for a bare state dict or ``.safetensors`` file."""
    _, config = _locate(path)
    if config is not None:
        return hub_config(path)["architecture"]
    return read_checkpoint(path)[2].get("architecture")


def resolve_model(path: str | os.PathLike | None, model: str | None) -> str:
    """The model to build for a checkpoint: ``model`` (checked against the file where the file names one), or the
    architecture the file names when ``model`` is None.

    Raises:
        CheckpointError: ``model`` disagrees with the file's architecture (a ``ValueError``: the CLI exits 2).
        ValueError: neither names a model, or the name is unknown to dropbench and timm.
    """
    named = checkpoint_architecture(path) if path is not None else None
    if model is None:
        if named is None:
            raise ValueError(f"{path} does not name its architecture (a bare state dict or .safetensors file): give "
                             f"--model (a paper model, {', '.join(PAPER_MODELS)}, or any timm architecture)")
        return check_model(named)
    check_model(model)
    if named is not None and _arch(named) != _arch(model):
        raise CheckpointError(f"{path} holds a {named} checkpoint, not {model}: leave --model out (the file names its "
                              f"architecture) or pass --model {named}")
    return model


def checkpoint_data_config(path: str | os.PathLike | None) -> dict:
    """The data settings of a checkpoint's ``pretrained_cfg`` (hub folder): ``mean``, ``std``, ``input_size``,
    ``interpolation``, ``crop_pct`` (those present); empty where the checkpoint has none."""
    if path is None:
        return {}
    config = hub_config(path)
    if config is None:
        return {}
    cfg = config["pretrained_cfg"]
    return {k: list(cfg[k]) if isinstance(cfg[k], (list, tuple)) else cfg[k]
            for k in ("mean", "std", "input_size", "interpolation", "crop_pct") if cfg.get(k) is not None}


def checkpoint_model_args(path: str | os.PathLike | None) -> dict:
    """The architecture's reconstruction arguments a checkpoint records (e.g. a reduced depth), without
    ``num_classes`` / ``img_size``: a hub folder's ``config.json`` ``model_args``, or a dropbench checkpoint's
    ``pretrain.model_args`` (its pretraining's ``model.kwargs``); empty where it records none."""
    if path is None or not Path(path).exists():
        return {}
    config = hub_config(path)
    if config is not None:
        args = config["model_args"]
    else:
        weights, _ = _locate(path)
        obj = {} if weights.suffix == ".safetensors" else load_checkpoint_file(weights, mmap=True)
        args = (obj.get("pretrain") or {}).get("model_args") if isinstance(obj, dict) else None
    return {k: v for k, v in (args or {}).items() if k not in ("num_classes", "img_size")}


def _head_keys(model: nn.Module) -> frozenset[str]:
    """The classifier's tensors: the paper models' head names, and the ``pretrained_cfg['classifier']`` modules'."""
    names = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return frozenset(_HEAD_KEYS) | {f"{n}.{p}" for n in names for p in ("weight", "bias")}


def _filter_fn(model: nn.Module, family: str):
    """The checkpoint filter of a model: a paper family's, else its timm module's ``checkpoint_filter_fn`` (if any)."""
    if family in _FILTERS:
        return _FILTERS[family]
    return getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)


def convert_state_dict(sd: dict[str, torch.Tensor], model: nn.Module, family: str) -> dict[str, torch.Tensor]:
    """Rename (and resample) a state dict to ``model``'s timm keys with the family's filter (for a timm architecture
    outside the paper families: its timm module's ``checkpoint_filter_fn``, or none).

    Raises:
        CheckpointError: the filter cannot map it (typically: a checkpoint of another model family).
    """
    fn = _filter_fn(model, family)
    if fn is None:
        return dict(sd)
    try:
        return dict(fn(dict(sd), model))
    except (KeyError, AttributeError, RuntimeError, ValueError, TypeError, IndexError) as e:
        raise CheckpointError(f"checkpoint keys do not fit a {family} model ({type(e).__name__}: {e}); is it a "
                              f"checkpoint of another model?") from None


def _fit(converted: dict[str, torch.Tensor], model: nn.Module, name: str) -> tuple[dict, list, list, list]:
    target = model.state_dict()
    head = _head_keys(model)

    def _is_head(key: str) -> bool:
        return key in head

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
    """Load a checkpoint (file or hub folder) into ``model`` (the timm model ``model_name``): convert, check, copy.

    Every backbone tensor must be present and of the right shape; only classification-head tensors may be missing,
    dropped or re-initialised. Returns a :class:`LoadReport`; raises :class:`CheckpointError` otherwise (also when
    the file names another architecture).
    """
    sd, layout, meta = read_checkpoint(path, use_ema)
    named = meta.get("architecture")
    if named and _arch(named) != _arch(model_name) and (named in PAPER_MODELS or _known_timm(named)):
        raise CheckpointError(f"{path} was pretrained as {named}, not {model_name}; pass --model {named} (or leave "
                              f"--model out)")
    converted = convert_state_dict(sd, model, model_family(model_name))
    keep, missing, unexpected, dropped = _fit(converted, model, model_name)
    model.load_state_dict(keep, strict=False)
    report = LoadReport(path=str(path), sha256=checkpoint_sha256(path), layout=layout, loaded=len(keep),
                        missing=missing, unexpected=[k for k in unexpected if k not in dropped], dropped_head=dropped,
                        pretrain={k: v for k, v in meta.items() if k not in _FILE_META}, weights=meta["weights"],
                        architecture=named, data_config=checkpoint_data_config(path) if layout == "timm-hub" else {})
    log.info("loaded %s", report.summary())
    return report


def _known_timm(name: str) -> bool:
    import timm

    return timm.is_model(name)


def _source_img_size(sd: dict[str, torch.Tensor], meta: dict, family: str, patch: int) -> int | None:
    """The resolution a checkpoint was trained at, where the weights tie the model to one (ViT, Mixer), or its
    ``pretrained_cfg`` says."""
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
    size = (meta.get("pretrained_cfg") or {}).get("input_size")
    return int(size[-1]) if size else None


def build_for_checkpoint(model_name: str, meta: dict, **kwargs: Any) -> nn.Module:
    """Build ``model_name`` as a checkpoint's metadata describes it: a hub folder's ``model_args`` (the architecture's
    reconstruction arguments, e.g. a reduced width) apply, the caller's ``kwargs`` win."""
    args = {k: v for k, v in (meta.get("model_args") or {}).items() if k not in ("num_classes", "img_size")}
    args.update(kwargs)
    return create_model(model_name, **args)


def convert_checkpoint(path: str | os.PathLike, model_name: str | None, out: str | os.PathLike,
                       use_ema: bool = False, img_size: int | None = None) -> LoadReport:
    """``dropbench convert``: normalise a checkpoint to the timm state dict of ``model_name`` and save it.

    ``model_name`` None: the architecture the file names (hub folder, dropbench / paper checkpoint). The output is
    ``{"model": timm state dict, "pretrain": metadata, "converted_from": {...}}``, which the converter, timm
    (``checkpoint_path=``) and the paper's code all read.
    """
    model_name = resolve_model(path, model_name)
    family = model_family(model_name)
    sd, _, meta = read_checkpoint(path, use_ema)
    if model_name in PAPER_MODELS:
        probe = create_model(model_name, num_classes=0)
        patch = getattr(getattr(probe, "patch_embed", None), "patch_size", None) or getattr(
            getattr(probe, "stem", None), "patch_size", (16,))
    else:
        patch = (int(meta.get("model_args", {}).get("patch_size") or _default_patch(model_name)),)
    size = img_size or _source_img_size(sd, meta, family, patch[0]) or 224
    head_names = _head_keys(create_model(model_name, num_classes=0) if model_name in PAPER_MODELS else
                            _meta_model(model_name, meta))
    head = next((sd[k] for k in sorted(head_names) if k.endswith(".weight") and k in sd and sd[k].ndim == 2), None)
    num_classes = int(head.shape[0]) if head is not None else 0
    model = (create_model(model_name, num_classes=num_classes, img_size=size) if model_name in PAPER_MODELS else
             build_for_checkpoint(model_name, meta, num_classes=num_classes, img_size=size))
    report = load_pretrained(model, path, model_name, use_ema)
    payload: dict[str, Any] = {"model": model.state_dict(),
                               "converted_from": {"path": str(path), "sha256": report.sha256, "layout": report.layout,
                                                  "img_size": size, "weights": report.weights,
                                                  "architecture": model_name}}
    if report.pretrain:
        payload["pretrain"] = report.pretrain
    if report.data_config:
        payload["converted_from"]["data_config"] = report.data_config
    atomic_save(payload, out)
    return report


def _default_patch(model_name: str) -> int:
    """The patch size of a timm ViT-like architecture's default configuration (16 where it has none)."""
    with torch.device("meta"):
        m = create_model(model_name, num_classes=0)
    patch = getattr(getattr(m, "patch_embed", None), "patch_size", None)
    return int(patch[0]) if patch else 16


def _meta_model(model_name: str, meta: dict) -> nn.Module:
    """``model_name`` as the checkpoint describes it, on the meta device (its names and shapes only)."""
    with torch.device("meta"):
        return build_for_checkpoint(model_name, meta, num_classes=0)
