"""The downstream task contract and the one registry of downstream tasks.

Every downstream task is one entry function ``run(job: Job) -> Outcome`` in its own module, with its recipes under
``configs/<stage>/``, and one :class:`Task` entry in :data:`TASKS`. Everything that lists tasks reads :data:`TASKS`:
the ``dropbench finetune <task>`` and ``dropbench data synth-<task>`` subcommands and their ``--dataset`` choices,
``dropbench evaluate`` and the suite's planner (stage folders, data roots, run ids, generated data), the results store
(the task names a ``result.json`` may carry) and the table builders (one table per task). A new task (e.g. a linear
probe) is its module, its configs and one entry here; see the README's development section. The data preflight
(:func:`data_checks`), the suite's fixed fine-tuning drop-path rate (:attr:`Task.drop_path`) and the rehearsal of a
preset (:class:`Rehearsal`) read their per-task knowledge from the entries too.

:class:`Job` is what a task is asked to do (model, checkpoint, data, recipe, overrides, seed, run folder, resume,
launcher); :class:`Outcome` is what it did (metrics, resolved config and hash, checkpoint hash and pretraining
metadata, the converter's load report, log path, task-specific artefacts). :mod:`benchmarks.runs` turns an outcome
into ``result.json``; wall time and package versions are measured there, around the entry.

Entries name their module and function as a string and are imported on first use: detection and segmentation import
mmcv / mmdet / mmseg, which classification and pretraining must run without. Pretraining is not a downstream task:
it is the stage every task's checkpoint comes from (``dropbench pretrain``, the suite's ``pretrain`` runs and the
``pretrain`` table of :mod:`benchmarks.tables`); it reports through the same :class:`Outcome`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dropbench.finetune.datasets.cls import CLS_DATASETS
from dropbench.pretrain.data import IMAGENET_CHECK, PRETRAIN_DATASET
from dropbench.pretrain.inventory import GENERIC, DataCheck

if TYPE_CHECKING:
    from dropbench.finetune.convert import LoadReport

__all__ = ["TASKS", "Column", "Job", "Outcome", "Rehearsal", "TableSpec", "Task", "data_checks", "get_task",
           "load_entry"]


@dataclass(frozen=True)
class Job:
    """One fine-tuning run of a downstream task.

    Attributes:
        model: the model the checkpoint holds: a paper model (``swin_femto``) or any timm architecture
            (``convnext_tiny``); :func:`finetune.convert.resolve_model` reads it from a file that names it.
        checkpoint: pretrained checkpoint, any layout :mod:`finetune.convert` reads (a file or a timm hub folder;
            None: random init, for tests).
        data: the data set's root, as its distribution ships it.
        out: run directory (checkpoints, logs, the resolved config; ``result.json`` is written there by the caller).
        dataset: which of the task's data sets (None: its only one; see :attr:`Task.datasets`).
        config: recipe name under ``configs/<stage>/`` or a config file.
        cfg_options: dotted-key overrides of the recipe (``{"optim_wrapper.optimizer.lr": 1e-4}``).
        seed: random seed (None: the recipe's).
        resume: ``'auto'`` continues the run in ``out`` from its latest checkpoint.
        launcher: ``none``, ``pytorch`` (under torchrun) or ``slurm`` (inside an srun task).
        use_ema: fine-tune from the checkpoint's EMA weights.
    """

    model: str
    checkpoint: str | None
    data: str
    out: str
    dataset: str | None = None
    config: str = "smoke"
    cfg_options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    resume: str | None = None
    launcher: str = "none"
    use_ema: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoint", str(self.checkpoint) if self.checkpoint is not None else None)
        object.__setattr__(self, "data", str(self.data))
        object.__setattr__(self, "out", str(self.out))
        object.__setattr__(self, "cfg_options", dict(self.cfg_options or {}))


@dataclass(frozen=True)
class Outcome:
    """What a stage did; :func:`benchmarks.runs.run_and_record` writes it as ``result.json``.

    Attributes:
        metrics: flat dict of numbers under the engine's own names and scales.
        config: the resolved config as plain data; ``config_hash`` its content hash (runtime keys left out).
        seed: the seed the run used.
        checkpoint: the input checkpoint (pretraining: the checkpoint it wrote).
        load_report: what the converter loaded from ``checkpoint`` (:class:`finetune.convert.LoadReport`), if it ran.
        checkpoint_sha256, pretrain: the checkpoint's hash and pretraining metadata (default: the load report's).
        log_path: the run's log.
        extra: task-specific artefacts and details (class names, per-class accuracy, epochs, ...).
    """

    metrics: dict[str, float]
    config: dict
    config_hash: str
    seed: int | None
    checkpoint: str | None = None
    load_report: LoadReport | None = None
    checkpoint_sha256: str | None = None
    pretrain: dict = field(default_factory=dict)
    log_path: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.load_report is not None:
            if self.checkpoint_sha256 is None:
                object.__setattr__(self, "checkpoint_sha256", self.load_report.sha256)
            if not self.pretrain:
                object.__setattr__(self, "pretrain", dict(self.load_report.pretrain))
        object.__setattr__(self, "metrics", {k: float(v) for k, v in self.metrics.items()})
        if self.checkpoint is not None:
            object.__setattr__(self, "checkpoint", str(self.checkpoint))

    def record_extra(self) -> dict:
        """``extra`` as ``result.json`` stores it: the load report (if any) under ``load_report``, first."""
        if self.load_report is None:
            return dict(self.extra)
        r = self.load_report
        report = {"summary": r.summary(), "layout": r.layout, "loaded": r.loaded, "missing": r.missing,
                  "dropped_head": r.dropped_head, "weights": r.weights}
        return {"load_report": report, **self.extra}


@dataclass(frozen=True)
class Column:
    """One measured column: ``metric`` of runs of ``dataset`` shown as ``title``, multiplied by ``scale``."""

    title: str
    metric: str
    dataset: str | None = None
    scale: float = 1.0
    optional: bool = False  # shown only when some run has the metric


@dataclass(frozen=True)
class TableSpec:
    """A table: which task's runs, which columns, and the reference table's name in paper.csv."""

    name: str
    title: str
    task: str
    columns: tuple[Column, ...]
    reference: str
    mean_column: bool = False
    # further mean columns, each over the columns of one metric: (title, metric), e.g. ("kNN mean", "knn_top1")
    metric_means: tuple[tuple[str, str], ...] = ()
    # ImageNet figures exist per recipe: rows whose runs all used a recipe with figures get that recipe's, the others
    # (smoke, a config file) this one's
    reference_recipe: str | None = None


@dataclass(frozen=True)
class Rehearsal:
    """How ``dropbench suite rehearse`` (:mod:`benchmarks.rehearse`) runs a task: its real recipe, a few iterations.

    Attributes:
        synth: the task's generator options for data shaped like the real sets (``realistic=True``, a few images per
            class), for each of its data sets.
        lengths: recipe overrides that shorten a run to two epochs / iterations with a checkpoint after the first and
            an evaluation at the end (with ``runtime.stop_at_iter`` where dropbench's own loop runs the task).
        cpu: recipe overrides applied on a CPU only, where one step of the real recipe would take minutes (the
            rehearsal's table lists them per run).
        cpu_synth: generator options applied on a CPU only (one training image instead of two: one iteration per
            epoch where a CPU step takes seconds).
        gpu_synth: generator options applied on a GPU only, where the recipe's batch is kept: enough training images
            for two iterations at that batch (and the memory the rehearsal reports is the real run's).
        stop: the mmengine hook config that stops a run right after its first checkpoint (``RehearsalStop``),
            appended to the recipe's ``custom_hooks``; None where ``lengths`` stops it (``runtime.stop_at_iter``).
        stages: what a rehearsed run goes through, for the table (``{ms}``: `` + multi-scale`` where the run
            evaluated at several scales).
        repeat: on a CPU, overrides for a run whose path an earlier run of the same task, model and data set went
            through in full (the other pretraining variants' runs): they also run without the stop and resume, and
            these drop what costs most and depends on no weights (ADE20K's multi-scale test).
    """

    synth: dict[str, Any]
    lengths: dict[str, Any]
    cpu: dict[str, Any] = field(default_factory=dict)
    cpu_synth: dict[str, Any] = field(default_factory=dict)
    gpu_synth: dict[str, Any] = field(default_factory=dict)
    stop: dict[str, Any] | None = None
    stages: str = ""
    repeat: dict[str, Any] = field(default_factory=dict)


def load_entry(ref: str) -> Callable:
    """``"package.module:function"`` -> the function (its module imported now)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Task:
    """One downstream task.

    Attributes:
        name: the task's name: ``dropbench finetune <name>``, a result's ``task``, the first part of suite run ids.
        entry: ``"module:function"`` of its entry function, ``(Job) -> Outcome``, imported on first use.
        stage: its recipes' folder, ``configs/<stage>/``.
        datasets: the data sets the entry reads (the first is the default); several: the CLI's ``--dataset``
            choices, and run ids get the data set's name.
        table: the table its results make (columns per data set and metric).
        synth: ``"module:function"`` writing a generated data set in the real format: ``(root, seed=, **opts)``,
            plus ``dataset=`` where the task has several (``dropbench data synth-<name>``).
        help: one line for ``--help``; ``data_help``: what ``--data`` must hold; ``synth_help``: what ``synth``
            writes.
        dense: needs a dense (pyramid) backbone, so classification-only models (Mixer) are left out of it.
        checks: ``"module:NAME"`` of a ``{data set: DataCheck}`` mapping (:class:`pretrain.inventory.DataCheck`):
            how the data preflight checks its data sets (layout, official counts, a decoded sample); a data set
            without one is only fingerprinted.
        drop_path: the recipe overrides that set a fixed fine-tuning drop-path rate (a preset's
            ``finetune.<task>.drop_path``), ``"{rate}"`` standing for the rate; empty: the task takes none.
        rehearsal: how ``dropbench suite rehearse`` runs it (None: it cannot be rehearsed).
    """

    name: str
    entry: str
    stage: str
    datasets: tuple[str, ...]
    table: TableSpec
    synth: str
    help: str
    data_help: str
    synth_help: str
    dense: bool = False
    checks: str | None = None
    drop_path: dict[str, Any] = field(default_factory=dict, hash=False)
    rehearsal: Rehearsal | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.table.task != self.name:
            raise ValueError(f"task {self.name}: its table {self.table.name} is of task {self.table.task}")
        unknown = {c.dataset for c in self.table.columns} - set(self.datasets)
        if unknown:
            raise ValueError(f"task {self.name}: table columns name data sets it does not read: {sorted(unknown)}")

    @property
    def table_datasets(self) -> tuple[str, ...]:
        """The data sets its table reports (the suite runs these and takes data roots for them)."""
        return tuple(dict.fromkeys(c.dataset for c in self.table.columns if c.dataset is not None))

    def job_dataset(self, dataset: str | None) -> str:
        """The data set a job runs on (checked; None: the task's only one)."""
        if dataset is None:
            if len(self.datasets) > 1:
                raise ValueError(f"task {self.name} needs a data set: one of {', '.join(self.datasets)}")
            return self.datasets[0]
        if dataset not in self.datasets:
            raise ValueError(f"task {self.name}: unknown data set {dataset!r}; choose one of: "
                             f"{', '.join(self.datasets)}")
        return dataset

    def run(self, job: Job) -> Outcome:
        """Run the task's entry on ``job`` (its data set filled in and checked)."""
        job = replace(job, dataset=self.job_dataset(job.dataset))
        outcome = load_entry(self.entry)(job)
        if not isinstance(outcome, Outcome):
            raise TypeError(f"{self.entry} returned {type(outcome).__name__}, not an Outcome")
        return outcome

    def write_synth(self, root: str | os.PathLike, dataset: str | None = None, **opts: Any) -> Path:
        """Generate a small data set of this task in its real format under ``root``."""
        kwargs = {"dataset": self.job_dataset(dataset)} if len(self.datasets) > 1 else {}
        return load_entry(self.synth)(root, **kwargs, **opts)


def _register(*tasks: Task) -> dict[str, Task]:
    out: dict[str, Task] = {}
    for task in tasks:
        if task.name in out or task.name == "pretrain":
            raise ValueError(f"task name {task.name!r} is taken")
        out[task.name] = task
    return out


_CLS_TABLE_SETS = tuple(d for d in CLS_DATASETS if d != "imagefolder")  # the paper's five; an image folder: the user's
# Table 6's column titles as the paper prints them
CLS_TITLES = {"cifar100": "C-100", "flowers102": "Flowers", "pets": "Pets", "stl10": "STL-10", "food101": "Food-101"}
# the mmengine recipes (det, seg): the fixed fine-tuning drop-path rate is the backbone's; a rehearsal checkpoints after
# the first epoch / iteration, evaluates after the second and loads data in-process (worker processes would dominate a
# two-iteration run)
_MM_DROP_PATH = {"model.backbone.drop_path_rate": "{rate}"}
_MM_REHEARSAL = {"train_cfg.val_interval": 2, "default_hooks.checkpoint.interval": 1,
                 **{f"{k}.{o}": v for k in ("train_dataloader", "val_dataloader", "test_dataloader")
                    for o, v in (("num_workers", 0), ("persistent_workers", False))}}
# the classification sets' generator: every set's class count and native size, images for 10 of its classes
_CLS_REHEARSAL_SYNTH = dict(train_per_class=2, test_per_class=1, realistic=True, drawn_classes=10)

TASKS: dict[str, Task] = _register(
    Task("coco", "dropbench.finetune.det:run_coco", "det", ("coco",),
         TableSpec("table4", "Table 4: COCO detection and instance segmentation (Mask R-CNN)", "coco",
                   (Column("AP box", "coco/bbox_mAP", "coco", 100.0),
                    Column("AP mask", "coco/segm_mAP", "coco", 100.0)), "table4"),
         "dropbench.finetune.datasets.coco:write_synth_coco",
         "COCO detection + instance segmentation (Table 4)",
         "COCO root: train2017/, val2017/, annotations/instances_{train,val}2017.json",
         "a small generated COCO-layout set (boxes, polygon masks)", dense=True,
         checks="dropbench.finetune.datasets.coco:DATA_CHECKS",
         drop_path=_MM_DROP_PATH,
         rehearsal=Rehearsal(
             dict(num_train=2, num_val=1, realistic=True),
             # a two-epoch detector scores nothing above the recipe's 0.05: keep every detection, so COCO's evaluation
             # (and the per-sample outputs) run on real detections instead of returning no metrics
             {"train_cfg.max_epochs": 2, **_MM_REHEARSAL, "model.test_cfg.rcnn.score_thr": 0.0},
             cpu_synth=dict(num_train=1), stop=dict(type="RehearsalStop", epoch=1),
             stages="load ckpt, train, ckpt, stop@ep1, resume, train, COCO eval, result")),
    Task("ade20k", "dropbench.finetune.seg:run_ade20k", "seg", ("ade20k",),
         TableSpec("table5", "Table 5: ADE20K semantic segmentation (UperNet, mIoU)", "ade20k",
                   (Column("mIoU", "mIoU", "ade20k"), Column("mIoU (ms)", "mIoU_ms", "ade20k", optional=True)),
                   "table5"),
         "dropbench.finetune.datasets.ade20k:write_synth_ade20k",
         "ADE20K semantic segmentation (Table 5)",
         "ADEChallengeData2016 root: images/{training,validation}/, annotations/{training,validation}/",
         "a small generated ADE20K-layout set (150-class label maps)", dense=True,
         checks="dropbench.finetune.datasets.ade20k:DATA_CHECKS",
         drop_path=_MM_DROP_PATH,
         rehearsal=Rehearsal(
             dict(train_images=2, val_images=1, realistic=True), {"train_cfg.max_iters": 2, **_MM_REHEARSAL},
             cpu={"model.decode_head.channels": 64, "model.auxiliary_head.channels": 64},  # 512 / 256
             cpu_synth=dict(train_images=1),
             stop=dict(type="RehearsalStop", iteration=1),
             stages="load ckpt, train, ckpt, stop@it1, resume, train, slide eval{ms}, result",
             repeat={"test_multi_scale": False})),
    Task("cls", "dropbench.finetune.cls:run_cls", "cls", CLS_DATASETS,
         TableSpec("table6", "Table 6: downstream classification (top-1, %)", "cls",
                   tuple(Column(CLS_TITLES.get(d, d), "top1", d) for d in _CLS_TABLE_SETS), "table6", mean_column=True),
         "dropbench.finetune.datasets.cls:write_synth_cls",
         "classification on CIFAR-100, Flowers-102, Pets, STL-10, Food-101 or an image folder (Table 6)",
         "the data set's root as its distribution ships it",
         "a tiny generated set in one classification data set's own format",
         checks="dropbench.finetune.datasets.cls:DATA_CHECKS",
         drop_path={"drop.kind": "drop_path", "drop.rate": "{rate}"},
         rehearsal=Rehearsal(
             _CLS_REHEARSAL_SYNTH,
             {"schedule.epochs": 1, "schedule.warmup_epochs": 0, "data.num_workers": 0, "runtime.stop_at_iter": 1,
              "runtime.max_iters_per_epoch": 2, "runtime.eval_every": 1, "runtime.progress": False},
             cpu={"data.batch_size": 8, "data.eval_batch_size": 32},  # 64 (32 for the small sets) per process
             gpu_synth=dict(train_per_class=13),  # 130 images: two batches of 64
             stages="load ckpt, train, ckpt, stop@it1, resume, test, result")),
    Task("probe", "dropbench.finetune.probe:run_probe", "probe", CLS_DATASETS,
         TableSpec("probe", "Frozen-feature probes: kNN (k = 20) and linear top-1 (%)", "probe",
                   tuple(Column(f"{CLS_TITLES[d]} {kind}", metric, d) for d in _CLS_TABLE_SETS
                         for kind, metric in (("kNN", "knn_top1"), ("linear", "linear_top1"))), "probe",
                   metric_means=(("kNN mean", "knn_top1"), ("linear mean", "linear_top1"))),
         "dropbench.finetune.datasets.cls:write_synth_cls",
         "kNN and linear probes of a checkpoint's frozen features on a classification set (minutes, no fine-tuning)",
         "the data set's root as its distribution ships it",
         "a tiny generated set in one classification data set's own format",
         checks="dropbench.finetune.datasets.cls:DATA_CHECKS",
         rehearsal=Rehearsal(
             _CLS_REHEARSAL_SYNTH,
             {"data.num_workers": 0},  # trains nothing: no length to shorten
             cpu={"data.batch_size": 16},  # 128 images per forward pass
             stages="load ckpt, features (cached), kNN, linear sweep + refit, result")),
)


def data_checks() -> dict[str, DataCheck]:
    """How the data preflight checks each data set: the pretraining set's, then each registered task's.

    A task's data sets are checked as its :attr:`Task.checks` says; a data set it declares no check for is only
    fingerprinted (:data:`pretrain.inventory.GENERIC`).
    """
    out = {PRETRAIN_DATASET: IMAGENET_CHECK}
    for task in TASKS.values():
        declared = load_entry(task.checks) if task.checks else {}
        for dataset in task.datasets:
            if out.get(dataset, GENERIC) is GENERIC:
                out[dataset] = declared.get(dataset, GENERIC)
    return out


def get_task(name: str) -> Task:
    """The registered task ``name``; an unknown name raises naming the registered ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown downstream task {name!r}; choose one of: {', '.join(TASKS)}") from None
