"""The one training loop: ``train_one_epoch`` and ``evaluate``, shared by pretraining and classification fine-tuning.

No argparse, no globals: everything a step needs sits in a :class:`TrainContext`. Learning rate and drop rate are
set from their schedules at every optimizer iteration (global index ``it``), exactly as the paper's code does; the
drop schedule is optional (fine-tuning uses fixed rates). Randomness (dropout masks, Mixup) is reseeded from
(seed, rank, micro-step) so a resumed run repeats an uninterrupted one.

The loop never waits for the device within a step: the loss sum and a non-finite flag accumulate on the device and
are read every ``sync_every`` optimizer steps, before any checkpoint and at the end of the epoch (a non-finite loss
stops the run within ``sync_every`` steps, and no checkpoint is written after it).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable, Iterator
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
    sync_every: int = 50  # optimizer steps between host reads of the loss (and the non-finite check)
    channels_last: bool = False  # feed images in channels-last memory format (the model must be converted too)


class _DeviceMeters:
    """The epoch's running loss sum and first non-finite loss, kept on the device; ``read`` synchronises.

    The sum is the same float64 sequence of additions as summing ``loss.item() * batch`` on the host, so the
    figures (and a resumed run's) are bit-identical to a per-step read.
    """

    def __init__(self, meters: dict, device: torch.device, epoch: int) -> None:
        self.host = dict(meters)
        self.epoch = epoch
        self.loss_sum = torch.tensor(float(self.host["loss_sum"]), dtype=torch.float64, device=device)
        self.bad_it = torch.tensor(-1, dtype=torch.int64, device=device)  # iteration of the first non-finite loss
        self.bad_loss = torch.tensor(0.0, dtype=torch.float32, device=device)

    def add(self, loss: torch.Tensor, batch: int, it: int) -> None:
        loss = loss.detach()
        self.loss_sum += loss.double() * batch
        first = ~torch.isfinite(loss) & (self.bad_it < 0)
        self.bad_it = torch.where(first, it, self.bad_it)
        self.bad_loss = torch.where(first, loss.float(), self.bad_loss)

    def read(self) -> dict:
        """Host copy of the meters; raises ``FloatingPointError`` if a loss was not finite."""
        bad_it, bad_loss, loss_sum = torch.stack([self.bad_it.double(), self.bad_loss.double(), self.loss_sum]).tolist()
        if bad_it >= 0:
            raise FloatingPointError(f"diverged: loss is {bad_loss} at iteration {int(bad_it) + 1} "
                                     f"(epoch {self.epoch})")
        self.host["loss_sum"] = loss_sum
        return dict(self.host)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _reseed(seed: int, rank: int, micro_step: int) -> None:
    s = ((seed * 1_000_003 + rank) * 10_000_019 + micro_step) % 2**63
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)


def _timed(loader: Iterable, waited: list[float]) -> Iterator:
    """Iterate ``loader``, adding the time spent waiting for each batch to ``waited[0]``."""
    batches = iter(loader)
    while True:
        t = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            return
        waited[0] += time.perf_counter() - t
        yield batch


def train_one_epoch(
    ctx: TrainContext,
    loader: Iterable,
    epoch: int,
    start_step: int = 0,
    meters: dict | None = None,
    on_step: Callable[[int, int, Callable[[], dict]], None] | None = None,
) -> dict:
    """Train for the rest of one epoch and return its statistics.

    Args:
        ctx: model, optimizer, schedules and options.
        loader: micro-batches of this epoch, already positioned at ``start_step`` (see ``ResumableSampler``).
        epoch: epoch index (0-based).
        start_step: optimizer steps of this epoch already done (resuming mid-epoch).
        meters: running sums of this epoch restored from a checkpoint (``loss_sum``, ``samples``, ``micro``).
        on_step: called after each optimizer step with (global iteration done, step in epoch, read_meters), e.g. to
            save; ``read_meters()`` synchronises with the device, checks the losses and returns the running sums.

    Returns:
        ``train_loss``, ``lr``, ``dropout``, ``drop_path``, ``images_per_sec`` (this process x world size is the
        caller's business), ``data_wait_s`` (time this process waited for the loader), ``samples``, ``iteration``.
    """
    model, opt = ctx.model, ctx.optimizer
    model.train()
    dev = _DeviceMeters(meters or {"loss_sum": 0.0, "samples": 0, "micro": 0}, ctx.device, epoch)
    meters = dev.host  # samples and micro are host counts; loss_sum is read from the device by dev.read()
    sync_every = max(int(ctx.sync_every), 1)
    steps = ctx.iters_per_epoch - start_step
    it = epoch * ctx.iters_per_epoch + start_step
    micro = 0
    t0, seen = time.perf_counter(), 0
    bar = tqdm(total=steps, desc=f"epoch {epoch}", disable=not ctx.progress, leave=False, dynamic_ncols=True)
    opt.zero_grad(set_to_none=True)
    waited = [0.0]
    for images, targets in _timed(loader, waited):
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
        if ctx.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if ctx.mixup is not None:
            images, targets = ctx.mixup(images, targets)
        sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with _autocast(ctx.device, ctx.amp_dtype):
                loss = ctx.criterion(model(images), targets)
            dev.add(loss, images.shape[0], it)
            loss = loss / ctx.update_freq
            if ctx.scaler is not None:
                ctx.scaler.scale(loss).backward()
            else:
                loss.backward()
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
        if it % sync_every == 0:
            read = dev.read()
            bar.set_postfix(loss=f"{read['loss_sum'] / max(read['samples'], 1):.3f}",
                            lr=f"{opt.param_groups[0]['lr']:.2e}")
        if on_step is not None:
            on_step(it, it - epoch * ctx.iters_per_epoch, dev.read)
    bar.close()
    meters = dev.read()
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
        "data_wait_s": waited[0],
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
    keep_samples: bool = False,
) -> dict:
    """Top-1 / top-5 accuracy (percent) and mean cross-entropy over every sample of ``loader`` on all ranks.

    With ``num_classes`` the result also holds ``per_class_top1`` (a list, percent; None for absent classes). With
    ``keep_samples`` it holds ``samples``: per test sample (dataset index order, gathered from all ranks) its
    ``index``, ``label`` and ``topk`` predicted classes (best first), enough to recompute every metric on any subset.
    """
    model.eval()
    k = None
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, count
    per_class = torch.zeros(2, num_classes or 0, dtype=torch.float64, device=device)  # correct, total
    kept: list[torch.Tensor] = []
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
        if keep_samples:
            kept.append(torch.cat([targets[:, None], top], dim=1).cpu())
    all_reduce_sum(sums)
    n = max(sums[3].item(), 1.0)
    out = {"loss": sums[0].item() / n, "top1": 100 * sums[1].item() / n, "top5": 100 * sums[2].item() / n,
           "count": int(sums[3].item())}
    if num_classes:
        all_reduce_sum(per_class)
        correct, total = per_class.tolist()
        out["per_class_top1"] = [100 * c / t if t else None for c, t in zip(correct, total)]
    if keep_samples:
        out["samples"] = _gather_samples(loader, kept, int(sums[3].item()), k or 1, device)
    return out


def _gather_samples(loader: Iterable, kept: list[torch.Tensor], total: int, k: int, device: torch.device) -> dict:
    """Every rank's (label, top-k) rows placed at their dataset indices and summed over ranks (each row is one rank's).

    The evaluation sampler (:class:`pretrain.data.ResumableSampler`, no shuffling) says which dataset index each local
    row is; a loader without one must be a single process's in dataset order.
    """
    local = torch.cat(kept) if kept else torch.zeros(0, 1 + k, dtype=torch.long)
    sampler = getattr(loader, "sampler", None)
    indices = torch.as_tensor(sampler._indices() if hasattr(sampler, "_indices") else range(len(local)),
                              dtype=torch.long)
    if len(indices) != len(local):
        raise RuntimeError(f"evaluation saw {len(local)} samples but its sampler lists {len(indices)}")
    rows = torch.zeros(total, 1 + k, dtype=torch.float64, device=device)
    present = torch.zeros(total, dtype=torch.float64, device=device)
    rows[indices.to(device)] = local.to(device, torch.float64)
    present[indices.to(device)] = 1.0
    all_reduce_sum(rows)
    all_reduce_sum(present)
    if not bool((present == 1).all()):
        raise RuntimeError("evaluation samples are not each seen exactly once over the ranks; cannot keep them")
    rows = rows.long().cpu().numpy()
    return {"index": np.arange(total), "label": rows[:, 0], "topk": rows[:, 1:]}
