"""Recipes as mmengine config files: resolve a short recipe name to its file, load it, hash it, dump it.

Every stage keeps its recipes under ``configs/<stage>/`` (``pretrain``, ``suites``, and each downstream task's folder).
``--config`` accepts a path to a config file, a recipe name (``smoke``, ``basic``, ``paper-3x``), which resolves to
``configs/<stage>/<name>.py`` or, for per-model recipes, to the one file whose name holds both the model and the
recipe (``mask-rcnn_swin-femto_fpn_paper-3x_coco.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from dropbench.pretrain.io import atomic_write
from mmengine.config import Config, DictAction

__all__ = [
    "CONFIG_ROOT", "CfgOptions", "config_hash", "dump_config", "list_recipes", "load_config", "plain", "resolve_config",
]

_NECKS = ("fpn", "upernet")  # parts of a config file name that name the neck or head, not the recipe
CONFIG_ROOT = Path(os.environ.get("DROPBENCH_CONFIGS", Path(__file__).resolve().parents[1] / "configs"))


class CfgOptions(DictAction):
    """``--cfg-options KEY=VALUE ...`` read into a dict by mmengine's ``DictAction``: numbers, ``true`` / ``false``,
    ``None``, lists (``a,b`` or ``[a,b]``) and tuples (``(a,b)``); JSON's ``null`` is read as None too."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        for item in values or []:
            if "=" not in item:
                parser.error(f"{option_string} takes KEY=VALUE pairs, got {item!r}")
        super().__call__(parser, namespace, values, option_string)
        setattr(namespace, self.dest, {k: _null(v) for k, v in getattr(namespace, self.dest).items()})


def _null(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return type(value)(_null(v) for v in value)
    return None if value == "null" else value


def model_slug(model: str) -> str:
    """File-name form of a model name, as mmdet names its configs (``swin_femto`` -> ``swin-femto``)."""
    return model.replace("_", "-")


def list_recipes(stage: str) -> list[str]:
    """Recipe names available for a stage (file stems under ``configs/<stage>/``, bases excluded)."""
    folder = CONFIG_ROOT / stage
    return sorted(p.stem for p in folder.glob("*.py")) if folder.is_dir() else []


def resolve_config(stage: str, config: str, model: str | None = None) -> Path:
    """Turn ``--config`` (a file or a recipe name) into a config file path.

    Raises:
        ValueError: nothing matches; the message lists the recipes of the stage.
    """
    path = Path(config)
    if path.suffix == ".py" or os.sep in config:
        if not path.is_file():
            raise ValueError(f"config file {config} does not exist")
        return path
    folder = CONFIG_ROOT / stage
    candidates = []
    if model is not None:
        slug = model_slug(model)
        candidates = [p for p in sorted(folder.glob(f"*{slug}*.py")) if _recipe_part(p.stem, slug) == config]
    if not candidates and (folder / f"{config}.py").is_file():
        candidates = [folder / f"{config}.py"]
    if len(candidates) == 1:
        return candidates[0]
    names = ", ".join(list_recipes(stage)) or "(none)"
    what = f"recipe {config!r}" + (f" for model {model}" if model else "")
    if not candidates:
        raise ValueError(f"no {what} under {folder}; give a config file or one of: {names}")
    raise ValueError(f"{what} is ambiguous: {', '.join(str(c) for c in candidates)}")


def _recipe_part(stem: str, slug: str) -> str | None:
    """``mask-rcnn_swin-femto_fpn_paper-3x_coco`` -> ``paper-3x``.

    mmdet's naming (algorithm_backbone_neck_schedule_dataset): after the model come its neck, the recipe, and
    optionally a data set (or pretraining) suffix; the recipe is the first part after the model that is not a neck.
    """
    parts = stem.split("_")
    if slug not in parts:
        return None
    rest = [p for p in parts[parts.index(slug) + 1 :] if p not in _NECKS]
    return rest[0] if len(rest) in (1, 2) else None


def load_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> Config:
    """Load a config file and apply dotted-key overrides (``{'optim.lr': 1e-3}``), skipping ``None`` values."""
    cfg = Config.fromfile(str(path))
    if overrides:
        cfg.merge_from_dict({k: v for k, v in overrides.items() if v is not None})
    return cfg


def plain(obj: Any) -> Any:
    """A config (or any nesting of dicts, lists, tuples and scalars) as plain JSON-able Python types."""
    if hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    return json.loads(json.dumps(obj, default=str))


def config_hash(cfg: Any, exclude: tuple[str, ...] = ()) -> str:
    """Content hash (sha256, 16 hex digits) of a config's resolved values, top-level keys in ``exclude`` left out."""
    data = {k: v for k, v in plain(cfg).items() if k not in exclude}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def dump_config(cfg: Config, out_dir: str | os.PathLike, name: str = "config.py") -> Path:
    """Write the resolved config beside a run's outputs, with its hash in a header comment."""
    out = Path(out_dir) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    text = f"# resolved by dropbench; config hash {config_hash(cfg)}\n" + cfg.pretty_text
    return atomic_write(out, text)
