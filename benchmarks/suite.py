"""The suite: plan every run of a preset (pretraining -> each fine-tune), skip what is done, run the rest, tabulate.

A preset (``configs/suites/<name>.py``) names the pretraining runs (model x variant) and the downstream tasks.
:func:`plan` expands it into :class:`RunSpec` s, each with a key: the content hash of its resolved recipe, its
overrides, data and seed, and of its input (the upstream run's key, or an external checkpoint's sha256). A run is
done when its folder holds an ``ok`` ``result.json`` written under the same key; a folder holding another key's run
is moved to ``<out>/stale/`` before the run is redone. Runs resume from their own checkpoints (``resume='auto'``), so
killing the suite and starting it again loses nothing and redoes nothing finished.

Executors: ``local`` (in this process, or N worker processes) and ``slurm`` (submitit, one job per run, SLURM
dependencies ``afterok`` on the upstream job). A failing run is recorded (``status: failed``, error, log path), its
dependents are skipped, the others go on.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import signal
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from dropbench.benchmarks.results import RESULT_FILE, ResultError, collect_results, read_result
from dropbench.finetune.tasks import TASKS, Job, Outcome, Task, get_task
from dropbench.pretrain.config import resolve_config
from dropbench.pretrain.data import PRETRAIN_DATASET
from dropbench.pretrain.io import atomic_write
from dropbench.pretrain.models import PAPER_MODELS
from dropbench.pretrain.stop import Preempted, check, stop_signals
from dropbench.pretrain.train import RANDOM_INIT, RANDOM_INIT_DROP
from mmengine.config import Config
from tqdm import tqdm

__all__ = ["RunSpec", "SuitePlan", "execute_run", "key_runs", "load_preset", "plan", "run_suite", "status_of"]

log = logging.getLogger(__name__)
SPEC_FILE = "suite_run.json"
RUN_LOG = "run.log"  # what a run logs through Python logging, and its traceback if it fails
PRETRAIN = "pretrain"  # the upstream stage: its task name, config folder (configs/pretrain/) and run id prefix


def _stage_dir(task: str) -> str:
    """The config folder of a run's recipes: ``pretrain`` or the downstream task's (:attr:`Task.stage`)."""
    return PRETRAIN if task == PRETRAIN else get_task(task).stage


def _root_names() -> tuple[str, ...]:
    """The data sets a suite takes roots for: ImageNet, then every data set the registered tasks' tables report."""
    return tuple(dict.fromkeys((PRETRAIN_DATASET, *(d for t in TASKS.values() for d in t.table_datasets))))


def _dense(model: str, checkpoint: str | None) -> bool:
    """Whether ``model`` can be a detection / segmentation backbone (a refusal is logged: its dense runs are left
    out, as the paper's Mixers' are)."""
    from dropbench.finetune.backbone import check_dense

    try:
        check_dense(model, checkpoint)
    except ValueError as e:
        if model not in PAPER_MODELS:
            log.warning("%s", e)
        return False
    return True


def _task_of_dataset(dataset: str) -> Task:
    """The downstream task that reads (and generates) ``dataset``."""
    for task in TASKS.values():
        if dataset in task.datasets:
            return task
    raise ValueError(f"no registered task reads the data set {dataset!r}")


@dataclass(frozen=True)
class RunSpec:
    """One run of the suite.

    Attributes:
        id: unique path-like name (``<task>[/<data set>]/<model>/<variant>/seed<k>``); the run folder is
            ``<out>/runs/<id>``.
        task: ``pretrain`` or a downstream task of :data:`finetune.tasks.TASKS`.
        model, variant, dataset, seed: what the run is (variant: the pretraining variant or an evaluate label).
        config: recipe name or file of the task's stage; ``cfg_options``: dotted-key overrides.
        data_root: the data set's root.
        drop: pretraining drop settings (pretraining runs only).
        upstream: id of the pretraining run whose checkpoint this run fine-tunes, or None.
        checkpoint: an external checkpoint to fine-tune (``dropbench evaluate``), or None.
        key: content hash (filled in by :func:`plan`).
        data: provenance of the data sets the run reads (filled in by :func:`run_suite` from the data preflight;
            not part of the key).
    """

    id: str
    task: str
    model: str
    variant: str
    dataset: str
    config: str
    data_root: str
    seed: int | None = None
    cfg_options: dict = field(default_factory=dict)
    drop: dict | None = None
    upstream: str | None = None
    checkpoint: str | None = None
    key: str = ""
    data: dict = field(default_factory=dict)


@dataclass
class SuitePlan:
    """The runs of a suite in dependency order, where they live, and the preset they came from.

    ``data`` maps each data set the runs read to its root; ``generated`` names those the suite generates under
    ``<out>/data`` (no root given, the preset's ``data_policy`` allows it); ``official_counts``: the preset requires
    the official split sizes (a difference is an error).
    """

    preset: str
    out: Path
    runs: list[RunSpec]
    slurm: dict
    source: str = ""  # the preset file
    data: dict[str, str | None] = field(default_factory=dict)
    data_policy: dict[str, str] = field(default_factory=dict)
    generated: frozenset[str] = frozenset()
    official_counts: bool = False

    def run_dir(self, run: RunSpec) -> Path:
        return self.out / "runs" / run.id

    def by_id(self) -> dict[str, RunSpec]:
        return {r.id: r for r in self.runs}


def load_preset(preset: str) -> Config:
    """A suite preset by name (``smoke``, ``paper``) or config file."""
    return Config.fromfile(str(resolve_config("suites", preset)))


def _recipe_text(stage: str, config: str, model: str, checkpoint: str | None = None) -> str:
    try:
        if stage in (PRETRAIN, get_task("cls").stage) or model in PAPER_MODELS:
            path = resolve_config(stage, config, model)
        else:  # a timm architecture may take a paper model's per-model recipe (finetune.backbone.resolve_recipe)
            from dropbench.finetune.backbone import checkpoint_model_args, resolve_recipe

            path = resolve_recipe(stage, config, model, checkpoint_model_args(checkpoint))[0]
        return Config.fromfile(str(path)).pretty_text
    except ValueError:
        raise
    except Exception as e:  # a recipe that does not parse is a planning error, not a run failure
        raise ValueError(f"recipe {config!r} for {stage}/{model} does not load: {e}") from None


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _data_roots(preset: Config, data_roots: dict[str, str] | None) -> dict[str, str | None]:
    """Every data set's root from the preset's ``data`` and ``--data-root`` (which wins); None where neither gives
    one."""
    roots: dict[str, str | None] = dict.fromkeys(_root_names())
    roots.update({k: v for k, v in dict(preset.get("data", {})).items()})
    for k, v in (data_roots or {}).items():
        if k not in _root_names():
            raise ValueError(f"--data-root {k}=...: unknown data set; choose from {', '.join(_root_names())}")
        roots[k] = str(Path(v).expanduser().resolve())
    return roots


def finetune_options(task: str, spec: dict) -> dict:
    """A task's overrides from its preset entry: ``cfg_options``, after the ``drop_path`` key when it is set.

    ``drop_path`` (None or absent: the recipe's fixed rate, 0.1, dropbench's choice) sets the fixed stochastic-depth
    rate of the fine-tuning runs, under the recipe keys the task's registry entry names (:attr:`Task.drop_path`); a
    set value enters the run key through these overrides, an unset one changes nothing.
    """
    options: dict = {}
    rate = spec.get("drop_path")
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"finetune.{task}.drop_path must be a rate in [0, 1) or None, got {rate!r}")
        keys = get_task(task).drop_path
        if not keys:
            raise ValueError(f"finetune.{task}.drop_path: task {task} takes no fixed drop-path rate (its registry "
                             f"entry names no drop_path keys); remove it from the preset")
        options = {k: float(rate) if v == "{rate}" else v for k, v in keys.items()}
    options.update(dict(spec.get("cfg_options", {})))
    return options


def plan(preset: str | Config, out: str | os.PathLike, data_roots: dict[str, str] | None = None,
         seeds: int | None = None, checkpoint: str | None = None, model: str | None = None,
         label: str | None = None, allow_missing: bool = False, keys: bool = True,
         tasks: list[str] | None = None) -> SuitePlan:
    """Expand a preset into its runs (keys included), in dependency order.

    Args:
        preset: preset name, file, or loaded Config.
        out: the suite folder.
        data_roots: ``{data set: root}`` overriding the preset's; where neither gives one, data is generated under
            ``<out>/data`` if the preset's ``data_policy`` says ``generated`` for it.
        seeds: number of fine-tuning seeds (0..seeds-1) instead of the preset's list (and of a task entry's own
            ``seeds``, e.g. the probe's ``[0]``: its features and kNN do not depend on the seed).
        checkpoint, model, label: evaluate one external checkpoint of ``model`` (labelled ``label`` in the tables) on
            the preset's downstream tasks instead of running its pretraining matrix.
        allow_missing: plan even when required roots are missing (their ``data`` entry is None), to report them.
        keys: compute the runs' keys (recipes loaded, checkpoints hashed); False for a plan that only lists its runs
            and data (``dropbench data check``).
        tasks: only these downstream tasks of the preset (``evaluate --tasks probe``); None: all of them.

    Raises:
        MissingDataError: a data set the runs read has no root and the preset requires real data for it; the message
            lists every such root as the ``--data-root NAME=PATH`` to add.
    """
    from dropbench.benchmarks.datacheck import MissingDataError, missing_roots_message, preset_policy

    cfg = preset if isinstance(preset, Config) else load_preset(preset)
    out = Path(out).resolve()
    given = _data_roots(cfg, data_roots)
    policy = preset_policy(cfg, given)
    roots = {k: v if v is not None else str((out / "data" / k).resolve()) for k, v in given.items()}
    seed_list = list(range(seeds)) if seeds else list(cfg.get("seeds", [0]))
    runs: list[RunSpec] = []
    sources: list[tuple[str, str, str | None, str | None]] = []  # (model, variant, upstream id, checkpoint)
    if checkpoint is None:
        pt = cfg.pretrain
        variants = dict(pt.variants)
        for entry in pt.runs:
            for variant in entry["variants"]:
                # the preset's overrides, then the entry's own (a model's, e.g. a rehearsal's reduced depth)
                opts = {**dict(pt.get("cfg_options", {})), **dict(entry.get("cfg_options", {}))}
                if variant == RANDOM_INIT:  # the reference row: the recipe's model, untrained (0 epochs)
                    variants[variant], opts["schedule.epochs"] = dict(RANDOM_INIT_DROP), 0
                if variant not in variants:
                    raise ValueError(f"preset {cfg.get('preset')}: variant {variant!r} of {entry['model']} is not in "
                                     f"configs/pretrain/_base_/variants.py ({', '.join(variants)})")
                run_id = f"{PRETRAIN}/{entry['model']}/{variant}"
                runs.append(RunSpec(id=run_id, task=PRETRAIN, model=entry["model"], variant=variant,
                                    dataset=PRETRAIN_DATASET, config=pt.config, data_root=roots[PRETRAIN_DATASET],
                                    seed=int(opts.get("runtime.seed", 0)), cfg_options=opts,
                                    drop={**variants[variant], **dict(entry.get("drop", {})).get(variant, {})}))
                sources.append((entry["model"], variant, run_id, None))
    else:
        from dropbench.finetune.convert import resolve_model

        if model is None:  # the file's architecture (a --model given is checked against the file below)
            model = resolve_model(checkpoint, None)
        sources.append((model, label or Path(checkpoint).stem, None, str(Path(checkpoint).resolve())))
    finetune = dict(cfg.finetune)
    for task in tasks or ():
        if task not in finetune:
            raise ValueError(f"--tasks {task}: preset {cfg.get('preset')} has no {task!r} entry; its tasks: "
                             f"{', '.join(finetune) or '(none)'}")
    for task, spec in finetune.items():
        if tasks and task not in tasks:
            continue
        if task not in TASKS:
            raise ValueError(f"preset {cfg.get('preset')}: unknown downstream task {task!r}; registered: "
                             f"{', '.join(TASKS)}")
        entry_ = TASKS[task]
        only = spec.get("variants")  # None: every pretraining variant of the listed models
        if only is not None and checkpoint is None:
            unknown = sorted(set(only) - {v for _, v, _, _ in sources})
            if unknown:
                raise ValueError(f"preset {cfg.get('preset')}: finetune.{task}.variants names {', '.join(unknown)}, "
                                 f"which no pretraining run of the preset has; its variants: "
                                 f"{', '.join(dict.fromkeys(v for _, v, _, _ in sources))}")
        for model_name, variant, upstream, ckpt in sources:
            if only is not None and checkpoint is None and variant not in only:
                continue
            if model_name not in spec["models"]:
                if checkpoint is None:
                    continue
                if entry_.dense and not _dense(model_name, ckpt):
                    continue  # Mixer, a timm model without a usable pyramid: classification only
            several = len(entry_.datasets) > 1  # run ids name the data set
            datasets = [entry_.job_dataset(d) for d in spec.get("datasets", entry_.table_datasets)]
            task_seeds = seed_list if seeds or "seeds" not in spec else [int(x) for x in spec["seeds"]]
            for dataset in datasets:
                for seed in task_seeds:
                    parts = [task] + ([dataset] if several else []) + [model_name, variant, f"seed{seed}"]
                    runs.append(RunSpec(id="/".join(parts), task=task, model=model_name, variant=variant,
                                        dataset=dataset, config=spec["config"], data_root=roots[dataset], seed=seed,
                                        cfg_options=finetune_options(task, spec), upstream=upstream,
                                        checkpoint=ckpt))
    needed = list(dict.fromkeys(r.dataset for r in runs))
    missing = [d for d in needed if given[d] is None and policy[d] == "required"]
    if missing and not allow_missing:  # before anything is hashed, generated or written
        raise MissingDataError(missing_roots_message(str(cfg.get("preset", "custom")), missing))
    if checkpoint is not None and keys:
        from dropbench.finetune.convert import resolve_model

        resolve_model(checkpoint, model)  # a --model that disagrees with the architecture the file names: refused
    return SuitePlan(preset=str(cfg.get("preset", "custom")), out=out, runs=key_runs(runs, out) if keys else runs,
                     slurm=dict(cfg.get("slurm", {})), source=str(cfg.filename or ""),
                     data={d: None if d in missing else roots[d] for d in needed},
                     data_policy={d: policy[d] for d in needed},
                     generated=frozenset(d for d in needed if given[d] is None and d not in missing),
                     official_counts=bool(cfg.get("official_counts", False)))


def key_runs(runs: list[RunSpec], out: str | os.PathLike) -> list[RunSpec]:
    """The runs (in dependency order) with their keys: a hash of the recipe's text, what the run is, its overrides,
    its data and its source (the upstream run's key, or an external checkpoint's sha256)."""
    out = Path(out).resolve()
    keyed: dict[str, RunSpec] = {}
    recipes: dict[tuple[str, str, str], str] = {}
    for r in runs:
        stage = _stage_dir(r.task)
        if (stage, r.config, r.model) not in recipes:
            recipes[(stage, r.config, r.model)] = _recipe_text(stage, r.config, r.model, r.checkpoint)
        if r.upstream:
            source = keyed[r.upstream].key
        elif r.checkpoint:
            from dropbench.finetune.convert import checkpoint_sha256

            if not Path(r.checkpoint).exists():
                raise ValueError(f"checkpoint {r.checkpoint} does not exist")
            source = checkpoint_sha256(r.checkpoint)
        else:
            source = None
        # generated data under the suite folder is keyed by its place in it: a moved suite folder stays done
        root = Path(r.data_root)
        data = str(root.relative_to(out)) if root.is_relative_to(out) else r.data_root
        key = _hash(recipes[(stage, r.config, r.model)], r.task, r.model, r.dataset, r.seed, r.cfg_options, r.drop,
                    data, source)
        keyed[r.id] = replace(r, key=key)
    return list(keyed.values())


def status_of(plan_: SuitePlan, run: RunSpec) -> str:
    """``done``, ``failed`` (last attempt under this key failed), ``stale`` (another key's run), ``partial`` or
    ``todo``."""
    folder = plan_.run_dir(run)
    spec_file = folder / SPEC_FILE
    if not spec_file.exists():
        return "stale" if folder.exists() and any(folder.iterdir()) else "todo"
    try:
        key = json.loads(spec_file.read_text()).get("key")
    except json.JSONDecodeError:
        return "stale"
    if key != run.key:
        return "stale"
    try:
        result = read_result(folder / RESULT_FILE)
    except ResultError:
        return "partial"
    return "done" if result.status == "ok" else "failed"


def _upstream_checkpoint(plan_: SuitePlan, run: RunSpec) -> str | None:
    if run.checkpoint:
        return run.checkpoint
    if run.upstream is None:
        return None
    result = read_result(plan_.run_dir(plan_.by_id()[run.upstream]) / RESULT_FILE)
    return str(Path(result.run_dir) / "checkpoint.pth") if result.task == PRETRAIN else None


def _prepare_folder(plan_: SuitePlan, run: RunSpec) -> Path:
    folder = plan_.run_dir(run)
    status = status_of(plan_, run)
    if status == "stale":
        dest = plan_.out / "stale" / time.strftime("%Y%m%d-%H%M%S") / run.id
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), str(dest))
        log.warning("%s: folder held a run of another config; moved it to %s", run.id, dest)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / SPEC_FILE, json.dumps(asdict(run), indent=2))
    return folder


@contextlib.contextmanager
def _run_log(folder: Path):
    """Copy what is logged while a run works into ``folder/run.log``, and its traceback if it fails (every failed
    run then has a log that says why, even one that failed before its engine wrote one)."""
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / RUN_LOG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    except BaseException:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        handler.stream.write(f"{stamp} the run ended with an exception:\n{traceback.format_exc()}")
        raise
    finally:
        root.removeHandler(handler)
        handler.close()


def execute_run(run: RunSpec | dict, out: str | os.PathLike, checkpoint: str | None = None, launcher: str = "none"
                ) -> str:
    """Run one planned run into ``<out>/runs/<id>`` (resuming it if it was interrupted); returns its status.

    ``checkpoint`` is the upstream checkpoint for fine-tuning runs. Raises what the stage raises, after
    :func:`benchmarks.runs.run_and_record` has written a failed ``result.json`` (and the traceback to ``run.log``).
    """
    run = RunSpec(**run) if isinstance(run, dict) else run
    folder = Path(out) / "runs" / run.id
    os.environ.setdefault("DROPBENCH_ENGINE_CONSOLE", "WARNING")  # engine details go to each run's own log file
    with stop_signals(), _run_log(folder):
        return _execute(run, folder, checkpoint, launcher)


def _execute(run: RunSpec, folder: Path, checkpoint: str | None, launcher: str) -> str:
    from dropbench.benchmarks.runs import pretrain_run, run_and_record, run_task

    if run.task == PRETRAIN:
        from dropbench.pretrain.train import build_config, get_args_parser

        args = get_args_parser().parse_args(["--config", run.config, "--model", run.model, "--data", run.data_root,
                                             "--out", str(folder)])
        args.cfg_options = dict(run.cfg_options)

        def stage() -> Outcome:
            cfg = build_config(args, drop_settings=run.drop)
            return pretrain_run(cfg, folder, resume="auto", recipe=run.config)

        run_and_record(PRETRAIN, PRETRAIN_DATASET, run.model, folder, stage, variant=run.variant, data=run.data)
        return "done"
    job = Job(model=run.model, checkpoint=checkpoint, data=run.data_root, out=str(folder), dataset=run.dataset,
              config=run.config, cfg_options=dict(run.cfg_options), seed=run.seed, resume="auto", launcher=launcher)
    run_task(run.task, job, variant=run.variant, data=run.data)
    return "done"


def execute_spec_file(argv: list[str]) -> str:
    """SLURM entry point: ``[spec file, out dir]`` -> :func:`execute_run` with the distributed launcher."""
    spec = json.loads(Path(argv[0]).read_text())
    out = argv[1]
    plan_ = SuitePlan(preset="", out=Path(out), runs=[RunSpec(**spec)], slurm={})
    run = plan_.runs[0]
    ckpt = run.checkpoint
    if run.upstream:
        ckpt = str(Path(out) / "runs" / run.upstream / "checkpoint.pth")
    return execute_run(run, out, ckpt, launcher="pytorch" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "none")


def _was_generated(root: str | os.PathLike) -> bool:
    """Whether a generator finished writing ``root`` (its marker; classification sets: in ``<root>/<folder>/``)."""
    from dropbench.pretrain.synth import MARKER

    return (Path(root) / MARKER).exists() or any(Path(root).glob(f"*/{MARKER}"))


def ensure_generated_data(plan_: SuitePlan, preset: Config) -> None:
    """Generate the embedded data sets the plan reads from ``<out>/data`` (once; kept between runs)."""
    generated = plan_.out / "data"
    needed = {(r.dataset, r.data_root) for r in plan_.runs if Path(r.data_root).parent == generated.resolve()}
    synth_cfg = dict(preset.get("synth", {}))
    for dataset, root in sorted(needed):
        if _was_generated(root):
            continue
        log.info("generating %s data in %s", dataset, root)
        opts = dict(synth_cfg.get(dataset, {}))
        if dataset == PRETRAIN_DATASET:
            from dropbench.pretrain.synth import write_synth_imagenet

            write_synth_imagenet(root, progress=False, **opts)
        else:
            _task_of_dataset(dataset).write_synth(root, dataset=dataset, **opts)


def check_data(plan_: SuitePlan, sample: int = 2) -> list:
    """The data preflight of a plan (:func:`benchmarks.datacheck.preflight`): every data set its runs read, under the
    preset's policy; sets the suite has still to generate are reported as ``pending``."""
    from dropbench.benchmarks.datacheck import preflight

    pending = [d for d in plan_.data if d in plan_.generated and not _was_generated(plan_.data[d])]
    return preflight(plan_.data, plan_.data_policy, official_counts=plan_.official_counts, sample=sample,
                     pending=pending)


def _with_provenance(run: RunSpec, provenance: dict[str, dict]) -> RunSpec:
    """The run with the provenance of its data set, and of ImageNet when it fine-tunes a suite's pretraining."""
    data = {run.dataset: provenance[run.dataset]}
    if run.upstream is not None and PRETRAIN_DATASET in provenance:
        data[PRETRAIN_DATASET] = provenance[PRETRAIN_DATASET]
    return replace(run, data=data)


def _preflight(plan_: SuitePlan, preset: Config) -> dict[str, dict]:
    """Check every root before anything runs, generate what the preset allows, and return each set's provenance.

    Raises:
        DataPreflightError: a root has a bad layout, unreadable files or (under ``official_counts``) split sizes
            that differ from the official release; raised before any data is generated or any run folder made.
    """
    from dropbench.benchmarks.datacheck import raise_for_errors, render_reports

    reports = check_data(plan_)
    raise_for_errors(reports)
    if any(r.status == "pending" for r in reports):
        ensure_generated_data(plan_, preset)
        reports = check_data(plan_)
        raise_for_errors(reports)
    log.info("data preflight:\n%s", render_reports(reports))
    return {r.dataset: r.provenance() for r in reports}


@dataclass
class SuiteReport:
    """What :func:`run_suite` did."""

    done: list[str] = field(default_factory=list)  # finished now
    skipped: list[str] = field(default_factory=list)  # already done
    failed: dict[str, str] = field(default_factory=dict)  # id -> error
    blocked: dict[str, str] = field(default_factory=dict)  # id -> failed upstream
    submitted: dict[str, str] = field(default_factory=dict)  # id -> SLURM job id

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked

    def summary(self) -> str:
        lines = [f"{len(self.done)} run(s) done now, {len(self.skipped)} already done, {len(self.failed)} failed, "
                 f"{len(self.blocked)} skipped because their pretraining failed"]
        lines += [f"  FAILED {k}: {v}" for k, v in self.failed.items()]
        lines += [f"  skipped {k} (upstream {v} failed)" for k, v in self.blocked.items()]
        if self.submitted:
            lines.append(f"  {len(self.submitted)} SLURM job(s) submitted")
        return "\n".join(lines)


def _log_of(run_dir: Path) -> str:
    """The log a failed run's ``result.json`` points to (``run.log`` where it names none)."""
    try:
        path = read_result(run_dir).log_path
    except ResultError:
        path = None
    return path or str(run_dir / RUN_LOG)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING)
    for sig in (signal.SIGTERM, signal.SIGINT):  # between runs a worker leaves stopping to the suite process
        signal.signal(sig, signal.SIG_IGN)


def run_suite(plan_: SuitePlan, preset: Config | None = None, executor: str = "local", jobs: int = 1,
              progress: bool = True, slurm_cluster: str | None = None, wait: bool = False) -> SuiteReport:
    """Run what the plan still needs, in dependency order; never raises for a failing run.

    Args:
        plan_: from :func:`plan`.
        preset: the preset Config (for generated data settings); loaded from ``plan_.preset`` if None.
        executor: ``local`` or ``slurm``.
        jobs: local worker processes (1: in this process).
        progress: show the runs bar.
        slurm_cluster: submitit cluster override (``local`` / ``debug`` for testing the SLURM path here).
        wait: if another process holds the suite folder, wait for it instead of raising ``FolderInUse``.

    The suite folder is held for the whole call (:mod:`pretrain.lock`); SIGTERM / SIGINT stop the suite between runs
    at once and a running stage at its next step, checkpoint first (:mod:`pretrain.stop`), raising ``Preempted``.
    """
    if executor not in ("local", "slurm"):
        raise ValueError(f"executor must be local or slurm, got {executor!r}")
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    from dropbench.benchmarks.datacheck import raise_for_errors
    from dropbench.pretrain.lock import hold

    if not plan_.out.exists():  # bad roots are refused before the suite lock makes the folder: a refusal writes nothing
        raise_for_errors(check_data(plan_))
    with stop_signals(), hold(plan_.out, wait=wait):
        return _run_suite(plan_, preset, executor, jobs, progress, slurm_cluster)


def _run_suite(plan_: SuitePlan, preset: Config | None, executor: str, jobs: int, progress: bool,
               slurm_cluster: str | None) -> SuiteReport:
    preset = preset if preset is not None else load_preset(plan_.source or plan_.preset)
    report = SuiteReport()
    todo = []
    for run in plan_.runs:
        if status_of(plan_, run) == "done":
            report.skipped.append(run.id)
        else:
            todo.append(run)
    if not todo:
        return report
    provenance = _preflight(plan_, preset)
    todo = [_with_provenance(r, provenance) for r in todo]
    if executor == "slurm":
        return _run_slurm(plan_, todo, report, slurm_cluster)
    by_id = plan_.by_id()
    pending = list(todo)
    bar = tqdm(total=len(plan_.runs), initial=len(report.skipped), desc="suite", unit="run", disable=not progress,
               dynamic_ncols=True, position=0)

    def ready(run: RunSpec) -> bool | None:
        if run.upstream is None:
            return True
        up = by_id[run.upstream]
        if up.id in report.failed or up.id in report.blocked:
            return None
        return up.id in report.skipped or up.id in report.done

    def finish(run: RunSpec, error: BaseException | None) -> None:
        if isinstance(error, (Preempted, KeyboardInterrupt)):  # a worker was asked to stop: so is the suite
            raise Preempted(f"{run.id}: {error}", getattr(error, "signal_name", None))
        if error is None:
            report.done.append(run.id)
        else:
            report.failed[run.id] = f"{type(error).__name__}: {error} (log: {_log_of(plan_.run_dir(run))})"
            log.error("%s failed: %s (see %s)", run.id, error, plan_.run_dir(run) / RESULT_FILE)
        bar.update(1)

    def block_dependents() -> None:
        for run in list(pending):
            if ready(run) is None:
                pending.remove(run)
                report.blocked[run.id] = run.upstream or ""
                bar.update(1)

    pool = None
    if jobs > 1:
        threads = max(1, (os.cpu_count() or 2) // jobs)
        pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                      initargs=(threads,))
    running: dict[cf.Future, RunSpec] = {}
    try:
        while pending or running:
            check("before the next run")
            block_dependents()
            startable = [r for r in pending if ready(r)]
            while startable and (pool is None and not running or pool is not None and len(running) < jobs):
                run = startable.pop(0)
                pending.remove(run)
                _prepare_folder(plan_, run)
                ckpt = _upstream_checkpoint(plan_, run)
                left = len(pending)
                bar.set_postfix_str(f"running {run.id}; {len(running) + 1} running, {left} left")
                if pool is None:
                    try:
                        execute_run(run, plan_.out, ckpt)
                        finish(run, None)
                    except Exception as e:  # noqa: BLE001 - a failing run must not stop the suite
                        finish(run, e)
                    break
                running[pool.submit(execute_run, asdict(run), str(plan_.out), ckpt)] = run
            if running:
                finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    run = running.pop(fut)
                    finish(run, fut.exception())
            elif pending and not any(ready(r) for r in pending):
                block_dependents()
                if pending:  # cannot happen with a valid plan; guard against a loop
                    raise RuntimeError(f"runs cannot start: {[r.id for r in pending]}")
    except Preempted:
        if pool is not None:  # the workers' stages checkpoint and stop (a repeat of a group signal is ignored)
            for proc in list(getattr(pool, "_processes", {}).values()):
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, signal.SIGTERM)
        raise
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        bar.close()
    return report


def _run_slurm(plan_: SuitePlan, todo: list[RunSpec], report: SuiteReport, cluster: str | None) -> SuiteReport:
    """Submit one job per run, each depending (afterok) on its upstream run's job."""
    from dropbench.pretrain.launch import SlurmTask, slurm_executor

    jobs: dict[str, Any] = {}
    todo_ids = {r.id for r in todo}
    for run in todo:
        folder = _prepare_folder(plan_, run)
        res = dict(plan_.slurm.get("default", {}))
        res.update(plan_.slurm.get(run.task, {}))
        executor = slurm_executor(folder / "slurm", int(res.get("nodes", 1)), int(res.get("gpus_per_node", 1)),
                                  int(res.get("timeout_min", 60)), res.get("partition"), res.get("comment", ""),
                                  cluster=cluster)
        if run.upstream in todo_ids and executor.cluster == "slurm":
            executor.update_parameters(slurm_additional_parameters={"dependency": f"afterok:{jobs[run.upstream]}"})
        job = executor.submit(SlurmTask(execute_spec_file, [str(folder / SPEC_FILE), str(plan_.out)]))
        jobs[run.id] = job.job_id
        report.submitted[run.id] = job.job_id
        log.info("submitted %s as job %s", run.id, job.job_id)
    return report


def describe(plan_: SuitePlan, data: list | None = None) -> str:
    """The plan as a table: run id, task, status, key; below the data preflight's table when ``data`` (its reports)
    is given."""
    from dropbench.benchmarks.datacheck import render_reports

    head = f"data sets ({plan_.preset} preset):\n{render_reports(data)}\n" if data else ""
    rows = [(r.id, status_of(plan_, r), r.key) for r in plan_.runs]
    warnings = []
    for r in plan_.runs:
        path = plan_.run_dir(r) / RESULT_FILE
        if path.exists():
            try:
                read_result(path)
            except ResultError as e:
                warnings.append(f"  warning: {e}; the run is not done: `suite run` redoes it")
    width = max(len(r[0]) for r in rows) if rows else 10
    counts: dict[str, int] = {}
    for _, s, _ in rows:
        counts[s] = counts.get(s, 0) + 1
    lines = [f"preset {plan_.preset}: {len(rows)} runs in {plan_.out} ("
             + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")"]
    lines += [f"  {rid:{width}}  {status:8} {key}" for rid, status, key in rows]
    return head + "\n".join(lines + warnings)


def index(out: str | os.PathLike) -> Path:
    """Rebuild ``<out>/index.csv`` (one row per run result) from the result files."""
    out = Path(out)
    df = collect_results(out / "runs")
    return atomic_write(out / "index.csv", lambda f: df.to_csv(f, index=False))

