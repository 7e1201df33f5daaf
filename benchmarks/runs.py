"""Run one stage and record it: time it, write its ``result.json`` (also when it fails), return the result.

A stage returns a :class:`finetune.tasks.Outcome`: every downstream task's entry (:func:`run_task`, through the
registry :data:`finetune.tasks.TASKS`) and pretraining (:func:`pretrain_run`). :func:`run_and_record` turns it into a
:class:`~benchmarks.results.RunResult`, the one place where an outcome becomes ``result.json``.
"""

from __future__ import annotations

import logging
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

__all__ = ["pretrain_run", "run_and_record", "run_task"]

log = logging.getLogger(__name__)


def _is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


def run_and_record(task: str, dataset: str, model: str, run_dir: str | os.PathLike, fn: Callable[[], Outcome],
                   variant: str | None = None) -> RunResult:
    """Call ``fn`` (a stage returning its :class:`Outcome`), write ``run_dir/result.json`` and return the result.

    A stage that raises is recorded as ``status: failed`` with its error and traceback in ``extra``, then the
    exception propagates; a run asked to stop (Ctrl-C, or SIGTERM: ``pretrain.train.Preempted``, checkpoint saved) or
    a refusal to overwrite a run (``FileExistsError``) records nothing, and a finished run's ``result.json`` is never
    replaced by a failure. Only rank 0 writes under torchrun / SLURM.
    """
    run_dir = Path(run_dir)
    t0 = time.time()
    try:
        outcome = fn()
    except BaseException as e:
        from dropbench.pretrain.train import Preempted  # (imported here: the stage has loaded torch already)

        stopped = isinstance(e, (KeyboardInterrupt, Preempted))  # asked to stop: resumable, not failed
        if _is_main() and not stopped and not isinstance(e, FileExistsError):
            failed = RunResult(task=task, dataset=dataset, model=model, metrics={}, config={}, config_hash="",
                               variant=variant or "unknown", versions=package_versions(), wall_time_s=time.time() - t0,
                               status="failed", error=f"{type(e).__name__}: {e}", run_dir=str(run_dir),
                               log_path=_find_log(run_dir),
                               extra={"traceback": traceback.format_exc(limit=20)})
            _write_failure(failed, run_dir)
        raise
    if not isinstance(outcome, Outcome):
        raise TypeError(f"a stage must return an Outcome, got {type(outcome).__name__}")
    result = RunResult(
        task=task, dataset=dataset, model=model, metrics=dict(outcome.metrics), config=outcome.config,
        config_hash=outcome.config_hash, variant=variant or variant_name(outcome.pretrain),
        checkpoint=outcome.checkpoint, checkpoint_sha256=outcome.checkpoint_sha256, pretrain=dict(outcome.pretrain),
        seed=outcome.seed, versions=package_versions(), wall_time_s=time.time() - t0, log_path=outcome.log_path,
        run_dir=str(run_dir), extra=outcome.record_extra())
    if _is_main():
        path = write_result(result, run_dir)
        log.info("wrote %s", path)
    return result


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


def run_task(task: str, job: Job, variant: str | None = None) -> RunResult:
    """Run a registered downstream task on ``job`` and record it in ``job.out/result.json``."""
    entry = get_task(task)
    return run_and_record(task, entry.job_dataset(job.dataset), job.model, job.out, lambda: entry.run(job),
                          variant=variant)


def pretrain_run(cfg, out_dir: str | os.PathLike, resume: str | None = None, recipe: str | None = None) -> Outcome:
    """Pretraining as a stage: ``pretrain.train.run`` with its summary as an :class:`Outcome` (``recipe``: its name)."""
    from dropbench.pretrain.config import plain
    from dropbench.pretrain.train import run

    summary = run(cfg, out_dir, resume)
    metrics = {k: summary[k] for k in ("top1", "top5", "train_loss") if summary.get(k) is not None}
    return Outcome(
        metrics=metrics, config=plain(cfg), config_hash=summary["pretrain"]["config_hash"],
        seed=int(cfg.runtime.seed), checkpoint=summary["checkpoint"], pretrain=summary["pretrain"],
        log_path=str(Path(out_dir) / "log.jsonl"),
        extra={"epochs": summary["epochs"], "world_size": summary["world_size"], "recipe": recipe})
