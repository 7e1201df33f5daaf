"""Rehearse a preset before it costs a GPU-day: every run, a handful of iterations, realistic generated data.

:func:`rehearse` takes a suite preset (``paper``), keeps its runs and recipes, and replaces only what a rehearsal must:

* the data roots: generated sets shaped like the real ones (``realistic=True`` of every generator: ImageNet's JPEG
  sizes; COCO's 640x480 / 427x640 images, 80 categories, up to 50 objects; ADE20K's 256x341 to 2100x1600 images,
  150 classes; the five classification sets at their native resolution and class count), a few images per class;
* the lengths (:data:`LENGTHS`): two epochs / iterations, evaluation at the end only;
* on a CPU only, where a step would otherwise take minutes (:data:`CPU_REDUCTIONS`, listed per run in the table):
  the pretraining batch, and UperNet's head width;
* one seed.

Each run then goes through the real pipeline twice, as a pre-empted run would: it is stopped right after its first
checkpoint (``runtime.stop_at_iter`` in dropbench's own loop, as SIGTERM stops it; :class:`RehearsalStop` in mmengine's
Runner) and the suite is started again, so that it resumes from that checkpoint, finishes, evaluates (multi-scale
where the recipe says so), writes its ``result.json``; then the tables are built from the results. The suite's own
functions (:func:`~benchmarks.suite.plan`, :func:`~benchmarks.suite.run_suite`) do all of it, so what the rehearsal
exercises is what ``dropbench suite run`` runs.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dropbench.benchmarks.results import RESULT_FILE, ResultError, collect_results, read_result
from dropbench.benchmarks.suite import SuitePlan, index, load_preset, plan, run_suite, status_of
from dropbench.pretrain.config import resolve_config
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

__all__ = ["CPU_REDUCTIONS", "LENGTHS", "REALISTIC_SYNTH", "RehearsalReport", "RehearsalStop", "rehearsal_preset",
           "rehearse"]

log = logging.getLogger(__name__)

# generated data shaped like the real sets, a few images per class (the generators' `realistic` option)
REALISTIC_SYNTH: dict[str, dict[str, Any]] = {
    "imagenet": dict(num_classes=10, train_per_class=2, val_per_class=1, realistic=True),
    "coco": dict(num_train=2, num_val=1, realistic=True),
    "ade20k": dict(train_images=2, val_images=1, realistic=True),
    **{d: dict(train_per_class=2, test_per_class=1, realistic=True)
       for d in ("cifar100", "flowers102", "pets", "stl10", "food101", "imagefolder")},
}
_LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
# only the lengths change (and in-process data loading: worker processes would dominate a two-iteration run)
LENGTHS: dict[str, dict[str, Any]] = {
    "pretrain": {"schedule.epochs": 2, "schedule.warmup_epochs": 1, "data.num_workers": 0, "runtime.stop_at_iter": 1,
                 "runtime.progress": False},
    "cls": {"schedule.epochs": 1, "schedule.warmup_epochs": 0, "data.num_workers": 0, "runtime.stop_at_iter": 1,
            "runtime.eval_every": 1, "runtime.progress": False},
    # a two-epoch detector scores nothing above the recipe's 0.05: keep every detection, so COCO's evaluation (and the
    # per-sample outputs) run on real detections instead of returning no metrics
    "coco": {"train_cfg.max_epochs": 2, "train_cfg.val_interval": 2, "default_hooks.checkpoint.interval": 1,
             "model.test_cfg.rcnn.score_thr": 0.0,
             **{f"{k}.{o}": v for k in _LOADERS for o, v in (("num_workers", 0), ("persistent_workers", False))}},
    "ade20k": {"train_cfg.max_iters": 2, "train_cfg.val_interval": 2, "default_hooks.checkpoint.interval": 1,
               **{f"{k}.{o}": v for k in _LOADERS for o, v in (("num_workers", 0), ("persistent_workers", False))}},
    "probe": {"data.num_workers": 0},  # trains nothing: no length to shorten
}
_STOP = {"coco": dict(type="RehearsalStop", epoch=1), "ade20k": dict(type="RehearsalStop", iteration=1)}
# on a CPU, where one step of the real recipe would take minutes; each run's table row lists what applied to it
CPU_REDUCTIONS: dict[str, dict[str, Any]] = {
    "pretrain": {"data.batch_size": 8, "data.eval_batch_size": 16},  # 128 per process
    "cls": {"data.batch_size": 8, "data.eval_batch_size": 32},  # 64 (32 for the small sets) per process
    "probe": {"data.batch_size": 16},  # 128 images per forward pass
    "ade20k": {"model.decode_head.channels": 64, "model.auxiliary_head.channels": 64},  # 512 / 256
}
_STAGES = {"pretrain": "train, ckpt, stop@it1, resume, val, ckpt, result",
           "cls": "load ckpt, train, ckpt, stop@it1, resume, test, result",
           "coco": "load ckpt, train, ckpt, stop@ep1, resume, train, COCO eval, result",
           "ade20k": "load ckpt, train, ckpt, stop@it1, resume, train, slide eval{ms}, result",
           "probe": "load ckpt, features (cached), kNN, linear sweep + refit, result"}


class _Stopped(KeyboardInterrupt):
    """A rehearsal's planned stop: resumable (the suite records nothing), like Ctrl-C."""


@HOOKS.register_module()
class RehearsalStop(Hook):
    """Stops an mmengine run right after the checkpoint of ``epoch`` / ``iteration``, as a kill would, once: the
    resumed run starts past that point and never meets it again."""

    priority = "LOWEST"  # after CheckpointHook: the checkpoint is on disk when the run stops

    def __init__(self, epoch: int | None = None, iteration: int | None = None) -> None:
        self.epoch, self.iteration = epoch, iteration

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self.iteration is not None and runner.iter == self.iteration:
            raise _Stopped(f"rehearsal: stopped after iteration {runner.iter} in {runner.work_dir}")

    def after_train_epoch(self, runner: Any) -> None:
        if self.epoch is not None and runner.epoch + 1 == self.epoch:
            raise _Stopped(f"rehearsal: stopped after epoch {self.epoch} in {runner.work_dir}")


def _recipe_hooks(stage: str, config: str, model: str) -> list:
    return list(Config.fromfile(str(resolve_config(stage, config, model))).get("custom_hooks") or [])


def rehearsal_preset(preset: str | Config, cpu: bool | None = None) -> tuple[Config, dict[str, dict[str, Any]]]:
    """The preset with generated realistic data, rehearsal lengths, one seed (and CPU reductions).

    Returns:
        (the rehearsal preset, the CPU reductions applied per task).
    """
    import torch

    cfg = copy.deepcopy(preset if isinstance(preset, Config) else load_preset(preset))
    cpu = not torch.cuda.is_available() if cpu is None else cpu
    reductions = {k: dict(v) for k, v in CPU_REDUCTIONS.items()} if cpu else {}
    cfg.preset = f"{cfg.get('preset', 'custom')}-rehearsal"
    cfg.seeds = [0]
    cfg.data = {k: None for k in dict(cfg.get("data", {}))}
    cfg.synth = copy.deepcopy(REALISTIC_SYNTH)
    # every data set is generated (shaped like the real one), so no real root is required and no official count applies
    cfg.data_policy = {k: "generated" for k in dict(cfg.get("data", {}))}
    cfg.official_counts = False
    pt = cfg.pretrain
    pt.cfg_options = {**dict(pt.get("cfg_options", {})), **LENGTHS["pretrain"], **reductions.get("pretrain", {})}
    for name, variant in dict(pt.variants).items():  # a cutoff inside the two rehearsal epochs
        if variant.get("cutoff_epoch"):
            pt.variants[name]["cutoff_epoch"] = 1
    for entry in pt.runs:
        for variant, drop in dict(entry.get("drop", {})).items():
            if drop.get("cutoff_epoch"):
                entry["drop"][variant]["cutoff_epoch"] = 1
    for task, spec in dict(cfg.finetune).items():
        opts = {**dict(spec.get("cfg_options", {})), **LENGTHS.get(task, {}), **reductions.get(task, {})}
        if task in _STOP:  # mmengine runs: the recipe's own hooks, then the stop (the same for every model)
            stage = {"coco": "det", "ade20k": "seg"}[task]
            opts["custom_hooks"] = _recipe_hooks(stage, spec["config"], spec["models"][0]) + [_STOP[task]]
        cfg.finetune[task]["cfg_options"] = opts
    return cfg, reductions


@dataclass
class RehearsalReport:
    """What :func:`rehearse` did: one row per run, the tables it wrote, the total time."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r["status"] == "ok" for r in self.rows) and bool(self.tables)

    def render(self) -> str:
        """The table: run, stages exercised, time, ok / failed with the error, CPU reductions."""
        width = max([len(r["run"]) for r in self.rows] + [3])
        lines = [f"{'run':{width}}  {'time':>7}  {'status':6}  stages exercised / reduced on CPU / error"]
        for r in self.rows:
            detail = r["stages"] + (f" | reduced: {r['reduced']}" if r["reduced"] else "")
            if r["error"]:
                detail += f" | {r['error']}"
            lines.append(f"{r['run']:{width}}  {r['seconds']:6.1f}s  {r['status']:6}  {detail}")
        n_ok = sum(r["status"] == "ok" for r in self.rows)
        lines.append(f"{n_ok}/{len(self.rows)} runs ok; tables: {len(self.tables)} files; total {self.seconds:.0f} s")
        return "\n".join(lines)


def _partial(plan_: SuitePlan) -> list[str]:
    return [r.id for r in plan_.runs if status_of(plan_, r) == "partial"]


def rehearse(preset: str | Config, out: str | os.PathLike, runs: list[str] | None = None, cpu: bool | None = None,
             progress: bool = False) -> RehearsalReport:
    """Rehearse every run of ``preset`` (or those whose id starts with one of ``runs``) into ``out``.

    Each run is stopped once right after its first checkpoint and resumed by starting the suite again; the time of a
    run is its two parts together. Never raises for a failing run: its row says why.
    """
    t0 = time.time()
    cfg, reductions = rehearsal_preset(preset, cpu)
    plan_ = plan(cfg, out, seeds=1)
    if runs:
        keep = {r.id for r in plan_.runs if any(r.id.startswith(p) for p in runs)}
        keep |= {r.upstream for r in plan_.runs if r.id in keep and r.upstream}  # a fine-tune needs its pretraining
        plan_.runs = [r for r in plan_.runs if r.id in keep]
    seconds: dict[str, float] = {}
    stopped: set[str] = set()
    for _ in range(2 * len(plan_.runs) + 2):  # each run stops at most once
        t_call, before = time.time(), {r.id for r in plan_.runs if status_of(plan_, r) in ("done", "failed")}
        try:
            run_suite(plan_, cfg, progress=progress)
            break
        except KeyboardInterrupt as e:
            if not isinstance(e, _Stopped):
                raise  # a real Ctrl-C
        except SystemExit as e:  # pretrain.train.Preempted: dropbench's loop stopped at runtime.stop_at_iter
            if "stopped by runtime.stop_at_iter" not in str(e):
                raise
        finished = {r.id for r in plan_.runs if status_of(plan_, r) in ("done", "failed")} - before
        spent = time.time() - t_call - sum(_wall(plan_, i) for i in finished)
        for rid in set(_partial(plan_)) - stopped:
            stopped.add(rid)
            seconds[rid] = seconds.get(rid, 0.0) + max(spent, 0.0)
        log.info("rehearsal: stopped %s after its first checkpoint; resuming", sorted(stopped)[-1:])
    report = RehearsalReport()
    for r in plan_.runs:
        status = status_of(plan_, r)
        error = ""
        if status == "failed":
            error = _error(plan_, r.id)
        elif status != "done":
            error = f"not run ({status}: its pretraining failed)" if r.upstream else f"not finished ({status})"
        stages = _STAGES[r.task].format(ms=" + multi-scale" if r.task == "ade20k" and _multi_scale(plan_, r) else "")
        if r.id not in stopped and status == "done":
            stages = stages.replace("stop@it1, resume, ", "").replace("stop@ep1, resume, ", "") + " (no stop)"
        if status == "done" and not _metrics(plan_, r.id):
            error = "evaluated, but no metrics (an untrained detector finds nothing above the score threshold)"
        reduced = ", ".join(f"{k}={v}" for k, v in reductions.get(r.task, {}).items())
        report.rows.append({"run": r.id, "task": r.task, "stages": stages, "reduced": reduced,
                            "seconds": seconds.get(r.id, 0.0) + _wall(plan_, r.id),
                            "status": "ok" if status == "done" else "failed", "error": error})
    if (plan_.out / "runs").exists():
        from dropbench.benchmarks.tables import build_tables, write_tables

        index(plan_.out)
        report.tables = write_tables(build_tables(collect_results(plan_.out / "runs")), plan_.out / "tables")
    report.seconds = time.time() - t0
    return report


def _wall(plan_: SuitePlan, run_id: str) -> float:
    try:
        return float(read_result(plan_.out / "runs" / run_id / RESULT_FILE).wall_time_s or 0.0)
    except ResultError:
        return 0.0


def _error(plan_: SuitePlan, run_id: str) -> str:
    try:
        return read_result(plan_.out / "runs" / run_id / RESULT_FILE).error or "failed"
    except ResultError:
        return "failed"


def _metrics(plan_: SuitePlan, run_id: str) -> dict:
    try:
        return dict(read_result(plan_.out / "runs" / run_id / RESULT_FILE).metrics)
    except ResultError:
        return {}


def _multi_scale(plan_: SuitePlan, run: Any) -> bool:
    return "mIoU_ms" in _metrics(plan_, run.id)
