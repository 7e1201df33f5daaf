"""The one training loop: ``train_one_epoch`` and ``evaluate``, shared by pretraining and classification fine-tuning.

No argparse, no globals: everything a step needs sits in a :class:`TrainContext`. Learning rate and drop rate are
set from their schedules at every optimizer iteration (global index ``it``), exactly as the paper's code does; the
drop schedule is optional (fine-tuning uses fixed rates). Randomness (dropout masks, Mixup) is reseeded from
(seed, rank, micro-step) so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
from dropbench.pretrain.distributed import all_reduce_sum
from dropbench.pretrain.schedules import DropRateApplier
from timm.data import Mixup
from timm.utils import ModelEmaV3
from tqdm import tqdm

__all__ = ["DropControl", "TrainContext", "evaluate", "train_one_epoch"]


@dataclass
class DropControl:
    """A drop schedule (one rate per optimizer iteration) and the applier that writes it into the model."""

    rates: np.ndarray
    applier: DropRateApplier

    @property
    def kind(self) -> str:
        return self.applier.kind


@dataclass
class TrainContext:
    """What a training step needs. ``model`` may be DDP-wrapped; ``drop`` is None for fixed drop rates."""

    model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    iters_per_epoch: int
    update_freq: int = 1
    lr_scheduler: object | None = None  # a timm scheduler: step_update(num_updates)
    drop: DropControl | None = None
    mixup: Mixup | None = None
    scaler: torch.amp.GradScaler | None = None
    amp_dtype: torch.dtype | None = None
    clip_grad: float | None = None
    ema: ModelEmaV3 | None = None
    seed: int = 0
    rank: int = 0
    progress: bool = True
    fixed_rates: dict[str, float] = field(default_factory=dict)  # rates in force when no schedule runs (for logs)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _reseed(seed: int, rank: int, micro_step: int) -> None:
    s = ((seed * 1_000_003 + rank) * 10_000_019 + micro_step) % 2**63
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)


def train_one_epoch(
    ctx: TrainContext,
    loader: Iterable,
    epoch: int,
    start_step: int = 0,
    meters: dict | None = None,
    on_step: Callable[[int, int, dict], None] | None = None,
) -> dict:
    """Train for the rest of one epoch and return its statistics.

    Args:
        ctx: model, optimizer, schedules and options.
        loader: micro-batches of this epoch, already positioned at ``start_step`` (see ``ResumableSampler``).
        epoch: epoch index (0-based).
        start_step: optimizer steps of this epoch already done (resuming mid-epoch).
        meters: running sums of this epoch restored from a checkpoint (``loss_sum``, ``samples``, ``micro``).
        on_step: called after each optimizer step with (global iteration done, step in epoch, meters), e.g. to save.

    Returns:
        ``train_loss``, ``lr``, ``dropout``, ``drop_path``, ``images_per_sec`` (this process x world size is the
        caller's business), ``samples``, ``iteration``.
    """
    model, opt = ctx.model, ctx.optimizer
    model.train()
    meters = dict(meters or {"loss_sum": 0.0, "samples": 0, "micro": 0})
    steps = ctx.iters_per_epoch - start_step
    it = epoch * ctx.iters_per_epoch + start_step
    micro = 0
    t0, seen = time.perf_counter(), 0
    bar = tqdm(total=steps, desc=f"epoch {epoch}", disable=not ctx.progress, leave=False, dynamic_ncols=True)
    opt.zero_grad(set_to_none=True)
    for images, targets in loader:
        if it >= (epoch + 1) * ctx.iters_per_epoch:
            break
        first, last = micro % ctx.update_freq == 0, (micro + 1) % ctx.update_freq == 0
        if first:
            if ctx.lr_scheduler is not None:
                ctx.lr_scheduler.step_update(num_updates=it)
            if ctx.drop is not None:
                ctx.drop.applier(ctx.drop.rates[it])
        _reseed(ctx.seed, ctx.rank, it * ctx.update_freq + micro % ctx.update_freq)
        images = images.to(ctx.device, non_blocking=True)
        targets = targets.to(ctx.device, non_blocking=True)
        if ctx.mixup is not None:
            images, targets = ctx.mixup(images, targets)
        sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with _autocast(ctx.device, ctx.amp_dtype):
                loss = ctx.criterion(model(images), targets)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"diverged: loss is {loss_value} at iteration {it + 1} (epoch {epoch})")
            loss = loss / ctx.update_freq
            if ctx.scaler is not None:
                ctx.scaler.scale(loss).backward()
            else:
                loss.backward()
        meters["loss_sum"] += loss_value * images.shape[0]
        meters["samples"] += images.shape[0]
        seen += images.shape[0]
        micro += 1
        if not last:
            continue
        if ctx.scaler is not None:
            if ctx.clip_grad:
                ctx.scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), ctx.clip_grad)
            ctx.scaler.step(opt)
            ctx.scaler.update()
        else:
            if ctx.clip_grad:
                nn.utils.clip_grad_norm_(model.parameters(), ctx.clip_grad)
            opt.step()
        opt.zero_grad(set_to_none=True)
        if ctx.ema is not None:
            ctx.ema.update(model.module if hasattr(model, "module") else model, step=it)
        it += 1
        meters["micro"] += ctx.update_freq
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{opt.param_groups[0]['lr']:.2e}")
        if on_step is not None:
            on_step(it, it - epoch * ctx.iters_per_epoch, meters)
    bar.close()
    elapsed = time.perf_counter() - t0
    rates = dict(ctx.fixed_rates)
    if ctx.drop is not None:
        rates[ctx.drop.kind] = float(ctx.drop.applier.current or 0.0)
    return {
        "train_loss": meters["loss_sum"] / max(meters["samples"], 1),
        "lr": max(g["lr"] for g in opt.param_groups),
        "dropout": rates.get("dropout", 0.0),
        "drop_path": rates.get("drop_path", 0.0),
        "images_per_sec": seen / elapsed if elapsed > 0 else 0.0,
        "samples": meters["samples"],
        "iteration": it,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    num_classes: int | None = None,
    progress: bool = False,
) -> dict:
    """Top-1 / top-5 accuracy (percent) and mean cross-entropy over every sample of ``loader`` on all ranks.

    With ``num_classes`` the result also holds ``per_class_top1`` (a list, percent; None for absent classes).
    """
    model.eval()
    k = None
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, count
    per_class = torch.zeros(2, num_classes or 0, dtype=torch.float64, device=device)  # correct, total
    for images, targets in tqdm(loader, desc="eval", disable=not progress, leave=False, dynamic_ncols=True):
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with _autocast(device, amp_dtype):
            logits = model(images)
        logits = logits.float()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hit = top.eq(targets[:, None])
        sums[0] += nn.functional.cross_entropy(logits, targets, reduction="sum")
        sums[1] += hit[:, 0].sum()
        sums[2] += hit.any(dim=1).sum()
        sums[3] += targets.numel()
        if num_classes:
            per_class[0].index_add_(0, targets, hit[:, 0].double())
            per_class[1].index_add_(0, targets, torch.ones_like(targets, dtype=torch.float64))
    all_reduce_sum(sums)
    n = max(sums[3].item(), 1.0)
    out = {"loss": sums[0].item() / n, "top1": 100 * sums[1].item() / n, "top5": 100 * sums[2].item() / n,
           "count": int(sums[3].item())}
    if num_classes:
        all_reduce_sum(per_class)
        correct, total = per_class.tolist()
        out["per_class_top1"] = [100 * c / t if t else None for c, t in zip(correct, total)]
    return out
