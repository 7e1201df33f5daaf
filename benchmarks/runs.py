"""Run one stage and record it: time it, write its ``result.json`` (also when it fails), return the result.

Stage functions (``pretrain.train.run`` through :func:`pretrain_run`, ``finetune.det.run_coco``,
``finetune.seg.run_ade20k``, ``finetune.cls.run_cls``) return a plain dict with the keys ``metrics``, ``config``,
``config_hash``, ``seed``, ``checkpoint``, ``checkpoint_sha256``, ``pretrain``, ``log_path`` and optionally
``extra``; :func:`run_and_record` turns it into a :class:`~benchmarks.results.RunResult`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from dropbench.benchmarks.results import (
    ResultError,
    RunResult,
    package_versions,
    read_result,
    variant_name,
    write_result,
)

__all__ = ["FINETUNE_TASKS", "NoMetricsError", "pretrain_run", "run_and_record"]

log = logging.getLogger(__name__)
# task -> (module, function); each function returns a stage outcome (see the module docstring)
FINETUNE_TASKS = {
    "coco": ("dropbench.finetune.det", "run_coco"),
    "ade20k": ("dropbench.finetune.seg", "run_ade20k"),
    "cls": ("dropbench.finetune.cls", "run_cls"),
}
_OUTCOME_KEYS = ("metrics", "config", "config_hash", "seed", "checkpoint", "checkpoint_sha256", "pretrain", "log_path",
                 "extra")


def _is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


def run_and_record(task: str, dataset: str, model: str, run_dir: str | os.PathLike, fn: Callable[[], dict],
                   variant: str | None = None) -> RunResult:
    """Call ``fn`` (a stage returning an outcome dict), write ``run_dir/result.json`` and return the result.

    A stage that raises, or returns no metrics or a non-finite one (:class:`NoMetricsError`), is recorded as
    ``status: failed`` with its error and traceback in ``extra``, then the exception propagates; a run asked to
    stop (Ctrl-C, or SIGTERM: ``pretrain.stop.Preempted``, checkpoint saved) or a refusal to overwrite a run
    (``FileExistsError``) records nothing, and a finished run's ``result.json`` is never replaced by a failure.
    Only rank 0 writes under torchrun / SLURM; it holds the run folder while the stage runs (:mod:`pretrain.lock`),
    so a second process on the same folder is refused (``FolderInUse``, naming the holder).
    """
    from dropbench.pretrain.lock import hold

    with hold(run_dir) if _is_main() else contextlib.nullcontext():
        return _run_and_record(task, dataset, model, Path(run_dir), fn, variant)


def _run_and_record(task: str, dataset: str, model: str, run_dir: Path, fn: Callable[[], dict], variant: str | None
                    ) -> RunResult:
    t0 = time.time()
    try:
        outcome = fn()
        _check_metrics(outcome.get("metrics"))
    except BaseException as e:
        from dropbench.pretrain.stop import Preempted

        stopped = isinstance(e, (KeyboardInterrupt, Preempted))  # asked to stop: resumable, not failed
        if _is_main() and not stopped and not isinstance(e, FileExistsError):
            failed = RunResult(task=task, dataset=dataset, model=model, metrics={}, config={}, config_hash="",
                               variant=variant or "unknown", versions=package_versions(), wall_time_s=time.time() - t0,
                               status="failed", error=f"{type(e).__name__}: {e}", run_dir=str(run_dir),
                               log_path=_find_log(run_dir),
                               extra={"traceback": traceback.format_exc(limit=20)})
            try:
                _write_failure(failed, run_dir)
            except OSError as write_error:  # (a full disk): the stage's own error is the one to report
                log.error("%s", write_error)
        raise
    unknown = set(outcome) - set(_OUTCOME_KEYS)
    if unknown:
        raise ValueError(f"stage outcome has unknown keys {sorted(unknown)}")
    pretrain = outcome.get("pretrain") or {}
    result = RunResult(
        task=task, dataset=dataset, model=model, metrics={k: float(v) for k, v in outcome["metrics"].items()},
        config=outcome["config"], config_hash=outcome["config_hash"], variant=variant or variant_name(pretrain),
        checkpoint=outcome.get("checkpoint"), checkpoint_sha256=outcome.get("checkpoint_sha256"), pretrain=pretrain,
        seed=outcome.get("seed"), versions=package_versions(), wall_time_s=time.time() - t0,
        log_path=outcome.get("log_path"), run_dir=str(run_dir), extra=outcome.get("extra") or {})
    if _is_main():
        path = write_result(result, run_dir)
        log.info("wrote %s", path)
    return result


class NoMetricsError(RuntimeError):
    """A stage ended without usable metrics (its evaluation produced none, or a non-finite one): never ``ok``."""


def _check_metrics(metrics: dict | None) -> None:
    if not metrics:
        raise NoMetricsError("the evaluation produced no metrics (see the run's log); the run is not recorded as ok")
    bad = {k: v for k, v in metrics.items() if not math.isfinite(float(v))}
    if bad:
        raise NoMetricsError(f"the evaluation produced non-finite metrics {bad} (a diverged run?)")


def _write_failure(failed: RunResult, run_dir: Path) -> None:
    """Record a failure in ``result.json``, unless that holds a finished run: then in ``result.failed.json``."""
    try:
        previous_ok = read_result(run_dir).status == "ok"
    except ResultError:
        previous_ok = False
    if previous_ok:
        path = write_result(failed, run_dir, name="result.failed.json")
        log.error("the run failed; its earlier successful result.json is kept, the failure is in %s", path)
    else:
        write_result(failed, run_dir)


def _find_log(run_dir: Path) -> str | None:
    for name in ("log.jsonl", "run.log"):  # pretraining's / classification's log; the suite's per-run log
        if (run_dir / name).exists():
            return str(run_dir / name)
    logs = sorted(run_dir.rglob("*.log"))
    return str(logs[-1]) if logs else None


def pretrain_run(cfg, out_dir: str | os.PathLike, resume: str | None = None, recipe: str | None = None) -> dict:
    """Pretraining as a stage: ``pretrain.train.run`` with its summary as an outcome dict (``recipe``: its name)."""
    from dropbench.pretrain.config import plain
    from dropbench.pretrain.train import run

    summary = run(cfg, out_dir, resume)
    metrics = {k: summary[k] for k in ("top1", "top5", "train_loss") if summary.get(k) is not None}
    return {
        "metrics": metrics,
        "config": plain(cfg),
        "config_hash": summary["pretrain"]["config_hash"],
        "seed": int(cfg.runtime.seed),
        "checkpoint": summary["checkpoint"],
        "checkpoint_sha256": None,
        "pretrain": summary["pretrain"],
        "log_path": str(Path(out_dir) / "log.jsonl"),
        "extra": {"epochs": summary["epochs"], "world_size": summary["world_size"], "recipe": recipe},
    }
