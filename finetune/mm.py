"""What the mmdet and mmseg fine-tuning paths share around mmengine's Runner.

* :func:`install_safe_checkpoint_loading`: mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; under
  torch >= 2.6 that refuses the paper's checkpoints and mmengine's own resume files. Local loads are re-routed to
  :func:`pretrain.checkpoint.load_checkpoint_file` (weights-only, a short allow-list of plain types), so resume works
  and a checkpoint that needs code to load is still refused.
* :func:`prepare_runner_config`: one recipe (``configs/det`` or ``configs/seg``) + a :class:`finetune.tasks.Job`
  (checkpoint, run folder, launcher, seed, overrides) -> the resolved mmengine Config.
* :func:`adapt_to_device`: what a recipe written for GPUs needs on a machine without one (AMP off, gloo not NCCL).
* :func:`run_runner`: build the Runner, train (resuming from the work dir's last checkpoint when asked), evaluate
  the final weights, return the metrics and the backbone's load report; a non-finite loss stops the run
  (:class:`DivergenceHook`: ``diverged: loss is nan at iteration N``) and SIGTERM / SIGINT stop it within an
  iteration (:class:`StopOnSignalHook`); :func:`outcome` packs them into the task's :class:`finetune.tasks.Outcome`.
  The Runner loads resume / ``load_from`` checkpoints strictly (mmengine only warns on a mismatch), and the
  pretrained backbone is loaded once per run by the backbone's own ``init_weights`` (which raises on a misfit).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from dropbench.finetune.backbone import TimmPyramidBackbone, checkpoint_model_args, resolve_recipe
from dropbench.finetune.convert import LoadReport, checkpoint_sha256
from dropbench.finetune.layer_decay import layer_decay_in_force
from dropbench.finetune.tasks import Job, Outcome
from dropbench.pretrain.checkpoint import CheckpointError, load_checkpoint_file, write_error
from dropbench.pretrain.config import config_hash, dump_config, plain
from dropbench.pretrain.distributed import setup_launcher
from dropbench.pretrain.faults import fault_point
from dropbench.pretrain.stop import Preempted, deferred, requested, shield_worker, stop_signals, worker_context
from mmengine.config import Config
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner, find_latest_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = ["DivergenceHook", "RunnerRun", "StopOnSignalHook", "StrictRunner", "adapt_to_device", "apply_data_config",
           "install_safe_checkpoint_loading", "outcome", "prepare_runner_config", "resume_checkpoint", "run_runner"]

log = logging.getLogger(__name__)
_RUNTIME_KEYS = ("work_dir", "launcher", "resume", "load_from", "env_cfg", "log_level", "visualizer")


def _safe_load_from_local(filename: str, map_location: Any = None) -> Any:
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"{filename} can not be found.")
    return load_checkpoint_file(filename, map_location=map_location or "cpu")


def install_safe_checkpoint_loading() -> None:
    """Route mmengine's local checkpoint loads through dropbench's weights-only loader (idempotent)."""
    CheckpointLoader.register_scheme(prefixes="", loader=_safe_load_from_local, force=True)


def prepare_runner_config(stage: str, job: Job) -> Config:
    """Resolve a det / seg recipe for ``job.model`` and set the run's checkpoint, work dir, launcher, seed, resume.

    The backbone loads ``job.checkpoint`` in its own ``init_weights`` (through the converter); ``resume='auto'``
    continues from the work dir's last checkpoint. The seed defaults to the recipe's ``randomness.seed`` (0 if none):
    mmengine would otherwise draw a random one.
    """
    model, config, work_dir = job.model, job.config, job.out
    setup_launcher(job.launcher)
    if job.resume not in (None, "auto"):
        raise ValueError(f"resume must be 'auto' (continue the run in the work dir) or omitted, got {job.resume!r}")
    if job.resume is None and _last_checkpoint(work_dir):
        raise FileExistsError(f"{work_dir} already holds a run; pass --resume auto to continue it, or choose a new "
                              f"--out")
    recipe, template = resolve_recipe(stage, config, model, checkpoint_model_args(job.checkpoint))
    # format_python_code=False: mmengine writes the config's text (config.py, the log, every checkpoint's meta) without
    # yapf, which takes 1.4 s a time for a Mask R-CNN config (about 8 times per run); the text is the same Python.
    # (Config.fromfile drops that argument for a config without lazy imports, so the Config is made again with it.)
    cfg = Config.fromfile(str(recipe))
    cfg = Config(cfg.to_dict(), cfg_text=cfg.text, filename=cfg.filename, format_python_code=False)
    if template is not None:  # a paper model's recipe for a timm architecture: its model-dependent values go
        cfg.model.backbone.model_name = model
        for part in ("neck", "decode_head"):
            if part in cfg.model and "in_channels" in cfg.model[part]:
                cfg.model[part].in_channels = None
        if "auxiliary_head" in cfg.model:
            cfg.model.auxiliary_head.in_channels = None
        log.info("recipe %r for %s: %s's (%s), with the model's own channels", config, model, template, recipe.name)
    if cfg.model.backbone.get("type") == "TimmPyramidBackbone":
        if cfg.model.backbone.get("model_name") is None:  # a model-independent recipe (smoke): --model decides
            cfg.model.backbone.model_name = model
        elif cfg.model.backbone.get("model_name") != model:
            raise ValueError(f"recipe {config!r} builds {cfg.model.backbone.get('model_name')}, not {model}")
        cfg.model.backbone.checkpoint = job.checkpoint or None
        cfg.model.backbone.use_ema = job.use_ema
    if job.cfg_options:
        cfg.merge_from_dict(job.cfg_options)
    randomness = dict(cfg.get("randomness", {}) or {})
    randomness["seed"] = job.seed if job.seed is not None else randomness.get("seed", 0)
    cfg.randomness = randomness
    cfg.work_dir = str(work_dir)
    cfg.launcher = job.launcher
    cfg.resume = job.resume == "auto"
    return cfg


def apply_data_config(cfg: Config, checkpoint: str | None) -> dict:
    """Normalise inputs as the checkpoint was pretrained: its ``pretrained_cfg`` mean / std (a timm hub folder) go into
    the model's data preprocessor (0-255 scale), else the recipe's stay. Returns what is in force, for
    ``result.json`` (``extra.data_config``), with the checkpoint's pretraining input size where it has one (the
    recipe's pipeline sets the fine-tuning sizes)."""
    from dropbench.finetune.convert import checkpoint_data_config

    given = checkpoint_data_config(checkpoint)
    pre = cfg.model.data_preprocessor
    if given.get("mean") and given.get("std"):
        pre.mean = [round(float(m) * 255, 4) for m in given["mean"]]
        pre.std = [round(float(v) * 255, 4) for v in given["std"]]
    record = {"mean": [round(float(m) / 255, 6) for m in pre.mean], "std": [round(float(v) / 255, 6) for v in pre.std],
              "source": "checkpoint pretrained_cfg" if given.get("mean") else "recipe"}
    if given.get("input_size"):
        record["pretrained_input_size"] = list(given["input_size"])
    return record


def adapt_to_device(cfg: Config) -> list[str]:
    """Make a GPU recipe runnable where no GPU is visible; returns what was changed (also logged).

    mmengine's ``AmpOptimWrapper`` asserts a GPU: it becomes a float32 ``OptimWrapper`` (same optimizer, loss scaling
    dropped); NCCL becomes gloo for distributed runs. With a GPU the config is left as it is, and mmcv's ops are run
    on it first (``benchmarks.doctor.check_mmcv_device``): a CPU-only mmcv raises ``StackError`` with the fixing
    command before any data is loaded.
    """
    changes: list[str] = []
    if torch.cuda.is_available():
        from dropbench.benchmarks.doctor import check_mmcv_device

        check_mmcv_device("cuda")
        return changes
    ow = cfg.get("optim_wrapper")
    if ow is not None and ow.get("type") == "AmpOptimWrapper":
        ow.type = "OptimWrapper"
        for key in ("loss_scale", "dtype", "use_fsdp"):
            ow.pop(key, None)
        changes.append("AmpOptimWrapper -> OptimWrapper (no GPU: float32 training)")
    dist = cfg.get("env_cfg", {}).get("dist_cfg", {})
    if dist.get("backend") == "nccl" and cfg.get("launcher", "none") != "none":
        dist.backend = "gloo"
        changes.append("dist backend nccl -> gloo (no GPU)")
    for change in changes:
        log.warning("no GPU visible: %s", change)
    return changes


class StrictRunner(Runner):
    """mmengine's Runner, except that resume and ``load_from`` checkpoints must fit the model exactly.

    mmengine loads them with ``strict=False`` and only logs a warning on missing or unexpected keys, so a work dir of
    another model would resume into a partly random network.
    """

    resumed_from: str | None = None  # the checkpoint a resumed run continued from (reported in result.json)

    def resume(self, filename: str, *args: Any, **kwargs: Any) -> None:
        self.resumed_from = str(filename)
        self.logger.info("resuming from %s", filename)
        super().resume(filename, *args, **kwargs)

    @staticmethod
    def build_dataloader(dataloader: Any, seed: int | None = None, diff_rank_seed: bool = False) -> Any:
        """mmengine's loader, whose workers leave stopping on SIGTERM / SIGINT to the run (``pretrain.stop``)."""
        loader = Runner.build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
        if isinstance(loader, torch.utils.data.DataLoader) and loader.num_workers > 0:
            loader.worker_init_fn = functools.partial(shield_worker, then=loader.worker_init_fn)
            if loader.multiprocessing_context is None:
                loader.multiprocessing_context = worker_context()
        return loader

    def _log_env(self, env_cfg: dict) -> None:
        """mmengine's, with the engine's console level (``DROPBENCH_ENGINE_CONSOLE``) in force first: the environment
        and the whole config (over 1,000 lines for Mask R-CNN) go to the run's log file, not to a suite's console."""
        _console_level(self)
        super()._log_env(env_cfg)

    def build_visualizer(self, visualizer: Any = None) -> Any:
        """mmengine's, except that a visualizer of an earlier Runner of this process with the same name is dropped.

        mmengine keeps one visualizer per name per process (``ManagerMixin``) and hands it back to every later Runner:
        the recipes name theirs ``visualizer`` (as mmdet's and mmseg's do), so a second run in the same process (a
        suite, the tests) wrote its ``vis_data`` into the first run's folder, and failed once that folder was gone.
        """
        from mmengine.visualization import Visualizer

        name = visualizer.get("name") if isinstance(visualizer, dict) else None
        stack = [Visualizer]
        while name and stack:
            cls = stack.pop()
            cls._instance_dict.pop(name, None)
            stack.extend(cls.__subclasses__())
        return super().build_visualizer(visualizer)

    def save_checkpoint(self, out_dir: str, filename: str, *args: Any, **kwargs: Any) -> None:
        """mmengine's save, made atomic (a temporary file renamed over the target: a kill mid-write leaves the older
        checkpoints and never a truncated one); a failed write (disk full) names the file."""
        path, tmp = Path(out_dir) / filename, f".{filename}.tmp"
        try:
            fault_point("mm-checkpoint:tmp-created")
            super().save_checkpoint(out_dir, tmp, *args, **kwargs)
            fault_point("mm-checkpoint:written")
            os.replace(Path(out_dir) / tmp, path)
            fault_point("mm-checkpoint:renamed")
        except BaseException as e:
            (Path(out_dir) / tmp).unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise write_error(path, e) from e
            raise

    def load_checkpoint(self, filename: str, map_location: Any = "cpu", strict: bool = True,
                        revise_keys: list | None = None) -> Any:
        return super().load_checkpoint(filename, map_location=map_location, strict=True,
                                        revise_keys=revise_keys if revise_keys is not None else [(r"^module.", "")])


class _ProgressBar(Hook):
    """A progress bar over training iterations on an interactive terminal (the engine's own logs may be quiet)."""

    priority = "VERY_LOW"

    def __init__(self) -> None:
        self.bar: Any = None

    def before_train(self, runner: Runner) -> None:
        import sys

        from tqdm import tqdm

        self.bar = tqdm(total=runner.max_iters, initial=runner.iter, desc=Path(runner.work_dir).name or "train",
                        unit="it", leave=False, dynamic_ncols=True, disable=not sys.stderr.isatty())

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def after_train(self, runner: Runner) -> None:
        if self.bar is not None:
            self.bar.close()


class _KeepUntilSaved(CheckpointHook):
    """mmengine's ``CheckpointHook``, except that the checkpoints beyond ``max_keep_ckpts`` are removed after the new
    one is saved: mmengine removes them first, so a run killed during the save (``max_keep_ckpts=1``) kept none."""

    def _save_checkpoint_with_step(self, runner: Runner, step: int, meta: dict) -> None:
        keep, self.max_keep_ckpts = self.max_keep_ckpts, -1
        try:
            super()._save_checkpoint_with_step(runner, step, meta)
        finally:
            self.max_keep_ckpts = keep
        if keep <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return
        # mmengine's keep_ckpt_ids is a deque of maxlen max_keep_ckpts: an append drops the oldest id silently, so
        # the stale ids are taken out first (their files are removed only now that the new one is on disk)
        stale = []
        while len(self.keep_ckpt_ids) >= keep:
            stale.append(self.keep_ckpt_ids.popleft())
        self.keep_ckpt_ids.append(step)
        if int(os.environ.get("RANK", "0")) == 0:
            for old in stale:
                (Path(self.out_dir) / self.filename_tmpl.format(old)).unlink(missing_ok=True)
        runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))


class DivergenceHook(Hook):
    """Stops training on a non-finite loss: ``FloatingPointError('diverged: loss is nan at iteration N')``.

    The check of mmdet's ``CheckInvalidLossHook`` (``torch.isfinite(outputs['loss'])`` every ``interval`` iterations),
    for detection and segmentation alike: mmdet's own hook fails with a bare ``assert`` (no message, stripped by
    ``python -O``) and mmseg 1.2.2 ships none. ``N`` counts iterations from 1, as mmengine's log lines do.
    """

    priority = "VERY_HIGH"  # before the checkpoint hook: a diverged iteration is never saved

    def __init__(self, interval: int = 1) -> None:
        self.interval = interval

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if not outputs or "loss" not in outputs or not self.every_n_train_iters(runner, self.interval):
            return
        loss = float(outputs["loss"].detach())
        if not math.isfinite(loss):
            raise FloatingPointError(f"diverged: loss is {loss} at iteration {runner.iter + 1}")


class StopOnSignalHook(Hook):
    """Stops training within an iteration of SIGTERM / SIGINT / SIGUSR1 (:mod:`pretrain.stop`), then resumes exactly.

    An iteration-based run saves a checkpoint of the iteration just finished (mmengine's ``IterBasedTrainLoop``
    resumes it, skipping the data already seen). An epoch-based run stops without one and resumes from its last
    epoch checkpoint: mmengine's ``EpochBasedTrainLoop`` restarts an epoch from its beginning, so a mid-epoch
    checkpoint would train extra iterations.
    """

    priority = "LOWEST"  # after the checkpoint hook has saved what it saves at this iteration

    def before_train(self, runner: Runner) -> None:
        self._stop(runner, "before training")

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        name = self._requested()
        if not name:
            return
        saved = "no checkpoint (epoch-based: resumes from the last epoch's)"
        hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        if hook is not None and not hook.by_epoch:
            done = runner.iter + 1
            if not (hook.every_n_train_iters(runner, hook.interval) or done == runner.max_iters):
                hook._save_checkpoint(runner)  # iter_<done>.pth and the work dir's last_checkpoint marker
            saved = f"checkpoint of iteration {done} saved"
        raise Preempted(f"stopped by {name} at iteration {runner.iter + 1}; {saved}; resume with --resume auto",
                        requested())

    def after_val_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self._stop(runner, "during evaluation")

    def _stop(self, runner: Runner, where: str) -> None:
        name = self._requested()
        if name:
            raise Preempted(f"stopped by {name} {where} (iteration {runner.iter})", requested())

    @staticmethod
    def _requested() -> str | None:
        """The stop request, agreed by every rank (each may have got the signal at another iteration)."""
        name = requested()
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return name
        device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
        votes = torch.tensor([1.0 if name else 0.0], device=device)
        torch.distributed.all_reduce(votes)
        return (name or "a signal to another rank") if votes.item() > 0 else None


class _LastValMetrics(Hook):
    """Keeps the metrics of the latest validation and the (epoch, iteration) it ran at."""

    priority = "LOWEST"

    def __init__(self) -> None:
        self.metrics: dict | None = None
        self.at: tuple[int, int] | None = None

    def after_val_epoch(self, runner: Runner, metrics: dict | None = None) -> None:
        self.metrics, self.at = dict(metrics or {}), (runner.epoch, runner.iter)


def _console_level(runner: Any) -> None:
    """``DROPBENCH_ENGINE_CONSOLE=WARNING`` keeps the engine's INFO lines (per-class tables, iteration logs) out of
    the console; its log file in the work dir still gets them all (the suite sets it)."""
    level = os.environ.get("DROPBENCH_ENGINE_CONSOLE")
    if not level:
        return
    for handler in runner.logger.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(level)


def _check_total_batch(cfg: Config, world_size: int) -> None:
    """Warn when the images per step differ from those the recipe's learning rate is set for."""
    scale = dict(cfg.get("auto_scale_lr") or {})
    base = scale.get("base_batch_size")
    total = world_size * int(cfg.train_dataloader.get("batch_size", 1))
    if base and total != base and not scale.get("enable"):
        log.warning("the recipe's learning rate is set for %d images per step; this run has %d (%d process(es)): "
                    "pass --cfg-options auto_scale_lr.enable=true to scale it linearly", base, total, world_size)


def _last_checkpoint(work_dir: str | os.PathLike) -> str | None:
    """The checkpoint mmengine's ``resume`` would continue from in ``work_dir`` (its ``last_checkpoint`` marker)."""
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line to stdout when there is none
        return find_latest_checkpoint(str(work_dir))


def resume_checkpoint(work_dir: str | os.PathLike) -> str | None:
    """The newest checkpoint of ``work_dir`` that loads: the ``last_checkpoint`` marker's, else ``epoch_N.pth`` /
    ``iter_N.pth``, newest first (None when there is none).

    A damaged one (truncated: the machine died while writing it; unreadable) is skipped with a warning naming it and
    why, and kept, renamed ``<name>.unreadable`` (never deleted).

    When checkpoints exist but none loads, the run starts afresh (a warning says so).
    """
    def number(p: Path) -> int:
        tail = p.stem.split("_", 1)[-1]
        return int(tail) if tail.isdigit() else -1

    work_dir = Path(work_dir)
    marker = _last_checkpoint(work_dir)
    saved = sorted([*work_dir.glob("epoch_*.pth"), *work_dir.glob("iter_*.pth")], key=number, reverse=True)
    candidates = ([Path(marker)] if marker else []) + [p for p in saved if not marker or p != Path(marker)]
    skipped = []
    for path in candidates:
        if not path.is_file():
            log.warning("last_checkpoint names %s, which does not exist; trying older checkpoints", path)
            continue
        try:
            load_checkpoint_file(path)
        except CheckpointError as e:
            aside = path.with_name(path.name + ".unreadable")
            os.replace(path, aside)
            log.warning("skipped checkpoint %s: %s; kept as %s", path, e, aside)
            skipped.append(str(path))
            continue
        if skipped:
            log.warning("resuming from %s, the newest checkpoint that loads", path)
        return str(path)
    if skipped:
        log.warning("no checkpoint in %s loads (damaged, kept as *.unreadable: %s): the run starts afresh", work_dir,
                    skipped)
    return None


@dataclass(frozen=True)
class RunnerRun:
    """What :func:`run_runner` returns.

    Attributes:
        metrics: the final weights' validation metrics under the engine's own names.
        runner: the trained Runner (its model, work dir, epoch and iteration).
        load_report: what the pretrained backbone loaded from its checkpoint (None: no dropbench backbone, or no
            checkpoint).
    """

    metrics: dict[str, float]
    runner: Any
    load_report: LoadReport | None


def _load_report(runner: Runner) -> LoadReport | None:
    """The load report of the model's :class:`TimmPyramidBackbone` (set by its ``init_weights``), if it has one."""
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    backbones = [m for m in model.modules() if isinstance(m, TimmPyramidBackbone)]
    return backbones[0].load_report if backbones else None


def run_runner(cfg: Config) -> RunnerRun:
    """Train with mmengine's Runner, then evaluate the final weights on the validation split.

    With ``cfg.resume`` the run continues from the work dir's ``last_checkpoint`` (it starts afresh if there is none).
    The train loop's own validation after the last epoch is reused; the validation loop runs again only when the
    final weights were not validated (e.g. a resumed run that had already finished training).
    """
    with stop_signals():
        install_safe_checkpoint_loading()
        Path(cfg.work_dir).mkdir(parents=True, exist_ok=True)
        if cfg.get("resume") and not cfg.get("load_from"):
            cfg.load_from = resume_checkpoint(cfg.work_dir)  # mmengine resumes from load_from when it is set
            cfg.resume = cfg.load_from is not None  # none loads: afresh (mmengine would follow a stale marker)
        dump_config(cfg, cfg.work_dir)
        runner = StrictRunner.from_cfg(cfg)
        for hook in runner.hooks:
            if type(hook) is CheckpointHook:
                hook.__class__ = _KeepUntilSaved
        _console_level(runner)
        _check_total_batch(cfg, runner.world_size)
        last_val = _LastValMetrics()
        runner.register_hook(last_val)
        runner.register_hook(_ProgressBar())
        runner.register_hook(DivergenceHook(int(cfg.get("divergence_check_interval", 1))))
        runner.register_hook(StopOnSignalHook())
        with deferred():
            runner.train()
        if last_val.metrics is not None and last_val.at == (runner.epoch, runner.iter):
            metrics = last_val.metrics
        else:
            metrics = runner.val_loop.run()
    # numbers.Real: mmseg's IoUMetric returns numpy.float32, which is no subclass of float
    return RunnerRun({k: float(v) for k, v in metrics.items() if isinstance(v, numbers.Real)}, runner,
                     _load_report(runner))


def hyperparameters(cfg: Config, world_size: int = 1) -> dict:
    """The settings a det / seg run trained with, flat, for ``result.json`` (``extra.hparams``): a row of a table can
    be traced to its recipe without the config file (the whole resolved config is in ``result.json`` too)."""
    ow, loader = cfg.optim_wrapper, cfg.train_dataloader
    train = cfg.train_cfg
    return {
        "optimizer": ow.optimizer.get("type"), "lr": ow.optimizer.get("lr"),
        "weight_decay": ow.optimizer.get("weight_decay"), "betas": list(ow.optimizer.get("betas") or []) or None,
        "layer_decay_constructor": ow.get("constructor"), "layer_decay": plain(ow.get("paramwise_cfg") or {}),
        "optim_wrapper": ow.get("type"), "clip_grad": plain(ow.get("clip_grad")),
        "drop_path": cfg.model.backbone.get("drop_path_rate"),
        "epochs": train.get("max_epochs"), "iterations": train.get("max_iters"),
        "batch_size_per_gpu": loader.get("batch_size"), "world_size": world_size,
        "total_batch": int(loader.get("batch_size")) * world_size,
        "param_scheduler": plain(cfg.get("param_scheduler")),
        "train_pipeline": [t.get("type") for t in loader.dataset.get("pipeline", [])],
        "seed": int(cfg.randomness.seed),
        "layer_decay_in_force": layer_decay_in_force(ow, cfg.model.backbone.model_name)
        if cfg.model.get("backbone", {}).get("model_name") else None,
    }


def outcome(cfg: Config, run: RunnerRun, metrics: dict[str, float], job: Job, extra: dict | None = None) -> Outcome:
    """The task outcome of an mmengine run (``metrics``: those the task reports, from ``run.metrics``)."""
    log_file = run.runner.logger.log_file
    checkpoint = job.checkpoint
    return Outcome(
        metrics=metrics, config=plain(cfg), config_hash=config_hash(cfg, exclude=_RUNTIME_KEYS),
        seed=int(cfg.randomness.seed), checkpoint=checkpoint, load_report=run.load_report,
        checkpoint_sha256=None if run.load_report or not checkpoint else checkpoint_sha256(checkpoint),
        log_path=str(log_file) if log_file else None,
        extra={"resumed_from": run.runner.resumed_from,
               "hparams": hyperparameters(cfg, int(getattr(run.runner, "world_size", 1) or 1)), **(extra or {})})
