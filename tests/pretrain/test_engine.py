"""The training loop reads the device only every ``sync_every`` steps, still stops on a non-finite loss, and the
loop options (channels-last, fused AdamW, torch.compile) resolve as documented."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from dropbench.pretrain.config import load_config, resolve_config
from dropbench.pretrain.engine import TrainContext, train_one_epoch
from dropbench.pretrain.train import loop_options

_SYNCS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__")


@pytest.fixture
def host_reads(monkeypatch) -> list[str]:
    """Every call of a tensor method that copies a value to the host (a device synchronisation on a GPU)."""
    calls: list[str] = []
    for name in _SYNCS:
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _name=name, _original=original, **k):
            calls.append(_name)
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


class _NaNAt(nn.Module):
    """A linear classifier whose output turns NaN at one call (to test the deferred non-finite check)."""

    def __init__(self, bad_call: int | None = None) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 3)
        self.calls, self.bad_call = 0, bad_call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x.flatten(1))
        self.calls += 1
        return out * float("nan") if self.calls - 1 == self.bad_call else out


def _ctx(model: nn.Module, steps: int, sync_every: int) -> TrainContext:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # plain SGD: no host reads of its own
    return TrainContext(model=model, criterion=nn.CrossEntropyLoss(), optimizer=opt, device=torch.device("cpu"),
                        iters_per_epoch=steps, progress=False, sync_every=sync_every)


def _batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 3, 2, 2, generator=g), torch.randint(0, 3, (4,), generator=g)) for _ in range(n)]


def test_loss_is_read_only_every_sync_every_steps(host_reads):
    steps, every = 10, 4
    per_step: list[int] = []

    def on_step(it, step, read_meters):
        per_step.append(len(host_reads))
        host_reads.clear()

    stats = train_one_epoch(_ctx(_NaNAt(), steps, every), _batches(steps), epoch=0, on_step=on_step)
    reads_at_end = len(host_reads)
    synced = [i + 1 for i, n in enumerate(per_step) if n]
    assert synced == [4, 8], per_step  # only at the sync steps ...
    assert all(n <= 1 for n in per_step)  # ... one read each
    assert reads_at_end == 1  # and once at the end of the epoch
    assert stats["samples"] == 40 and stats["iteration"] == 10


class _Recording(nn.CrossEntropyLoss):
    """The old loop's arithmetic: every loss read on the host as it comes."""

    def __init__(self) -> None:
        super().__init__()
        self.host_sum = 0.0

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = super().forward(logits, targets)
        self.host_sum += loss.item() * logits.shape[0]
        return loss


def test_deferred_loss_sum_is_bit_identical_to_per_step_host_reads():
    model = _NaNAt()
    ctx = _ctx(model, 7, 3)
    ctx.criterion = _Recording()
    stats = train_one_epoch(ctx, _batches(7), epoch=0)
    assert stats["train_loss"] == ctx.criterion.host_sum / 28  # exactly, not approximately


def test_non_finite_loss_stops_the_run_within_sync_every_steps():
    seen: list[int] = []
    with pytest.raises(FloatingPointError, match=r"^diverged: loss is nan at iteration 26 \(epoch 2\)$"):
        # epoch 2 of 10-step epochs: iterations 20..29 (21st..30th); the 6th forward (iteration 25, the 26th) is NaN,
        # read at iteration 28
        train_one_epoch(_ctx(_NaNAt(bad_call=5), 10, 4), _batches(10), epoch=2,
                        on_step=lambda it, s, read: seen.append(it))
    assert seen[-1] == 27  # the check ran after step 28, before its on_step (no checkpoint after the NaN)


def test_a_checkpoint_after_a_non_finite_loss_is_refused():
    def save_every_step(it, step, read_meters):
        read_meters()  # what train.py's save does first

    with pytest.raises(FloatingPointError, match=r"diverged: loss is nan at iteration 2 \(epoch 0\)"):
        train_one_epoch(_ctx(_NaNAt(bad_call=1), 10, 50), _batches(10), epoch=0, on_step=save_every_step)


def test_compiled_channels_last_model_trains_like_the_eager_one():
    torch.manual_seed(0)
    eager = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten(), nn.Linear(16, 3))
    fast = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten(), nn.Linear(16, 3))
    fast.load_state_dict(eager.state_dict())
    fast = fast.to(memory_format=torch.channels_last)
    ctx = _ctx(torch.compile(fast, backend="eager"), 3, 2)
    ctx.channels_last = True
    got = train_one_epoch(ctx, _batches(3), epoch=0)
    want = train_one_epoch(_ctx(eager, 3, 2), _batches(3), epoch=0)
    assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-6)
    for a, b in zip(fast.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_loop_options_resolve_auto_per_device():
    cfg = load_config(resolve_config("pretrain", "smoke"))
    cfg.merge_from_dict({"model.name": "convnext_femto"})
    assert loop_options(cfg, torch.device("cpu")) == {
        "channels_last": False, "fused_optimizer": False, "compile": False, "sync_every": 50}
    on_gpu = loop_options(cfg, torch.device("cuda"))  # resolution only: no GPU needed
    assert on_gpu["channels_last"] and on_gpu["fused_optimizer"]
    cfg.merge_from_dict({"model.name": "vit_tiny"})
    assert not loop_options(cfg, torch.device("cuda"))["channels_last"]
    cfg.merge_from_dict({"runtime.channels_last": "yes"})
    with pytest.raises(ValueError, match="runtime.channels_last must be true, false or 'auto'"):
        loop_options(cfg, torch.device("cpu"))
