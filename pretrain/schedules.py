"""Early, late and standard dropout / stochastic-depth schedules, and the one place that applies them to a model.

The paper ("Dropout Reduces Underfitting", Sec. 4) defines a drop rate per training iteration:

* ``standard``: the rate for the whole run;
* ``early``: the rate for the first ``cutoff_epoch`` epochs, either ``constant`` or ``linear`` (from the rate at the
  first iteration down to exactly 0 at the last early iteration), and 0 after;
* ``late``: 0 until ``cutoff_epoch``, the rate after (``constant`` only).

:func:`drop_schedule` returns that array; :class:`DropRateApplier` writes one entry of it into the model every
iteration: into the dropout modules the official models schedule for dropout (every ``nn.Dropout`` except the
classifier's: facebookresearch/dropout's models have no dropout before the head, so timm's ``head_drop`` and Swin's
``head.drop`` are never scheduled; :func:`scheduled_dropouts`), and ``rate * i / (D - 1)`` into the
stochastic-depth modules of residual block ``i`` of ``D`` for stochastic depth (timm's linear-over-depth rule,
across all stages).
"""

from __future__ import annotations

import numbers

import numpy as np
import torch.nn as nn
from timm.layers import DropPath

__all__ = ["DROP_KINDS", "DROP_MODES", "DROP_SCHEDULES", "DropRateApplier", "drop_schedule", "residual_blocks",
           "scheduled_dropouts"]

DROP_KINDS = ("none", "dropout", "drop_path")
DROP_MODES = ("standard", "early", "late")
DROP_SCHEDULES = ("constant", "linear")
_DROP_PATH_ATTRS = ("drop_path", "drop_path1", "drop_path2")


def drop_schedule(
    drop_rate: float,
    epochs: int,
    iters_per_epoch: int,
    cutoff_epoch: int = 0,
    mode: str = "standard",
    schedule: str = "constant",
) -> np.ndarray:
    """One drop rate per training iteration (length ``epochs * iters_per_epoch``).

    Args:
        drop_rate: the rate while dropout is on, in [0, 1).
        epochs: training epochs.
        iters_per_epoch: optimizer iterations per epoch.
        cutoff_epoch: epoch at which early dropout ends / late dropout starts, in [0, epochs].
        mode: ``standard``, ``early`` or ``late``.
        schedule: ``constant`` or ``linear`` (linear decay to 0 is defined for ``early`` only).

    Raises:
        ValueError: an argument is out of range or unknown; the message names it.
    """
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
    for name, value in (("epochs", epochs), ("iters_per_epoch", iters_per_epoch), ("cutoff_epoch", cutoff_epoch)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or int(value) != value:
            raise ValueError(f"{name} must be a whole number, got {value!r}")
    epochs, iters_per_epoch, cutoff_epoch = int(epochs), int(iters_per_epoch), int(cutoff_epoch)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if iters_per_epoch < 1:
        raise ValueError(f"iters_per_epoch must be >= 1, got {iters_per_epoch}")
    if mode not in DROP_MODES:
        raise ValueError(f"mode must be one of {DROP_MODES}, got {mode!r}")
    if schedule not in DROP_SCHEDULES:
        raise ValueError(f"schedule must be one of {DROP_SCHEDULES}, got {schedule!r}")
    if not 0 <= cutoff_epoch <= epochs:
        raise ValueError(f"cutoff_epoch must be in [0, epochs={epochs}], got {cutoff_epoch}")
    if mode == "late" and schedule == "linear":
        raise ValueError("schedule 'linear' is defined for mode 'early' only; late dropout uses schedule 'constant'")

    total = epochs * iters_per_epoch
    if mode == "standard":
        return np.full(total, drop_rate, dtype=np.float64)
    boundary = cutoff_epoch * iters_per_epoch
    rates = np.zeros(total, dtype=np.float64)
    if mode == "early":
        if schedule == "constant":
            rates[:boundary] = drop_rate
        else:
            rates[:boundary] = np.linspace(drop_rate, 0.0, boundary)
    else:
        rates[boundary:] = drop_rate
    return rates


def _is_head(name: str) -> bool:
    """A dropout of the classifier: timm's ``head_drop`` (ViT, Mixer) or inside ``head`` (Swin's ``head.drop``)."""
    return name == "head_drop" or name.startswith("head.")


def scheduled_dropouts(model: nn.Module) -> dict[str, nn.Module]:
    """The dropout modules a dropout schedule controls, by name: every dropout of the model except the classifier's.

    The official models' ``update_dropout`` (facebookresearch/dropout ``models/*.py``) sets every ``nn.Dropout`` they
    have: ViT ``pos_drop``, attention, projection, MLP; Swin ``pos_drop`` after the patch embedding (the paper models
    add it to timm's Swin as ``patch_embed.pos_drop``), attention, projection, MLP; Mixer the token and channel MLPs.
    None has a dropout before the classifier, so timm's head dropouts stay out (and stay at 0).
    """
    return {n: m for n, m in model.named_modules()
            if isinstance(m, nn.modules.dropout._DropoutNd) and not _is_head(n)}


def residual_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's residual blocks in depth order (every module that owns a stochastic-depth slot).

    timm names the slots ``drop_path`` (ConvNeXt, Mixer) or ``drop_path1`` / ``drop_path2`` (ViT, Swin) and fills
    them with :class:`~timm.layers.DropPath`, or with ``nn.Identity`` where the block's rate was 0 at build time.
    """
    blocks = []
    for module in model.modules():
        slots = [getattr(module, a, None) for a in _DROP_PATH_ATTRS]
        if any(isinstance(s, (DropPath, nn.Identity)) for s in slots):
            blocks.append(module)
    return blocks


class DropRateApplier:
    """Writes the current dropout or stochastic-depth rate into a model; the only code that changes drop rates.

    Build the model at the schedule's peak rate, so that the stochastic-depth modules exist (timm builds
    ``nn.Identity`` for a rate of 0), then call the applier with each iteration's rate.

    Args:
        model: the model (unwrapped from DDP).
        kind: ``dropout`` or ``drop_path``.
        peak_rate: the highest rate the schedule will ask for; checked against the modules the model has.

    Raises:
        ValueError: unknown kind, or a model that lacks the modules the schedule needs.
    """

    def __init__(self, model: nn.Module, kind: str, peak_rate: float) -> None:
        if kind not in ("dropout", "drop_path"):
            raise ValueError(f"kind must be 'dropout' or 'drop_path', got {kind!r}")
        self.kind = kind
        self.current: float | None = None
        self.names: list[str] = []  # the scheduled modules' names, in the order of :meth:`rates`
        if kind == "dropout":
            named = scheduled_dropouts(model)
            self.names = list(named)
            self._dropouts = list(named.values())
            if not self._dropouts:
                raise ValueError(f"{type(model).__name__} has no dropout modules to schedule")
            return
        blocks = residual_blocks(model)
        depth = len(blocks)
        if depth < 2:
            raise ValueError(f"{type(model).__name__} has {depth} residual blocks; stochastic depth needs at least 2")
        # (module, depth scale) pairs; block 0 always has rate 0 and may hold nn.Identity.
        self._drop_paths: list[tuple[DropPath, float]] = []
        module_names = {id(m): n for n, m in model.named_modules()}
        self.names = []
        for i, block in enumerate(blocks):
            scale = i / (depth - 1)
            for attr in _DROP_PATH_ATTRS:
                slot = getattr(block, attr, None)
                if isinstance(slot, DropPath):
                    self._drop_paths.append((slot, scale))
                    self.names.append(module_names[id(slot)])
                elif isinstance(slot, nn.Identity) and scale > 0 and peak_rate > 0:
                    raise ValueError(
                        f"block {i} of {type(model).__name__} has no DropPath module ({attr} is nn.Identity): build "
                        f"the model with drop_path_rate={peak_rate} (the schedule's peak) so the modules exist"
                    )
        self.depth = depth

    def __call__(self, rate: float) -> None:
        """Set ``rate`` (a schedule entry) on the model; a repeat of the current rate costs nothing."""
        rate = float(rate)
        if rate == self.current:
            return
        if self.kind == "dropout":
            for m in self._dropouts:
                m.p = rate
        else:
            for m, scale in self._drop_paths:
                m.drop_prob = rate * scale
        self.current = rate

    def rates(self) -> list[float]:
        """The rates now in force, one per scheduled module (for logging and tests)."""
        if self.kind == "dropout":
            return [m.p for m in self._dropouts]
        return [m.drop_prob for m, _ in self._drop_paths]
