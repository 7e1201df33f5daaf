"""Early, late and standard dropout / stochastic-depth schedules, and the one place that applies them to a model.

The paper ("Dropout Reduces Underfitting", Sec. 4) defines a drop rate per training iteration:

* ``standard``: the rate for the whole run;
* ``early``: the rate for the first ``cutoff_epoch`` epochs, either ``constant`` or ``linear`` (from the rate at the
  first iteration down to exactly 0 at the last early iteration), and 0 after;
* ``late``: 0 until ``cutoff_epoch``, the rate after (``constant`` only).

:func:`drop_schedule` returns that array; :class:`DropRateApplier` writes one entry of it into the model every
iteration: into every dropout module for dropout, and ``rate * i / (D - 1)`` into the stochastic-depth modules of
residual block ``i`` of ``D`` for stochastic depth (timm's linear-over-depth rule, across all stages).
:class:`DropSpec` holds a run's settings (kind, rate, mode, schedule, cutoff), validated once; training, the checkpoint
converter, the suite, the results store and the report ask it for model kwargs, rates, metadata and variant name.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch.nn as nn
from timm.layers import DropPath

__all__ = [
    "DROP_KINDS", "DROP_MODES", "DROP_SCHEDULES", "DropRateApplier", "DropSpec", "drop_schedule", "residual_blocks",
]

DROP_KINDS = ("none", "dropout", "drop_path")
DROP_MODES = ("standard", "early", "late")
DROP_SCHEDULES = ("constant", "linear")
_DROP_PATH_ATTRS = ("drop_path", "drop_path1", "drop_path2")


def _check_settings(drop_rate: float, cutoff_epoch: int, mode: str, schedule: str) -> None:
    """The checks of a drop schedule's settings that do not depend on the run's length."""
    if isinstance(drop_rate, bool) or not isinstance(drop_rate, numbers.Real) or not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
    whole = not isinstance(cutoff_epoch, bool) and isinstance(cutoff_epoch, numbers.Real)
    if not whole or int(cutoff_epoch) != cutoff_epoch:
        raise ValueError(f"cutoff_epoch must be a whole number, got {cutoff_epoch!r}")
    if mode not in DROP_MODES:
        raise ValueError(f"mode must be one of {DROP_MODES}, got {mode!r}")
    if schedule not in DROP_SCHEDULES:
        raise ValueError(f"schedule must be one of {DROP_SCHEDULES}, got {schedule!r}")
    if cutoff_epoch < 0:
        raise ValueError(f"cutoff_epoch must be in [0, epochs], got {cutoff_epoch}")
    if mode == "late" and schedule == "linear":
        raise ValueError("schedule 'linear' is defined for mode 'early' only; late dropout uses schedule 'constant'")


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
    for name, value in (("epochs", epochs), ("iters_per_epoch", iters_per_epoch)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or int(value) != value:
            raise ValueError(f"{name} must be a whole number, got {value!r}")
    epochs, iters_per_epoch = int(epochs), int(iters_per_epoch)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if iters_per_epoch < 1:
        raise ValueError(f"iters_per_epoch must be >= 1, got {iters_per_epoch}")
    _check_settings(drop_rate, cutoff_epoch, mode, schedule)
    cutoff_epoch = int(cutoff_epoch)
    if not 0 <= cutoff_epoch <= epochs:
        raise ValueError(f"cutoff_epoch must be in [0, epochs={epochs}], got {cutoff_epoch}")

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


@dataclass(frozen=True)
class DropSpec:
    """A pretraining run's drop settings (the config's ``drop`` section), validated once; every reader asks it.

    Attributes:
        kind: ``none``, ``dropout`` or ``drop_path`` (stochastic depth).
        rate: the rate while dropout is on (the schedule's peak), in [0, 1); 0.0 for kind ``none``.
        mode: ``standard`` (the rate throughout), ``early`` or ``late``.
        schedule: ``constant`` or ``linear`` (early only: down to 0 at the cutoff).
        cutoff_epoch: where early dropout ends / late dropout starts.

    Raises:
        ValueError: an unknown kind, mode or schedule, a rate outside [0, 1), a cutoff that is not a whole number,
            late + linear, or a non-standard mode without a rate; the message names the value and the fix.
    """

    kind: str = "none"
    rate: float = 0.0
    mode: str = "standard"
    schedule: str = "constant"
    cutoff_epoch: int = 0

    def __post_init__(self) -> None:
        if self.kind not in DROP_KINDS:
            raise ValueError(f"drop.kind must be one of {DROP_KINDS}, got {self.kind!r}")
        if self.kind == "none":
            if self.mode != "standard":
                raise ValueError(f"--drop-mode {self.mode} needs a rate: give --dropout P or --drop-path P")
            object.__setattr__(self, "rate", 0.0)  # no drop: the rate given (0 or below) is not used
        _check_settings(self.rate, self.cutoff_epoch, self.mode, self.schedule)
        object.__setattr__(self, "rate", float(self.rate))
        object.__setattr__(self, "cutoff_epoch", int(self.cutoff_epoch))

    @classmethod
    def from_config(cls, drop: Mapping[str, Any]) -> DropSpec:
        """From a config's ``drop`` section (``kind``, ``rate``, ``mode``, ``schedule``, ``cutoff_epoch``)."""
        unknown = sorted(set(drop) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"drop has unknown keys {unknown}; it takes kind, rate, mode, schedule, cutoff_epoch")
        return cls(**dict(drop))

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> DropSpec:
        """From a checkpoint's ``pretrain`` metadata (:meth:`metadata`'s keys; absent ones take the defaults)."""
        return cls(kind=meta.get("drop_kind") or "none", rate=meta.get("drop_rate") or 0.0,
                   mode=meta.get("drop_mode") or "standard", schedule=meta.get("drop_schedule") or "constant",
                   cutoff_epoch=meta.get("cutoff_epoch") or 0)

    def metadata(self) -> dict[str, Any]:
        """The drop keys of a checkpoint's ``pretrain`` metadata (and of ``result.json``)."""
        return {"drop_kind": self.kind, "drop_rate": self.rate, "drop_mode": self.mode,
                "drop_schedule": self.schedule, "cutoff_epoch": self.cutoff_epoch}

    @property
    def scheduled(self) -> bool:
        """Whether the rate changes during training (early / late): the model is then built at the peak rate and
        :class:`DropRateApplier` writes each iteration's rate."""
        return self.kind != "none" and self.mode != "standard"

    @property
    def variant(self) -> str:
        """The variant name of tables and results: ``baseline``, ``standard-dropout``, ``early-sd``, ``late-sd``..."""
        if self.kind == "none" or not self.rate:
            return "baseline"
        return f"{self.mode}-{'dropout' if self.kind == 'dropout' else 'sd'}"

    def model_kwargs(self) -> dict[str, float]:
        """The rates to build the model with (:func:`~pretrain.models.create_paper_model`): the peak of the schedule."""
        return {"dropout": self.rate if self.kind == "dropout" else 0.0,
                "drop_path": self.rate if self.kind == "drop_path" else 0.0}

    def fixed_rates(self) -> dict[str, float]:
        """The rates in force throughout (standard mode), by kind, for the training log; empty otherwise."""
        return {self.kind: self.rate} if self.kind != "none" and self.mode == "standard" else {}

    def check(self, epochs: int) -> None:
        """Refuse a cutoff outside a run of ``epochs`` epochs."""
        if self.kind != "none":
            self.rates(epochs, 1)

    def rates(self, epochs: int, iters_per_epoch: int) -> np.ndarray:
        """One rate per training iteration (:func:`drop_schedule`; all 0 for kind ``none``)."""
        if self.kind == "none":
            return np.zeros(epochs * iters_per_epoch, dtype=np.float64)
        return drop_schedule(self.rate, epochs, iters_per_epoch, self.cutoff_epoch, self.mode, self.schedule)

    def describe(self) -> str:
        """One line for logs and figure legends."""
        if self.kind == "none":
            return "no dropout"
        extra = f", cutoff epoch {self.cutoff_epoch}" if self.mode != "standard" else ""
        return f"{self.mode} {self.kind} {self.rate} ({self.schedule}{extra})"


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
        if kind == "dropout":
            self._dropouts = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
            if not self._dropouts:
                raise ValueError(f"{type(model).__name__} has no dropout modules to schedule")
            return
        blocks = residual_blocks(model)
        depth = len(blocks)
        if depth < 2:
            raise ValueError(f"{type(model).__name__} has {depth} residual blocks; stochastic depth needs at least 2")
        # (module, depth scale) pairs; block 0 always has rate 0 and may hold nn.Identity.
        self._drop_paths: list[tuple[DropPath, float]] = []
        for i, block in enumerate(blocks):
            scale = i / (depth - 1)
            for attr in _DROP_PATH_ATTRS:
                slot = getattr(block, attr, None)
                if isinstance(slot, DropPath):
                    self._drop_paths.append((slot, scale))
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
