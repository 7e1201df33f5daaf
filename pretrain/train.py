"""ImageNet pretraining with early / late / standard dropout or stochastic depth: the recipe, top to bottom.

    dropbench pretrain --config basic --model vit_tiny --data /imagenet --out runs/vit_tiny_early_do \
        --dropout 0.1 --drop-mode early --drop-schedule linear --cutoff-epoch 50

    torchrun --nproc_per_node 8 -m dropbench.benchmarks.cli pretrain --config basic ...   # DDP, same flags

``run`` is a straight line: data -> model -> drop schedule -> optimizer -> LR schedule -> resume -> epochs. Each epoch
appends one JSON line to ``log.jsonl``; checkpoints are ``checkpoint.pth`` (latest, possibly mid-epoch) and
``checkpoint-<epoch>.pth``, in the paper's layout (``model``, ``optimizer``, ``epoch``, ``scaler``, ...) plus
``iteration``, ``config`` and ``pretrain`` metadata, all loadable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from dropbench.pretrain.checkpoint import CheckpointError, atomic_save, load_checkpoint_file
from dropbench.pretrain.config import (
    CONFIG_ROOT,
    CfgOptions,
    config_hash,
    dump_config,
    load_config,
    plain,
    resolve_config,
)
from dropbench.pretrain.data import ResumableSampler, build_imagenet, build_transforms, eval_loader, train_loader
from dropbench.pretrain.distributed import all_reduce_sum, barrier, cleanup, init_distributed
from dropbench.pretrain.engine import DropControl, TrainContext, evaluate, train_one_epoch
from dropbench.pretrain.io import atomic_link, atomic_write
from dropbench.pretrain.models import PAPER_MODELS, check_model, create_model, model_family
from dropbench.pretrain.schedules import DROP_MODES, DROP_SCHEDULES, DropRateApplier, DropSpec
from dropbench.pretrain.stop import Preempted, deferred, requested, stop_signals
from mmengine.config import Config
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3

__all__ = [
    "RANDOM_INIT", "RANDOM_INIT_DROP", "Preempted", "build_config", "get_args_parser", "imagenet_datasets",
    "pretrain_metadata", "run", "variants", "write_random_init",
]

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pth"
# the variant name of the random-init reference row (:func:`write_random_init`; presets list it like a variant)
RANDOM_INIT = "random-init"
RANDOM_INIT_DROP = {"kind": "none", "rate": 0.0, "mode": "standard", "schedule": "constant", "cutoff_epoch": 0}
# Keys that may differ between a run and its resumption without changing what it computes.
_RESUME_FREE = ("runtime",)
AMP_CHOICES = ("fp32", "bf16", "fp16")
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(runtime: Any, device: torch.device) -> dict:
    """The numeric precision a run trains in, from ``runtime.amp`` / ``runtime.tf32`` and the device.

    ``amp``: None or ``fp32`` (float32, the paper recipes: the official main.py's ``--use_amp`` defaults to False),
    ``bf16`` or ``fp16`` (autocast; fp16 with a grad scaler). Legacy booleans read True as ``fp16``, False as None.
    Autocast applies on CUDA only; elsewhere the run is float32 (and says so). ``tf32`` (default True) allows TF32
    matmuls and convolutions on GPUs that have them, as torch 1.8, the paper's version, did by default.
    Returns ``{"amp": "fp32" | "bf16" | "fp16", "tf32": bool, "dtype": torch dtype or None}``.
    """
    amp = runtime.get("amp", None)
    amp = {True: "fp16", False: None}.get(amp, amp) if isinstance(amp, bool) else amp
    amp = amp or "fp32"
    if amp not in AMP_CHOICES:
        raise ValueError(f"runtime.amp must be one of {AMP_CHOICES} (or null), got {amp!r}; e.g. --amp bf16")
    if amp != "fp32" and device.type != "cuda":
        log.warning("runtime.amp=%s applies on CUDA only: training on %s in float32", amp, device.type)
        amp = "fp32"
    tf32 = bool(runtime.get("tf32", True)) and device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    return {"amp": amp, "tf32": tf32, "dtype": _AMP_DTYPES.get(amp)}


def variants() -> dict[str, dict]:
    """The paper's pretraining variants (drop settings), from ``configs/pretrain/_base_/variants.py``."""
    return Config.fromfile(str(CONFIG_ROOT / "pretrain" / "_base_" / "variants.py"))["variants"].to_dict()


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """Arguments of ``dropbench pretrain``: the official code's vocabulary (its underscore spellings work too)."""
    p = argparse.ArgumentParser("dropbench pretrain", add_help=add_help, description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="basic", help="basic | improved | smoke | a config file (configs/pretrain/)")
    p.add_argument("--model", help="vit_tiny | vit_base | swin_femto | convnext_femto | mixer_s32 | mixer_b16 "
                                   "(required unless a config file names it)")
    p.add_argument("--data", "--data_path", help="ImageNet-layout root (train/<class>/*, val/<class>/*)")
    p.add_argument("--out", "--output_dir", required=True, help="run directory (checkpoints, log.jsonl, config.py)")
    p.add_argument("--epochs", type=int, help="0 writes the random-init reference: the model untrained, evaluated once")
    p.add_argument("--warmup-epochs", "--warmup_epochs", type=int)
    p.add_argument("--batch-size", "--batch_size", type=int, help="per-process batch size")
    p.add_argument("--update-freq", "--update_freq", type=int, help="gradient accumulation steps")
    p.add_argument("--lr", type=float, help="learning rate at the recipe's reference batch (optim.lr_batch_size)")
    p.add_argument("--variant", help=f"a paper variant: {', '.join(variants())} (sets the drop flags below)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--dropout", type=float, help="dropout rate (peak of the schedule)")
    g.add_argument("--drop-path", "--drop_path", type=float, help="stochastic-depth rate (peak of the schedule)")
    p.add_argument("--drop-mode", "--drop_mode", choices=DROP_MODES)
    p.add_argument("--drop-schedule", "--drop_schedule", choices=DROP_SCHEDULES)
    p.add_argument("--cutoff-epoch", "--cutoff_epoch", type=int,
                   help="epoch where early dropout ends / late dropout starts")
    p.add_argument("--resume", help="'auto' (latest checkpoint in --out, if any) or a checkpoint path")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--num-workers", "--num_workers", type=int)
    p.add_argument("--amp", choices=AMP_CHOICES,
                   help="mixed precision on GPUs (bf16, or fp16 with a grad scaler), or fp32; the paper recipes train "
                        "in float32 as the official main.py does without --use_amp (runtime.amp; recorded)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (runtime.compile=true)")
    p.add_argument("--cfg-options", nargs="+", action=CfgOptions, default={}, metavar="KEY=VALUE",
                   help="override any config key, e.g. optim.weight_decay=0.1 data.input_size=192")
    return p


def build_config(args: argparse.Namespace, drop_settings: Mapping[str, Any] | None = None) -> Config:
    """The recipe named by ``--config`` with the command line applied on top.

    Args:
        args: parsed :func:`get_args_parser` arguments.
        drop_settings: drop settings applied last, over the flags and ``--cfg-options`` (a suite run's variant entry).
    """
    cfg = load_config(resolve_config("pretrain", args.config))
    drop: dict[str, Any] = {}
    if args.variant:
        table = variants()
        if args.variant not in table:
            raise ValueError(f"unknown variant {args.variant!r}; choose one of: {', '.join(table)}")
        drop.update(table[args.variant])
    if args.dropout is not None:
        drop.update(kind="dropout" if args.dropout > 0 else "none", rate=args.dropout)
    if args.drop_path is not None:
        drop.update(kind="drop_path" if args.drop_path > 0 else "none", rate=args.drop_path)
    for key, value in (("mode", args.drop_mode), ("schedule", args.drop_schedule), ("cutoff_epoch", args.cutoff_epoch)):
        if value is not None:
            drop[key] = value
    overrides = {
        "model.name": args.model,
        "data.root": args.data,
        "data.batch_size": args.batch_size,
        "data.update_freq": args.update_freq,
        "data.num_workers": args.num_workers,
        "schedule.epochs": args.epochs,
        "schedule.warmup_epochs": args.warmup_epochs,
        "optim.lr": args.lr,
        "runtime.seed": args.seed,
        "runtime.device": args.device,
        "runtime.amp": getattr(args, "amp", None),
        **{f"drop.{k}": v for k, v in drop.items()},
    }
    if args.no_progress:
        overrides["runtime.progress"] = False
    if getattr(args, "compile", False):
        overrides["runtime.compile"] = True
    overrides = {k: v for k, v in overrides.items() if v is not None}  # flags not given
    overrides.update(args.cfg_options or {})  # explicit values, null included
    overrides.update({f"drop.{k}": v for k, v in (drop_settings or {}).items()})
    cfg.merge_from_dict(overrides)
    check_config(cfg)
    return cfg


def check_config(cfg: Config) -> None:
    """Refuse settings the paper's method does not define, naming the bad value and the fix."""
    if not cfg.model.name:
        raise ValueError("no model: give --model (one of vit_tiny, vit_base, swin_femto, convnext_femto, mixer_s32, "
                         "mixer_b16)")
    spec = PAPER_MODELS.get(check_model(cfg.model.name))  # any timm architecture fine-tunes; None: not a paper model
    drop = DropSpec.from_config(cfg.drop)  # validates, raises
    if drop.kind == "dropout" and spec is not None and not spec.supports_dropout:
        raise ValueError(f"{spec.name} has no dropout (as in the paper's code); use --drop-path instead")
    if spec is None and (drop.kind == "dropout" or drop.scheduled):
        raise ValueError(f"{cfg.model.name} is not a paper model: dropout and drop schedules are the paper models' "
                         f"({', '.join(PAPER_MODELS)}); use a fixed drop path (drop.kind='drop_path', mode 'standard')")
    if int(cfg.schedule.epochs) == 0 and drop.kind != "none":
        raise ValueError("--epochs 0 writes the random-init reference, which trains nothing and has no drop schedule: "
                         "leave out --dropout / --drop-path / --variant")
    drop.check(cfg.schedule.epochs)
    if cfg.data.root is None:
        raise ValueError("no data root: give --data (an ImageNet-layout folder; `dropbench data synth-imagenet` "
                         "makes a small generated one)")
    for key in ("batch_size", "update_freq"):
        if int(cfg.data[key]) < 1:
            raise ValueError(f"data.{key} must be >= 1, got {cfg.data[key]}")


def pretrain_metadata(cfg: Config) -> dict:
    """What a checkpoint records about how it was pretrained (read back by the fine-tuning tasks and tables)."""
    return {
        "model": cfg.model.name,
        **DropSpec.from_config(cfg.drop).metadata(),
        "epochs": int(cfg.schedule.epochs),
        "recipe": Path(cfg.filename).stem if cfg.filename else None,  # basic / improved / smoke / a file's name
        "config_hash": config_hash(cfg, exclude=_RESUME_FREE),
        # the architecture's reconstruction arguments (e.g. a reduced depth): fine-tuning rebuilds the model with them
        **({"model_args": dict(cfg.model.kwargs)} if cfg.model.get("kwargs") else {}),
    }


def _build_model(cfg: Config, num_classes: int, drop: DropSpec) -> nn.Module:
    return create_model(
        cfg.model.name,
        num_classes=num_classes,
        **drop.model_kwargs(),
        img_size=cfg.model.img_size or cfg.data.input_size,
        **dict(cfg.model.get("kwargs") or {}),  # a timm checkpoint's reconstruction arguments (finetune.cls)
    )


def loop_options(cfg: Config, device: torch.device) -> dict:
    """The loop's speed options in force (``runtime.channels_last``, ``fused_optimizer``, ``compile``, ``sync_every``).

    ``auto`` turns channels-last on for the convolutional models (ConvNeXt) on CUDA and the fused AdamW/Adam kernel
    on CUDA; none of them changes what is computed beyond floating-point rounding, and none is used on CPU unless set
    to true (which the recorded ``loop`` entry of ``result.json`` then says).
    """
    r = cfg.runtime
    cuda = device.type == "cuda"

    def choose(key: str, auto: bool) -> bool:
        value = r.get(key, "auto")
        if value == "auto":
            return auto
        if not isinstance(value, bool):
            raise ValueError(f"runtime.{key} must be true, false or 'auto', got {value!r}")
        return value

    compile_ = r.get("compile", False)
    if not isinstance(compile_, (bool, str)):
        raise ValueError(f"runtime.compile must be false, true or a torch.compile backend name, got {compile_!r}")
    fused = choose("fused_optimizer", cuda) and str(cfg.optim.opt).lower() in ("adamw", "adam")
    return {"channels_last": choose("channels_last", cuda and model_family(cfg.model.name) == "convnext"),
            "fused_optimizer": fused, "compile": compile_, "sync_every": int(r.get("sync_every", 50))}


def _find_resume(resume: str | None, out_dir: Path) -> Path | None:
    if not resume:
        return None
    if resume == "auto":
        candidates = _checkpoints(out_dir)
        return candidates[0] if candidates else None
    path = Path(resume)
    if not path.is_file():
        raise CheckpointError(f"--resume {resume}: no such checkpoint file")
    return path


def _checkpoints(out_dir: Path) -> list[Path]:
    """The run's checkpoints, newest first: ``checkpoint.pth`` (latest), then ``checkpoint-<epoch>.pth``."""
    def epoch(p: Path) -> int:
        tail = p.stem.split("-", 1)[1]
        return int(tail) if tail.isdigit() else -1

    latest = out_dir / CHECKPOINT
    return ([latest] if latest.is_file() else []) + sorted(out_dir.glob("checkpoint-*.pth"), key=epoch, reverse=True)


def _load_resume(path: Path, out_dir: Path, auto: bool, is_main: bool = True) -> tuple[Path | None, dict | None]:
    """Load the resume checkpoint; with ``auto``, fall back to the newest one that loads when newer ones are damaged,
    and start afresh (None, None) when none does.

    A damaged checkpoint (truncated: the machine died while writing it; unreadable) is logged with the reason and
    kept, renamed ``<name>.unreadable`` so that the next save does not overwrite it; nothing is deleted. The one
    resumed from becomes ``checkpoint.pth`` again (the run's latest, which fine-tuning runs read).
    """
    if not auto:
        return path, load_checkpoint_file(path)
    for candidate in _checkpoints(out_dir):
        try:
            ckpt = load_checkpoint_file(candidate)
        except CheckpointError as e:
            if is_main:
                aside = candidate.with_name(candidate.name + ".unreadable")
                os.replace(candidate, aside)
                log.warning("skipped checkpoint %s: %s; kept as %s", candidate, e, aside)
            continue
        if is_main and candidate != out_dir / CHECKPOINT:
            atomic_link(candidate, out_dir / CHECKPOINT)
        return candidate, ckpt
    log.warning("no checkpoint in %s loads: the run starts afresh", out_dir)
    return None, None


def imagenet_datasets(cfg: Config, train_tf: Callable, eval_tf: Callable, seed: int) -> tuple[Any, Any, int]:
    """The default data of :func:`run`: the ImageNet-layout folder at ``cfg.data.root``."""
    train_set, val_set = build_imagenet(cfg.data.root, train_tf, eval_tf, seed)
    return train_set, val_set, len(train_set.base.classes)


def write_random_init(cfg: Config, out_dir: str | os.PathLike,
                      datasets: Callable[[Config, Callable, Callable, int], tuple[Any, Any, int]] = imagenet_datasets
                      ) -> dict:
    """The random-init reference of a transfer table: the recipe's model as built (seed ``runtime.seed``), untrained.

    Written as ``checkpoint.pth`` in the pretraining layout (``model``, ``pretrain`` with ``init: random`` and 0
    epochs), so every downstream task fine-tunes it exactly as it fine-tunes a pretrained checkpoint: its rows show
    what a recipe reaches without pretraining. Its validation top-1 / top-5 (chance level) are measured once, so the
    pretraining table has the row too. Returns a summary like :func:`run`'s.
    """
    t_start, out_dir = time.time(), Path(out_dir)
    drop = DropSpec.from_config(cfg.drop)
    if drop.kind != "none":
        raise ValueError(f"a random-init checkpoint has no drop schedule; got drop.kind {drop.kind!r}")
    if cfg.data.root is None:
        raise ValueError("no data root: give --data (an ImageNet-layout folder)")
    dist = init_distributed(cfg.runtime.device)
    seed = int(cfg.runtime.seed)
    torch.manual_seed(seed)
    _, eval_tf = build_transforms(cfg.data, cfg.augment)
    _, val_set, found_classes = datasets(cfg, eval_tf, eval_tf, seed)
    num_classes = int(cfg.model.num_classes or found_classes)
    torch.manual_seed(seed)
    model = _build_model(cfg, num_classes, drop)
    meta = {**pretrain_metadata(cfg), "epochs": 0, "init": "random"}
    ev = evaluate(model.to(dist.device), eval_loader(val_set, int(cfg.data.eval_batch_size), dist.rank,
                                                      dist.world_size, int(cfg.data.num_workers)), dist.device,
                  keep_samples=True)
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out_dir)
        atomic_save({"model": model.cpu().state_dict(), "epoch": -1, "iteration": 0, "config": plain(cfg),
                     "pretrain": meta, "num_classes": num_classes}, out_dir / CHECKPOINT)
        _write_log(out_dir, [{"epoch": -1, "val_top1": ev["top1"], "val_top5": ev["top5"], "val_loss": ev["loss"]}])
        log.info("random init of %s (seed %d, val top-1 %.2f): %s", cfg.model.name, seed, ev["top1"],
                 out_dir / CHECKPOINT)
    barrier()
    cleanup()
    return {"checkpoint": str(out_dir / CHECKPOINT), "top1": ev["top1"], "top5": ev["top5"], "train_loss": None,
            "epochs": 0, "num_classes": num_classes, "pretrain": meta, "samples": ev.get("samples"),
            "wall_time_s": time.time() - t_start,
            "world_size": dist.world_size, "precision": None, "loop": None}


def run(
    cfg: Config,
    out_dir: str | os.PathLike,
    resume: str | None = None,
    datasets: Callable[[Config, Callable, Callable, int], tuple[Any, Any, int]] = imagenet_datasets,
    prepare_model: Callable[[nn.Module], dict] | None = None,
) -> dict:
    """Train as ``cfg`` says, into ``out_dir``; returns a summary (final val top-1/top-5, checkpoint, time).

    Pretraining uses it as is; classification fine-tuning passes its own data and weight loading.

    Args:
        cfg: a resolved training config (see ``configs/pretrain/basic.py``).
        out_dir: run directory.
        resume: ``auto``, a checkpoint path, or None to start afresh (an existing run directory is then refused).
        datasets: ``(cfg, train_transform, eval_transform, seed) -> (train set, val set, num_classes)``; the sets
            are :class:`~pretrain.data.SeededDataset` (ImageNet folders by default).
        prepare_model: called with the freshly built model before training (e.g. to load pretrained weights); its
            returned dict is kept in the summary as ``init``, and its ``pretrain`` entry, if any, replaces the
            metadata recorded in checkpoints.
    """
    with stop_signals():  # SIGTERM / SIGINT / SIGUSR1: a checkpoint at the next step, then Preempted
        return _run(cfg, out_dir, resume, datasets, prepare_model)


def _run(cfg: Config, out_dir: str | os.PathLike, resume: str | None, datasets: Callable, prepare_model: Callable | None
         ) -> dict:
    t_start = time.time()
    out_dir = Path(out_dir)
    check_config(cfg)
    dist = init_distributed(cfg.runtime.device)
    progress = bool(cfg.runtime.progress) and dist.is_main and sys.stderr.isatty()
    seed = int(cfg.runtime.seed)
    resume_path = _find_resume(resume, out_dir)
    if resume_path is None and (out_dir / CHECKPOINT).exists():
        raise FileExistsError(f"{out_dir} already holds a run; pass --resume auto to continue it or choose a new --out")

    # data (checked before the run directory is made: a wrong --data leaves nothing behind)
    torch.manual_seed(seed)
    train_tf, eval_tf = build_transforms(cfg.data, cfg.augment)
    train_set, val_set, found_classes = datasets(cfg, train_tf, eval_tf, seed)
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out_dir)
    num_classes = cfg.model.num_classes or found_classes
    batch, update_freq = int(cfg.data.batch_size), int(cfg.data.update_freq)
    total_batch = batch * update_freq * dist.world_size
    iters_per_epoch = len(train_set) // total_batch
    if iters_per_epoch < 1:
        raise ValueError(f"{len(train_set)} training images are fewer than one total batch of {total_batch} "
                         f"(batch_size x update_freq x world_size); lower --batch-size")
    # runtime.max_iters_per_epoch (not in the recipes; rehearsals set it): an epoch ends after that many iterations,
    # and the schedules (learning rate, drop rates) count that length
    iters_per_epoch = min(iters_per_epoch, int(cfg.runtime.get("max_iters_per_epoch") or iters_per_epoch))
    sampler = ResumableSampler(len(train_set), batch, dist.rank, dist.world_size, seed=seed)
    loader = train_loader(train_set, sampler, int(cfg.data.num_workers), bool(cfg.data.pin_memory) and
                          dist.device.type == "cuda")
    val_loader = eval_loader(val_set, int(cfg.data.eval_batch_size), dist.rank, dist.world_size,
                             int(cfg.data.num_workers))

    # model and drop schedule
    drop_spec = DropSpec.from_config(cfg.drop)
    model = _build_model(cfg, num_classes, drop_spec)
    init = prepare_model(model) if prepare_model is not None else {}
    loop = loop_options(cfg, dist.device)
    model = model.to(dist.device)
    if loop["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    epochs = int(cfg.schedule.epochs)
    drop = None  # standard mode: the rates fixed at build time are the rates in force, nothing to schedule
    if drop_spec.scheduled:
        drop = DropControl(drop_spec.rates(epochs, iters_per_epoch),
                           DropRateApplier(model, drop_spec.kind, drop_spec.rate))
    ema = ModelEmaV3(model, decay=float(cfg.ema.decay)) if cfg.ema.enabled else None
    model_ddp = model
    if dist.distributed:
        model_ddp = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None)
    if loop["compile"]:
        if drop is not None:
            log.warning("torch.compile with a scheduled drop rate: each new rate may recompile the model")
        backend = loop["compile"] if isinstance(loop["compile"], str) else "inductor"
        model_ddp = torch.compile(model_ddp, backend=backend)

    # optimizer, LR schedule, loss
    o = cfg.optim
    lr = float(o.lr) * total_batch / float(o.lr_batch_size)
    opt_kwargs = {k: v for k, v in (("eps", o.opt_eps), ("betas", o.opt_betas)) if v is not None}
    if loop["fused_optimizer"]:
        opt_kwargs["fused"] = True  # one kernel per step, and no host sync in GradScaler.step
    optimizer = create_optimizer_v2(model, opt=o.opt, lr=lr, weight_decay=float(o.weight_decay),
                                    layer_decay=o.layer_decay, **opt_kwargs)
    warmup = int(cfg.schedule.warmup_epochs) * iters_per_epoch
    lr_scheduler = CosineLRScheduler(optimizer, t_initial=max(epochs * iters_per_epoch - warmup, 1),
                                     lr_min=float(cfg.schedule.min_lr), warmup_t=warmup,
                                     warmup_lr_init=float(cfg.schedule.warmup_lr), warmup_prefix=True,
                                     t_in_epochs=False)
    a = cfg.augment
    mixup = None
    if a.mixup > 0 or a.cutmix > 0 or a.cutmix_minmax is not None:
        mixup = Mixup(mixup_alpha=a.mixup, cutmix_alpha=a.cutmix, cutmix_minmax=a.cutmix_minmax, prob=a.mixup_prob,
                      switch_prob=a.mixup_switch_prob, mode=a.mixup_mode, label_smoothing=a.smoothing,
                      num_classes=num_classes)
        criterion: nn.Module = SoftTargetCrossEntropy()
    elif a.smoothing > 0:
        criterion = LabelSmoothingCrossEntropy(smoothing=a.smoothing)
    else:
        criterion = nn.CrossEntropyLoss()
    precision = resolve_precision(cfg.runtime, dist.device)
    scaler = torch.amp.GradScaler("cuda") if precision["amp"] == "fp16" else None
    recorded_precision = {"amp": precision["amp"], "tf32": precision["tf32"]}

    # resume
    start_iter, records, meters = 0, [], None
    run_hash = config_hash(cfg, exclude=_RESUME_FREE)
    if resume_path is not None:
        resume_path, ckpt = _load_resume(resume_path, out_dir, resume == "auto", dist.is_main)
    if resume_path is not None:
        if ckpt.get("config_hash") != run_hash:
            raise CheckpointError(f"{resume_path} was written by a different config (hash {ckpt.get('config_hash')}, "
                                  f"this run {run_hash}); resume with the same recipe and flags, or a new --out")
        if ckpt.get("precision", recorded_precision) != recorded_precision:
            raise CheckpointError(f"{resume_path} was trained with precision {ckpt['precision']}, this run would use "
                                  f"{recorded_precision}; resume with the same --amp (runtime.amp / runtime.tf32)")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        if ema is not None and ckpt.get("model_ema"):
            ema.module.load_state_dict(ckpt["model_ema"])
        start_iter, records, meters = int(ckpt["iteration"]), list(ckpt["log"]), ckpt.get("meters")
        log.info("resumed %s at iteration %d (epoch %d)", resume_path, start_iter, start_iter // iters_per_epoch)
    if dist.is_main:
        _write_log(out_dir, records)

    ctx = TrainContext(model=model_ddp, criterion=criterion, optimizer=optimizer, device=dist.device,
                       iters_per_epoch=iters_per_epoch, update_freq=update_freq, lr_scheduler=lr_scheduler,
                       drop=drop, mixup=mixup, scaler=scaler, amp_dtype=precision["dtype"],
                       clip_grad=o.clip_grad, ema=ema, seed=seed, rank=dist.rank, progress=progress,
                       fixed_rates=drop_spec.fixed_rates(), sync_every=loop["sync_every"],
                       channels_last=loop["channels_last"])
    meta = init.get("pretrain") or {**pretrain_metadata(cfg), "precision": recorded_precision}
    per_class = num_classes if cfg.runtime.get("per_class_accuracy") else None

    def save(path: Path, epoch: int, iteration: int, epoch_meters: dict | None) -> None:
        if not dist.is_main:
            return
        atomic_save({
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "lr_scheduler": lr_scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "model_ema": ema.module.state_dict() if ema is not None else None,
            "epoch": epoch,
            "iteration": iteration,
            "meters": epoch_meters,
            "log": records,
            "config": plain(cfg),
            "config_hash": run_hash,
            "pretrain": meta,
            "num_classes": num_classes,
            "precision": recorded_precision,
        }, path)

    def stop_now(it: int | None = None) -> str | None:
        """The stop request, agreed by every rank (each may have got the signal at another step); under DDP it is
        compared every ``sync_every`` steps (and at epoch ends: ``it`` None), not to sync the host every step."""
        name = requested()
        if not dist.distributed:
            return name
        if it is not None and it % max(int(ctx.sync_every), 1):
            return None
        votes = all_reduce_sum(torch.tensor([1.0 if name else 0.0], device=dist.device))
        return (name or "a signal to another rank") if votes.item() > 0 else None

    def on_step(it: int, step_in_epoch: int, read_meters: Callable[[], dict]) -> None:
        every = int(cfg.runtime.save_every_iters)
        mid_epoch = step_in_epoch < iters_per_epoch  # at an epoch's end the epoch's own checkpoint comes first
        # runtime.stop_at_iter (not in the recipes; rehearsals set it): stop there once, as SIGTERM would; at an
        # epoch's last step the epoch finishes first (evaluation, record, epoch checkpoint): a checkpoint taken there
        # would resume past the epoch's end and never evaluate or record it
        planned = it == int(cfg.runtime.get("stop_at_iter") or -1)
        if planned and not mid_epoch:
            stop_after_epoch.append(it)
            return
        preempted = (stop_now(it) if mid_epoch else None) or ("runtime.stop_at_iter" if planned else None)
        if (every and it % every == 0 and mid_epoch) or preempted:
            save(out_dir / CHECKPOINT, it // iters_per_epoch, it, read_meters())
        if preempted:
            barrier()
            raise Preempted(f"stopped by {preempted} at iteration {it}; checkpoint saved, resume with --resume auto",
                            requested())

    log.info("training %s (%s) for %d epochs x %d iterations, total batch %d, lr %.2e",
             cfg.model.name, drop_spec.describe(), epochs, iters_per_epoch, total_batch, lr)
    first_epoch, first_step = divmod(start_iter, iters_per_epoch)
    stop_after_epoch: list[int] = []  # runtime.stop_at_iter at an epoch's last step waits for the epoch's end
    samples = None
    with deferred():
        for epoch in range(first_epoch, epochs):
            start_step = first_step if epoch == first_epoch else 0
            sampler.set_epoch(epoch, start_step * update_freq)
            t_epoch = time.time()
            stats = train_one_epoch(ctx, loader, epoch, start_step, meters if start_step else None, on_step)
            meters = None
            seen = all_reduce_sum(torch.tensor([float(stats["samples"])], device=dist.device))
            record = {"epoch": epoch, "iteration": stats["iteration"], "train_loss": stats["train_loss"],
                      "lr": stats["lr"], "dropout": stats["dropout"], "drop_path": stats["drop_path"],
                      "images_per_sec": stats["images_per_sec"] * dist.world_size, "samples": int(seen.item()),
                      "data_wait_share": stats["data_wait_s"] / max(time.time() - t_epoch, 1e-9)}
            last = epoch == epochs - 1
            if last or (epoch + 1) % int(cfg.runtime.eval_every) == 0:
                ev = evaluate(model_ddp, val_loader, dist.device, ctx.amp_dtype, num_classes=per_class,
                              keep_samples=last)
                samples = ev.get("samples")  # the last epoch's: per test sample label + top-5
                record.update(val_top1=ev["top1"], val_top5=ev["top5"], val_loss=ev["loss"])
                if per_class:
                    record["val_per_class_top1"] = ev["per_class_top1"]
                if ema is not None:
                    ev = evaluate(ema.module, val_loader, dist.device, ctx.amp_dtype)
                    record.update(val_ema_top1=ev["top1"], val_ema_top5=ev["top5"])
            record["epoch_time"] = time.time() - t_epoch
            records.append(record)
            save(out_dir / CHECKPOINT, epoch, stats["iteration"], None)
            if dist.is_main:
                atomic_link(out_dir / CHECKPOINT, out_dir / f"checkpoint-{epoch}.pth")
                _prune(out_dir, epoch, int(cfg.runtime.keep_checkpoints), epochs)
                _write_log(out_dir, records)
                log.info("epoch %d: %s", epoch, _fmt(record))
            barrier()
            preempted = stop_now() or ("runtime.stop_at_iter" if stop_after_epoch else None)
            if preempted and epoch < epochs - 1:
                raise Preempted(f"stopped by {preempted} after epoch {epoch}; checkpoint saved, resume with --resume "
                                f"auto", requested())
    final = records[-1] if records else {}
    summary = {
        "checkpoint": str(out_dir / CHECKPOINT),
        "top1": final.get("val_top1"),
        "top5": final.get("val_top5"),
        "train_loss": final.get("train_loss"),
        "epochs": epochs,
        "num_classes": num_classes,
        "pretrain": meta,
        "init": init,
        "per_class_top1": final.get("val_per_class_top1"),
        "samples": samples,
        "wall_time_s": time.time() - t_start,
        "world_size": dist.world_size,
        "precision": recorded_precision,
        "loop": loop,
    }
    cleanup()
    return summary


def _prune(out_dir: Path, epoch: int, keep: int, epochs: int) -> None:
    old = epoch - keep
    if keep > 0 and old >= 0 and old != epochs - 1:
        (out_dir / f"checkpoint-{old}.pth").unlink(missing_ok=True)


def _write_log(out_dir: Path, records: list[dict]) -> None:
    atomic_write(out_dir / "log.jsonl", "".join(json.dumps(r) + "\n" for r in records))


def _fmt(record: dict) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items())
