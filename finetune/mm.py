"""What the mmdet and mmseg fine-tuning paths share around mmengine's Runner.

* :func:`install_safe_checkpoint_loading`: mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; under
  torch >= 2.6 that refuses the paper's checkpoints and mmengine's own resume files. Local loads are re-routed to
  :func:`pretrain.checkpoint.load_checkpoint_file` (weights-only, a short allow-list of plain types), so resume works
  and a checkpoint that needs code to load is still refused.
* :func:`prepare_runner_config`: one recipe (``configs/det`` or ``configs/seg``) + a :class:`finetune.tasks.Job`
  (checkpoint, run folder, launcher, seed, overrides) -> the resolved mmengine Config.
* :func:`adapt_to_device`: what a recipe written for GPUs needs on a machine without one (AMP off, gloo not NCCL).
* :func:`run_runner`: build the Runner, train (resuming from the work dir's last checkpoint when asked), evaluate
  the final weights, return the metrics and the backbone's load report; :func:`outcome` packs them into the task's
  :class:`finetune.tasks.Outcome`. The Runner loads
  resume / ``load_from`` checkpoints strictly (mmengine only warns on a mismatch), and the pretrained backbone is
  loaded once per run by the backbone's own ``init_weights`` (which raises on a misfit).
"""

from __future__ import annotations

import contextlib
import io
import logging
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from dropbench.finetune.backbone import TimmPyramidBackbone
from dropbench.finetune.convert import LoadReport, file_sha256
from dropbench.finetune.tasks import Job, Outcome
from dropbench.pretrain.checkpoint import load_checkpoint_file
from dropbench.pretrain.config import config_hash, dump_config, plain, resolve_config
from dropbench.pretrain.distributed import setup_launcher
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner, find_latest_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = ["RunnerRun", "StrictRunner", "adapt_to_device", "install_safe_checkpoint_loading", "outcome",
           "prepare_runner_config", "run_runner"]

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
    cfg = Config.fromfile(str(resolve_config(stage, config, model)))
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


def adapt_to_device(cfg: Config) -> list[str]:
    """Make a GPU recipe runnable where no GPU is visible; returns what was changed (also logged).

    mmengine's ``AmpOptimWrapper`` asserts a GPU: it becomes a float32 ``OptimWrapper`` (same optimizer, loss scaling
    dropped); NCCL becomes gloo for distributed runs. With a GPU the config is left as it is.
    """
    changes: list[str] = []
    if torch.cuda.is_available():
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
    install_safe_checkpoint_loading()
    Path(cfg.work_dir).mkdir(parents=True, exist_ok=True)
    dump_config(cfg, cfg.work_dir)
    runner = StrictRunner.from_cfg(cfg)
    _console_level(runner)
    _check_total_batch(cfg, runner.world_size)
    last_val = _LastValMetrics()
    runner.register_hook(last_val)
    runner.register_hook(_ProgressBar())
    runner.train()
    if last_val.metrics is not None and last_val.at == (runner.epoch, runner.iter):
        metrics = last_val.metrics
    else:
        metrics = runner.val_loop.run()
    # numbers.Real: mmseg's IoUMetric returns numpy.float32, which is no subclass of float
    return RunnerRun({k: float(v) for k, v in metrics.items() if isinstance(v, numbers.Real)}, runner,
                     _load_report(runner))


def outcome(cfg: Config, run: RunnerRun, metrics: dict[str, float], job: Job, extra: dict | None = None) -> Outcome:
    """The task outcome of an mmengine run (``metrics``: those the task reports, from ``run.metrics``)."""
    log_file = run.runner.logger.log_file
    checkpoint = job.checkpoint
    return Outcome(
        metrics=metrics, config=plain(cfg), config_hash=config_hash(cfg, exclude=_RUNTIME_KEYS),
        seed=int(cfg.randomness.seed), checkpoint=checkpoint, load_report=run.load_report,
        checkpoint_sha256=None if run.load_report or not checkpoint else file_sha256(checkpoint),
        log_path=str(log_file) if log_file else None,
        extra={"resumed_from": run.runner.resumed_from, **(extra or {})})
