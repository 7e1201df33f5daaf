"""Rehearse a preset before it costs a GPU-day: every run, a handful of iterations, realistic generated data.

:func:`rehearse` takes a suite preset (``paper``), keeps its runs and recipes, and replaces only what a rehearsal must:

* the data roots: generated sets shaped like the real ones (``realistic=True`` of every generator: ImageNet's JPEG
  sizes; COCO's 640x480 / 427x640 images, 80 categories, up to 50 objects; ADE20K's 256x341 to 2100x1600 images,
  150 classes; the five classification sets at their native resolution and class count), a few images per class;
* the lengths: two epochs / iterations, evaluation at the end only;
* on a CPU only, where a step would otherwise take minutes (listed per run in the table): the pretraining batch,
  UperNet's head width, and ViT-B's and Mixer-B's depth (2 blocks of 12; every other setting of their recipes kept);
* on a CPU only, a path gone through once is not gone through again in full: the first run of each task, model and
  data set is stopped and resumed (and evaluated at several scales where its recipe says so); the other variants'
  runs of that group go straight through (ADE20K: single-scale), which their rows say;
* one seed.

What each stage changes is its :class:`~finetune.tasks.Rehearsal`: pretraining's is :data:`PRETRAIN_REHEARSAL`, each
downstream task's is its registry entry's (:attr:`Task.rehearsal <finetune.tasks.Task.rehearsal>`).

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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dropbench.benchmarks.results import RESULT_FILE, ResultError, collect_results, read_result
from dropbench.benchmarks.suite import (
    PRETRAIN,
    RunSpec,
    SuitePlan,
    index,
    key_runs,
    load_preset,
    plan,
    run_suite,
    status_of,
)
from dropbench.finetune.tasks import TASKS, Rehearsal, get_task
from dropbench.pretrain.config import resolve_config
from dropbench.pretrain.data import PRETRAIN_DATASET
from dropbench.pretrain.train import RANDOM_INIT
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

__all__ = ["CPU_MODEL_REDUCTIONS", "MEMORY_LIMIT", "PRETRAIN_REHEARSAL", "RehearsalReport", "RehearsalStop",
           "memory_check", "realistic_synth", "rehearsal_preset", "rehearse"]

log = logging.getLogger(__name__)

# pretraining, the stage every task's checkpoint comes from (not a registered task): ImageNet-shaped generated data, two
# epochs (in-process data loading: worker processes would dominate a two-iteration run), the batch cut on a CPU
PRETRAIN_REHEARSAL = Rehearsal(
    dict(num_classes=10, train_per_class=2, val_per_class=1, realistic=True),
    {"schedule.epochs": 2, "schedule.warmup_epochs": 1, "data.num_workers": 0, "runtime.stop_at_iter": 1,
     "runtime.progress": False},
    cpu={"data.batch_size": 8, "data.eval_batch_size": 16},  # 128 per process
    gpu_synth=dict(train_per_class=26),  # 260 images: two batches of 128
    stages="train, ckpt, stop@it1, resume, val, ckpt, result")


# a run whose peak GPU memory (reserved by torch's caching allocator) passes this share of the device's fails the
# rehearsal: the real run, at the same per-GPU batch, would be one allocation from running out
MEMORY_LIMIT = 0.95

# on a CPU, the paper's base-size models at 2 of their 12 blocks (one ViT-B step at 224 px takes seconds there); the
# pretraining checkpoint records the depth (pretrain.model_args), so fine-tuning and probes rebuild the same model
CPU_MODEL_REDUCTIONS: dict[str, dict[str, Any]] = {
    "vit_base": {"model.kwargs": {"depth": 2}},
    "mixer_b16": {"model.kwargs": {"num_blocks": 2}},
}


def _rehearsal(task: str) -> Rehearsal:
    """The rehearsal of ``pretrain`` or a registered task; a task without one raises naming the fix."""
    if task == PRETRAIN:
        return PRETRAIN_REHEARSAL
    rehearsal = get_task(task).rehearsal
    if rehearsal is None:
        raise ValueError(f"task {task} has no rehearsal settings: give its registry entry (finetune/tasks.py) a "
                         f"Rehearsal, or leave it out of the preset")
    return rehearsal


def realistic_synth(cpu: bool = False) -> dict[str, dict[str, Any]]:
    """Generator options per data set for generated data shaped like the real sets, a few images per class (each
    task's ``cpu_synth`` on a CPU, its ``gpu_synth`` on a GPU)."""

    def options(r: Rehearsal) -> dict[str, Any]:
        return {**r.synth, **(r.cpu_synth if cpu else r.gpu_synth)}

    out = {PRETRAIN_DATASET: options(PRETRAIN_REHEARSAL)}
    for task in TASKS.values():
        if task.rehearsal is not None:
            opts = options(task.rehearsal)
            out.update({d: dict(opts) for d in task.datasets if d not in out})
    return out


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
        # mmengine counts iterations from 0 and increments after this hook; the checkpoint of iteration 1 is saved
        # (as iter_1.pth) in this same hook call at runner.iter == 0
        if self.iteration is not None and runner.iter + 1 == self.iteration:
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
    rehearsals = {PRETRAIN: PRETRAIN_REHEARSAL, **{name: t.rehearsal for name, t in TASKS.items() if t.rehearsal}}
    reductions = {k: dict(r.cpu) for k, r in rehearsals.items() if r.cpu} if cpu else {}
    cfg.preset = f"{cfg.get('preset', 'custom')}-rehearsal"
    cfg.seeds = [0]
    cfg.data = {k: None for k in dict(cfg.get("data", {}))}
    cfg.synth = realistic_synth(cpu)
    # every data set is generated (shaped like the real one), so no real root is required and no official count applies
    cfg.data_policy = {k: "generated" for k in dict(cfg.get("data", {}))}
    cfg.official_counts = False
    pt = cfg.pretrain
    pt.cfg_options = {**dict(pt.get("cfg_options", {})), **PRETRAIN_REHEARSAL.lengths,
                      **reductions.get(PRETRAIN, {})}
    for entry in pt.runs if cpu else ():
        if entry["model"] in CPU_MODEL_REDUCTIONS:
            entry["cfg_options"] = {**dict(entry.get("cfg_options", {})), **CPU_MODEL_REDUCTIONS[entry["model"]]}
    for name, variant in dict(pt.variants).items():  # a cutoff inside the two rehearsal epochs
        if variant.get("cutoff_epoch"):
            pt.variants[name]["cutoff_epoch"] = 1
    for entry in pt.runs:
        for variant, drop in dict(entry.get("drop", {})).items():
            if drop.get("cutoff_epoch"):
                entry["drop"][variant]["cutoff_epoch"] = 1
    for task, spec in dict(cfg.finetune).items():
        rehearsal = _rehearsal(task)
        opts = {**dict(spec.get("cfg_options", {})), **rehearsal.lengths, **reductions.get(task, {})}
        if rehearsal.stop is not None:  # mmengine runs: the recipe's own hooks, then the stop (the same for any model)
            hooks = _recipe_hooks(get_task(task).stage, spec["config"], spec["models"][0])
            opts["custom_hooks"] = hooks + [dict(rehearsal.stop)]
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
            detail = r["stages"] + (f" | {r['memory']}" if r.get("memory") else "")
            detail += f" | reduced: {r['reduced']}" if r["reduced"] else ""
            if r["error"]:
                detail += f" | {r['error']}"
            lines.append(f"{r['run']:{width}}  {r['seconds']:6.1f}s  {r['status']:6}  {detail}")
        n_ok = sum(r["status"] == "ok" for r in self.rows)
        lines.append(f"{n_ok}/{len(self.rows)} runs ok; tables: {len(self.tables)} files; total {self.seconds:.0f} s")
        return "\n".join(lines)


def _partial(plan_: SuitePlan) -> list[str]:
    return [r.id for r in plan_.runs if status_of(plan_, r) == "partial"]


def rehearse(preset: str | Config, out: str | os.PathLike, runs: list[str] | None = None, cpu: bool | None = None,
             progress: bool = False, keep_checkpoints: bool = False) -> RehearsalReport:
    """Rehearse every run of ``preset`` (or those whose id starts with one of ``runs``) into ``out``.

    Each run is stopped once right after its first checkpoint and resumed by starting the suite again; the time of a
    run is its two parts together. Never raises for a failing run: its row says why. Unless ``keep_checkpoints``, a
    finished fine-tune's checkpoint files are deleted (its results stay): the paper preset's rehearsal would otherwise
    leave about 12 GB of them.
    """
    import torch

    t0 = time.time()
    cpu = not torch.cuda.is_available() if cpu is None else cpu
    cfg, reductions = rehearsal_preset(preset, cpu)
    plan_ = plan(cfg, out, seeds=1, keys=False)  # keyed below, once the runs are final
    if runs:
        keep = {r.id for r in plan_.runs if any(r.id.startswith(p) for p in runs)}
        keep |= {r.upstream for r in plan_.runs if r.id in keep and r.upstream}  # a fine-tune needs its pretraining
        plan_.runs = [r for r in plan_.runs if r.id in keep]
        if not plan_.runs:
            raise ValueError(f"--runs {' '.join(runs)}: no run of preset {cfg.preset} starts so; run ids look like "
                             f"'coco/swin_femto/baseline/seed0' ('dropbench suite plan --preset ...' lists them)")
    repeats: dict[str, str] = {}
    if cpu:
        plan_.runs, repeats = _straight_repeats(plan_.runs)
    plan_.runs = key_runs(plan_.runs, plan_.out)
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
        finally:
            if not keep_checkpoints:
                _drop_checkpoints(plan_)
        finished = {r.id for r in plan_.runs if status_of(plan_, r) in ("done", "failed")} - before
        spent = time.time() - t_call - sum(_wall(plan_, i) for i in finished)
        for rid in set(_partial(plan_)) - stopped:
            stopped.add(rid)
            seconds[rid] = seconds.get(rid, 0.0) + max(spent, 0.0)
        log.info("rehearsal: stopped %s after its first checkpoint; resuming", sorted(stopped)[-1:])
    report = RehearsalReport()
    for r in plan_.runs:
        status, result = status_of(plan_, r), _result(plan_, r.id)
        metrics, extra = (dict(result.metrics), dict(result.extra)) if result is not None else ({}, {})
        error = ""
        if status == "failed":
            error = (result.error if result is not None else "") or "failed"
        elif status != "done":
            error = f"not run ({status}: its pretraining failed)" if r.upstream else f"not finished ({status})"
        stages = _rehearsal(r.task).stages
        if r.task == PRETRAIN and r.variant == RANDOM_INIT:  # no training: the recipe's model, evaluated and saved
            stages = "untrained model, val, ckpt, result"
        stages = stages.format(ms=" + multi-scale" if "{ms}" in stages and "mIoU_ms" in metrics else "")
        if r.id not in stopped and status == "done" and "stop@" in stages:
            stages = stages.replace("stop@it1, resume, ", "").replace("stop@ep1, resume, ", "")
            stages += f" (no stop: {repeats[r.id]} went through it)" if r.id in repeats else " (no stop)"
        if status == "done" and not metrics:
            error = "evaluated, but no metrics (an untrained detector finds nothing above the score threshold)"
        cut = {**reductions.get(r.task, {}), **(CPU_MODEL_REDUCTIONS.get(r.model, {}) if cpu else {}),
               **({f"data {k}": v for k, v in _rehearsal(r.task).cpu_synth.items()} if cpu else {}),
               **(_rehearsal(r.task).repeat if r.id in repeats else {})}
        reduced = ", ".join(f"{k}={v}" for k, v in cut.items())
        memory, too_big = memory_check(extra.get("gpu_memory"))
        if too_big and status == "done":
            status, error = "failed", too_big
        report.rows.append({"run": r.id, "task": r.task, "stages": stages, "reduced": reduced,
                            "seconds": seconds.get(r.id, 0.0) + _wall(plan_, r.id), "memory": memory,
                            "status": "ok" if status == "done" else "failed", "error": error})
    if (plan_.out / "runs").exists():
        from dropbench.benchmarks.tables import build_tables, write_tables

        index(plan_.out)
        report.tables = write_tables(build_tables(collect_results(plan_.out / "runs")), plan_.out / "tables")
    report.seconds = time.time() - t0
    return report


def _straight_repeats(runs: list[RunSpec]) -> tuple[list[RunSpec], dict[str, str]]:
    """The first run of each downstream task, model and data set as it is; the others without the planned stop and
    with their task's ``repeat`` overrides. Returns (the runs, {repeat's id: the id of the run it repeats})."""
    first: dict[tuple[str, str, str], str] = {}
    out, repeats = [], {}
    for r in runs:
        group = (r.task, r.model, r.dataset)
        if r.task == PRETRAIN or group not in first:
            first.setdefault(group, r.id)
            out.append(r)
            continue
        opts = {k: v for k, v in r.cfg_options.items() if k != "runtime.stop_at_iter"}
        if "custom_hooks" in opts:
            opts["custom_hooks"] = [h for h in opts["custom_hooks"] if dict(h).get("type") != "RehearsalStop"]
        opts.update(_rehearsal(r.task).repeat)
        out.append(replace(r, cfg_options=opts))
        repeats[r.id] = first[group]
    return out, repeats


_CHECKPOINT_FILES = ("*.pth", "last_checkpoint")  # dropbench's loop: checkpoint*.pth; mmengine: epoch_/iter_*.pth


def _drop_checkpoints(plan_: SuitePlan) -> None:
    """Delete the checkpoint files of the finished downstream runs (nothing reads them; pretraining checkpoints stay,
    for the fine-tunes of a later rehearsal in the same folder)."""
    for r in plan_.runs:
        if r.task != PRETRAIN and status_of(plan_, r) in ("done", "failed"):
            for pattern in _CHECKPOINT_FILES:
                for path in plan_.run_dir(r).glob(pattern):
                    path.unlink(missing_ok=True)


def _result(plan_: SuitePlan, run_id: str) -> Any:
    """A run's ``result.json`` (None where there is none, or it cannot be read)."""
    try:
        return read_result(plan_.out / "runs" / run_id / RESULT_FILE)
    except ResultError:
        return None


def _wall(plan_: SuitePlan, run_id: str) -> float:
    result = _result(plan_, run_id)
    return float(result.wall_time_s or 0.0) if result is not None else 0.0


def memory_check(memory: dict | None) -> tuple[str, str]:
    """A run's GPU memory (``result.json`` ``extra.gpu_memory``, :func:`~benchmarks.runs.gpu_memory`) as the table
    shows it, and the error when its peak passes :data:`MEMORY_LIMIT` of the device's (empty strings without one)."""
    if not memory:
        return "", ""
    peak, total = float(memory["peak_reserved_gib"]), float(memory["total_gib"])
    shown = f"GPU peak {peak:.1f} of {total:.1f} GiB ({memory.get('device', 'GPU')})"
    if peak <= MEMORY_LIMIT * total:
        return shown, ""
    return shown, (f"{shown}: over {MEMORY_LIMIT:.0%} of the device's memory at the recipe's batch size, so the real "
                   f"run may run out; lower data.batch_size (raise data.update_freq to keep the total batch)")


