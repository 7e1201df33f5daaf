"""Run one stage and record it: time it, write its ``result.json`` (also when it fails), return the result.

A stage returns a :class:`finetune.tasks.Outcome`: every downstream task's entry (:func:`run_task`, through the
registry :data:`finetune.tasks.TASKS`) and pretraining (:func:`pretrain_run`). :func:`run_and_record` turns it into a
:class:`~benchmarks.results.RunResult`, the one place where an outcome becomes ``result.json``.
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
from dropbench.finetune.tasks import Job, Outcome, get_task

__all__ = ["NoMetricsError", "gpu_memory", "pretrain_run", "run_and_record", "run_task"]

log = logging.getLogger(__name__)


def _is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


def run_and_record(task: str, dataset: str, model: str, run_dir: str | os.PathLike, fn: Callable[[], Outcome],
                   variant: str | None = None, data: dict | None = None) -> RunResult:
    """Call ``fn`` (a stage returning its :class:`Outcome`), write ``run_dir/result.json`` and return the result.

    A stage that raises, or returns no metrics or a non-finite one (:class:`NoMetricsError`), is recorded as
    ``status: failed`` with its error and traceback in ``extra``, then the exception propagates; a run asked to
    stop (Ctrl-C, or SIGTERM: ``pretrain.stop.Preempted``, checkpoint saved) or a refusal to overwrite a run
    (``FileExistsError``) records nothing, and a finished run's ``result.json`` is never replaced by a failure.
    Only rank 0 writes under torchrun / SLURM; it holds the run folder while the stage runs (:mod:`pretrain.lock`),
    so a second process on the same folder is refused (``FolderInUse``, naming the holder). ``data``: the provenance
    of the data sets the run reads (``RunResult.data``).
    """
    from dropbench.pretrain.lock import hold

    with hold(run_dir) if _is_main() else contextlib.nullcontext():
        return _run_and_record(task, dataset, model, Path(run_dir), fn, variant, data)


def gpu_memory(start: bool = False) -> dict | None:
    """This process's peak GPU memory since the last ``start=True`` call, against the device's: ``{"device",
    "total_gib", "peak_allocated_gib", "peak_reserved_gib"}`` (reserved: what the caching allocator held, the figure
    an out-of-memory error compares); None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    if start:
        torch.cuda.reset_peak_memory_stats()
        return None
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    gib = 1024 ** 3
    return {"device": props.name, "total_gib": round(props.total_memory / gib, 2),
            "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / gib, 2),
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / gib, 2)}


def _run_and_record(task: str, dataset: str, model: str, run_dir: Path, fn: Callable[[], Outcome],
                    variant: str | None, data: dict | None) -> RunResult:
    t0 = time.time()
    gpu_memory(start=True)
    try:
        outcome = fn()
        if not isinstance(outcome, Outcome):
            raise TypeError(f"a stage must return an Outcome, got {type(outcome).__name__}")
        _check_metrics(outcome.metrics)
    except BaseException as e:
        from dropbench.pretrain.stop import Preempted

        stopped = isinstance(e, (KeyboardInterrupt, Preempted))  # asked to stop: resumable, not failed
        if _is_main() and not stopped and not isinstance(e, FileExistsError):
            failed = RunResult(task=task, dataset=dataset, model=model, metrics={}, config={}, config_hash="",
                               variant=variant or "unknown", versions=package_versions(), wall_time_s=time.time() - t0,
                               status="failed", error=f"{type(e).__name__}: {e}", run_dir=str(run_dir),
                               log_path=_find_log(run_dir),
                               extra={"traceback": traceback.format_exc(limit=20)}, data=dict(data or {}))
            try:
                _write_failure(failed, run_dir)
            except OSError as write_error:  # (a full disk): the stage's own error is the one to report
                log.error("%s", write_error)
        raise
    result = RunResult(
        task=task, dataset=dataset, model=model, metrics=dict(outcome.metrics), config=outcome.config,
        config_hash=outcome.config_hash, variant=variant or variant_name(outcome.pretrain),
        checkpoint=outcome.checkpoint, checkpoint_sha256=outcome.checkpoint_sha256, pretrain=dict(outcome.pretrain),
        seed=outcome.seed, versions=package_versions(), wall_time_s=time.time() - t0, log_path=outcome.log_path,
        run_dir=str(run_dir), extra=outcome.record_extra(), data=dict(data or {}))
    memory = gpu_memory()
    if memory is not None:  # the rehearsal checks it against the device (benchmarks.rehearse)
        result.extra["gpu_memory"] = memory
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


def run_task(task: str, job: Job, variant: str | None = None, data: dict | None = None,
             preflight: bool = False) -> RunResult:
    """Run a registered downstream task on ``job`` and record it in ``job.out/result.json``.

    ``data``: the provenance of the data it reads (see :func:`run_and_record`); ``preflight``: check the data root
    first, as part of the recorded stage (:func:`benchmarks.datacheck.stage_preflight`), and record its provenance.
    """
    entry = get_task(task)
    dataset = entry.job_dataset(job.dataset)
    data = dict(data or {})  # filled by the preflight when the stage starts

    def stage() -> Outcome:
        if preflight:
            from dropbench.benchmarks.datacheck import stage_preflight

            data.update(stage_preflight(dataset, job.data))
        return entry.run(job)

    return run_and_record(task, dataset, job.model, job.out, stage, variant=variant, data=data)


def pretrain_run(cfg, out_dir: str | os.PathLike, resume: str | None = None, recipe: str | None = None) -> Outcome:
    """Pretraining as a stage: ``pretrain.train.run`` with its summary as an :class:`Outcome` (``recipe``: its name)."""
    from dropbench.finetune.cls import keep_samples
    from dropbench.pretrain.config import plain
    from dropbench.pretrain.train import run, write_random_init

    # 0 epochs: the random-init reference (the recipe's model, untrained; a preset's ``random-init`` variant)
    summary = write_random_init(cfg, out_dir) if int(cfg.schedule.epochs) == 0 else run(cfg, out_dir, resume)
    metrics = {k: summary[k] for k in ("top1", "top5", "train_loss") if summary.get(k) is not None}
    samples = keep_samples(summary, out_dir, metrics)  # val label + top-5 per image, for the tables' intervals
    return Outcome(
        metrics=metrics, config=plain(cfg), config_hash=summary["pretrain"]["config_hash"],
        seed=int(cfg.runtime.seed), checkpoint=summary["checkpoint"], pretrain=summary["pretrain"],
        log_path=str(Path(out_dir) / "log.jsonl"),
        extra={"epochs": summary["epochs"], "world_size": summary["world_size"], "recipe": recipe,
               "precision": summary["precision"], "loop": summary["loop"],
               **samples})
