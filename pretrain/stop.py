"""Stopping on SIGTERM / SIGINT / SIGUSR1: one handler per process, honoured within seconds by every stage.

Schedulers (SLURM pre-emption, ``timeout``, job queues) send one SIGTERM, then SIGKILL after a grace period; a user
presses Ctrl-C once. Every stage and the suite run inside :func:`stop_signals`:

* Inside a :func:`deferred` section (a training loop that can checkpoint), the first signal only records the request;
  the loop polls :func:`requested` after each step, saves a checkpoint and raises :class:`Preempted`.
* Anywhere else (data checks, model building, data generation, evaluation, the suite between runs) the handler raises
  :class:`Preempted` at once: nothing there is lost by stopping.
* A second signal (more than ``DUPLICATE_S`` after the first: ``timeout`` and SLURM signal a process group, so a
  process may get the same stop twice in a row) raises :class:`Preempted` at once, even inside a deferred section.

Data-loader worker processes are in the same process group and get the same signals; torch's worker handler dies on a
SIGTERM that does not come from its parent, which kills the run in the middle of a step ("DataLoader worker is killed
by signal: Terminated"). :func:`shield_worker` (every loader's ``worker_init_fn``, with :func:`worker_context` as its
``multiprocessing_context``) leaves the decision to the parent: SIGINT is ignored, SIGTERM from anyone but the parent
is ignored, SIGTERM from the parent (its shutdown) exits.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["DUPLICATE_S", "Preempted", "check", "deferred", "requested", "shield_worker", "stop_signals",
           "worker_context"]

log = logging.getLogger(__name__)
DUPLICATE_S = 2.0  # a second signal within this many seconds is the same stop delivered twice
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class Preempted(SystemExit):
    """The process was asked to stop (SIGTERM, SIGINT, SIGUSR1); the run is resumable, not failed.

    Attributes:
        signal_name: ``SIGTERM``, ``SIGINT`` or ``SIGUSR1`` (None when unknown).
    """

    def __init__(self, message: str, signal_name: str | None = None) -> None:
        super().__init__(message)
        self.signal_name = signal_name

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number (130 for SIGINT)."""
        return 128 + int(getattr(signal, self.signal_name or "SIGTERM"))


class _State:
    def __init__(self) -> None:
        self.previous: list[dict[int, Any]] = []  # per nesting level: the handlers it replaced
        self.requested: str | None = None
        self.at = 0.0
        self.deferring = 0


_state = _State()


def requested() -> str | None:
    """The name of the signal that asked this process to stop, or None."""
    return _state.requested


def check(where: str = "") -> None:
    """Raise :class:`Preempted` if a stop was requested (``where``: what was about to happen, for the message)."""
    if _state.requested is not None:
        raise Preempted(f"stopped by {_state.requested}{' ' + where if where else ''}", _state.requested)


def _handle(signum: int, frame: Any) -> None:
    name = signal.Signals(signum).name
    now = time.monotonic()
    if _state.requested is not None:
        if now - _state.at < DUPLICATE_S:
            return
        raise Preempted(f"stopped by a second {name}, at once", name)
    _state.requested, _state.at = name, now
    if _state.deferring:
        log.warning("%s received: stopping after the current step (a checkpoint first)", name)
        return
    raise Preempted(f"stopped by {name}", name)


@contextlib.contextmanager
def stop_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Within this block the first of ``signals`` stops the process cleanly (see the module docstring).

    Nested blocks share one state; each installs the handlers not yet installed and gives back what it replaced, so
    a suite that runs many stages keeps one stop request across them. The request is cleared when the outermost
    block exits. Outside the main thread (where Python cannot set handlers) nothing is installed.
    """
    replaced: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in signals:
            if signal.getsignal(sig) is not _handle:
                replaced[sig] = signal.signal(sig, _handle)
    _state.previous.append(replaced)
    try:
        yield
    finally:
        _state.previous.pop()
        for sig, handler in replaced.items():
            signal.signal(sig, handler)
        if not _state.previous:
            _state.requested, _state.deferring = None, 0


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A section that polls :func:`requested` at safe points (after each step): a first signal only records the stop.

    Raises :class:`Preempted` on entry if a stop was already requested.
    """
    check()
    _state.deferring += 1
    try:
        yield
    finally:
        _state.deferring = max(0, _state.deferring - 1)


class _ShieldedProcess(mp.context.ForkProcess):
    """A forked worker born with SIGTERM and SIGINT blocked, so that none arrives before :func:`shield_worker`."""

    def start(self) -> None:
        before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)  # a signal that came meanwhile is handled now


class _ShieldedContext(mp.context.ForkContext):
    Process = _ShieldedProcess


def worker_context() -> mp.context.BaseContext | None:
    """The ``multiprocessing_context`` of data loaders whose ``worker_init_fn`` is :func:`shield_worker` (fork, with
    the signals blocked from the fork until the shield is up; None where fork is not the start method)."""
    return _ShieldedContext() if mp.get_start_method(allow_none=True) in (None, "fork") and os.name == "posix" else None


def shield_worker(worker_id: int | None = None, then: Callable[[int], None] | None = None) -> None:
    """``worker_init_fn`` of data-loader workers: stopping is the parent's decision (see the module docstring).

    SIGINT is ignored; SIGTERM is blocked and a thread waits for it: from the parent (its loader shutting workers
    down) it exits at once, from anyone else (a process-group signal the parent also got) it is ignored. A worker
    whose parent died exits on its own (torch's watchdog). ``then``: another ``worker_init_fn`` to call afterwards.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # (blocked since the fork by worker_context)

    def wait() -> None:
        while True:
            info = signal.sigwaitinfo({signal.SIGTERM})
            if info.si_pid == parent or os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=wait, name="dropbench-sigterm", daemon=True).start()
    if then is not None:
        then(worker_id)
