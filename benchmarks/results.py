"""The results store: one ``result.json`` per run, one schema for every task, written atomically, validated on read.

A run's directory holds its outputs and ``result.json``: what ran (task, data set, model, pretraining variant,
checkpoint path and sha256, the resolved config and its hash, seed), what came out (``metrics``: a flat dict under the
engine's own names, e.g. mmdet's box and mask mAP, mmseg's ``mIoU`` / ``mAcc`` / ``aAcc``, ``top1`` / ``top5`` for
classification and pretraining) and how (package versions, wall time, status and error).
:func:`collect_results` turns a folder of runs into a pandas DataFrame, the input of :mod:`benchmarks.tables`.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from dropbench.finetune.tasks import TASKS as DOWNSTREAM_TASKS
from dropbench.pretrain.io import atomic_write
from dropbench.pretrain.schedules import DropSpec

__all__ = [
    "RESULT_FILE",
    "SCHEMA_VERSION",
    "task_names",
    "ResultError",
    "RunResult",
    "collect_results",
    "package_versions",
    "read_result",
    "variant_name",
    "write_result",
]

SCHEMA_VERSION = 1
RESULT_FILE = "result.json"
STATUSES = ("ok", "failed")
_PACKAGES = ("torch", "torchvision", "timm", "mmengine", "mmcv", "mmdet", "mmsegmentation", "numpy", "dropbench")


def task_names() -> tuple[str, ...]:
    """The tasks a result may record: ``pretrain``, then the downstream tasks of :data:`finetune.tasks.TASKS`."""
    return ("pretrain", *DOWNSTREAM_TASKS)


class ResultError(ValueError):
    """A result file that is missing, unreadable or does not follow the schema."""


def variant_name(pretrain: dict | None) -> str:
    """The pretraining variant a checkpoint's metadata describes (``baseline``, ``early-dropout``, ``late-sd``, ...)."""
    if not pretrain:
        return "unknown"
    try:
        return DropSpec.from_metadata(pretrain).variant
    except ValueError:  # settings no run can have (another tool's metadata)
        return "unknown"


@dataclass(frozen=True)
class RunResult:
    """One run's ``result.json``.

    Attributes:
        task: ``pretrain`` or a downstream task of :data:`finetune.tasks.TASKS`.
        dataset: ``imagenet`` (pretraining) or one of the task's data sets.
        model: paper model name (``swin_femto``).
        variant: pretraining variant (``baseline``, ``early-dropout``, ...), or a user label for evaluated checkpoints.
        metrics: flat dict of floats under the engine's own names and scales.
        config: the resolved config as plain data; ``config_hash`` its content hash.
        checkpoint, checkpoint_sha256: the input checkpoint (None for pretraining from scratch).
        pretrain: the checkpoint's pretraining metadata (model, drop kind, mode, schedule, rate, cutoff).
        seed: random seed of the run.
        versions: package versions; ``wall_time_s``: seconds; ``status``: ``ok`` or ``failed`` (then ``error``).
        log_path: where the run's log is; ``run_dir``: the run directory; ``created``: ISO time.
    """

    task: str
    dataset: str
    model: str
    metrics: dict[str, float]
    config: dict
    config_hash: str
    variant: str = "unknown"
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    pretrain: dict = field(default_factory=dict)
    seed: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0
    status: str = "ok"
    error: str | None = None
    log_path: str | None = None
    run_dir: str | None = None
    extra: dict = field(default_factory=dict)
    created: str = ""
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.task not in task_names():
            raise ResultError(f"task must be one of {task_names()}, got {self.task!r}")
        if self.status not in STATUSES:
            raise ResultError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.status == "ok":
            bad = {k: v for k, v in self.metrics.items() if not isinstance(v, (int, float)) or isinstance(v, bool)}
            if bad:
                raise ResultError(f"metrics must be numbers; got {bad}")
        if not self.created:
            object.__setattr__(self, "created", datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "result") -> RunResult:
        """Build from parsed JSON, refusing other schema versions and missing or unknown fields."""
        if not isinstance(data, dict):
            raise ResultError(f"{source}: expected a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ResultError(f"{source}: schema_version {version!r}, this dropbench reads {SCHEMA_VERSION}")
        names = {f.name for f in fields(cls)}
        required = {"task", "dataset", "model", "metrics", "config", "config_hash"}
        missing = sorted(required - set(data))
        unknown = sorted(set(data) - names)
        if missing or unknown:
            raise ResultError(f"{source}: missing fields {missing}, unknown fields {unknown}")
        return cls(**data)


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a result (and Python's)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_result(result: RunResult, run_dir: str | os.PathLike, name: str = RESULT_FILE) -> Path:
    """Write ``run_dir/result.json`` atomically (temp file + rename): readers see the old file or the new one."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return atomic_write(run_dir / name, json.dumps(result.to_dict(), indent=2, sort_keys=False, default=str) + "\n")


def read_result(path: str | os.PathLike) -> RunResult:
    """Read and validate a ``result.json`` (or the one in a run directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULT_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultError(f"{path} does not exist") from None
    except json.JSONDecodeError as e:
        raise ResultError(f"{path} is not valid JSON ({e})") from None
    return RunResult.from_dict(data, source=str(path))


def collect_results(root: str | os.PathLike, strict: bool = False) -> pd.DataFrame:
    """Every ``result.json`` under ``root`` as one DataFrame row each (metrics flattened to ``metric:<name>``).

    Unreadable files are skipped with a warning column unless ``strict``; the index can be rebuilt at any time.
    """
    rows, problems = [], []
    for path in sorted(Path(root).rglob(RESULT_FILE)):
        try:
            r = read_result(path)
        except ResultError as e:
            if strict:
                raise
            problems.append(str(e))
            continue
        row: dict[str, Any] = {k: v for k, v in r.to_dict().items() if k not in ("metrics", "config", "versions",
                                                                                   "extra", "pretrain")}
        row["path"] = str(path)
        row["recipe"] = r.extra.get("recipe")  # pretraining: basic / improved / smoke / a file
        row.update({f"metric:{k}": v for k, v in r.metrics.items()})
        row.update({f"pretrain:{k}": v for k, v in r.pretrain.items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs["problems"] = problems
    return df
