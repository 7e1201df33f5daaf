"""Stopping on signals (pretrain/stop.py) and folder locks (pretrain/lock.py), the rules every stage follows."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import torch
from dropbench.pretrain import lock, stop
from torch.utils.data import DataLoader


def test_a_signal_outside_a_deferred_section_stops_at_once():
    with stop.stop_signals():
        with pytest.raises(stop.Preempted, match="stopped by SIGTERM") as e:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # (the handler raises before this ends)
        assert e.value.exit_code == 143 and stop.requested() == "SIGTERM"
    assert stop.requested() is None  # cleared when the outermost block ends
    assert signal.getsignal(signal.SIGTERM) is not stop._handle  # handlers given back


def test_a_deferred_section_records_the_stop_and_a_second_signal_forces_it(monkeypatch):
    with stop.stop_signals():
        with stop.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # a repeat within DUPLICATE_S: the same stop, ignored
            assert stop.requested() == "SIGINT"
            monkeypatch.setattr(stop, "DUPLICATE_S", 0.0)
            with pytest.raises(stop.Preempted, match="second SIGINT"):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
        with pytest.raises(stop.Preempted):  # a stop already requested: a new deferred section refuses to start
            with stop.deferred():
                pass


def test_nested_blocks_share_one_request():
    with stop.stop_signals():
        with stop.stop_signals(), stop.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested() == "SIGTERM"  # the suite still knows after the stage gave its handlers back
        with pytest.raises(stop.Preempted):
            stop.check("before the next run")


def _worker_pid(_: int) -> int:
    return os.getpid()


def test_loader_workers_outlive_a_sigterm_that_is_not_from_their_parent():
    """torch's own worker handler dies on it, killing the run mid-step: the shielded worker leaves it to the parent."""
    loader = DataLoader(torch.arange(64), batch_size=2, num_workers=2, worker_init_fn=stop.shield_worker,
                        multiprocessing_context=stop.worker_context())
    it = iter(loader)
    next(it)
    pids = [w.pid for w in it._workers]
    with stop.stop_signals(), stop.deferred():
        # what `timeout` / SLURM do: every process of the group gets one, from another process (the parent's own
        # SIGTERM is its loader shutting a worker down: that one ends the worker)
        subprocess.run(["kill", "-TERM", *map(str, pids), str(os.getpid())], check=True)
        time.sleep(0.5)
        assert len(list(it)) == 31  # the epoch goes on to its end
        assert stop.requested() == "SIGTERM"
    assert all(not w.is_alive() for w in it._workers)


def test_a_folder_is_held_by_one_process_and_freed_by_a_kill(tmp_path):
    folder = tmp_path / "suite"
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # holds the folder until killed
        try:
            with lock.hold(folder):
                os.write(write, b"x")
                time.sleep(60)
        finally:
            os._exit(0)
    assert os.read(read, 1) == b"x"
    with pytest.raises(lock.FolderInUse, match=f"in use by pid {child} on .*--wait"):
        with lock.hold(folder):
            pass
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    with lock.hold(folder):  # no stale lock after kill -9
        with lock.hold(folder):  # nested holds by one process are free
            assert f'"pid": {os.getpid()}' in (folder / lock.LOCK_FILE).read_text()


def test_wait_waits_for_the_holder(tmp_path):
    child = os.fork()
    if child == 0:
        try:
            with lock.hold(tmp_path):
                time.sleep(1.5)
        finally:
            os._exit(0)
    time.sleep(0.5)
    t0 = time.monotonic()
    with lock.hold(tmp_path, wait=True, poll_s=0.1):
        assert time.monotonic() - t0 > 0.5
    os.waitpid(child, 0)


def test_data_generation_stops_at_once_and_is_redone(tmp_path):
    import threading

    from dropbench.pretrain.synth import MARKER, write_synth_imagenet

    with stop.stop_signals():
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(stop.Preempted):
            write_synth_imagenet(tmp_path, num_classes=4, train_per_class=5000, size=32, progress=False)
        assert time.monotonic() - t0 < 3
    assert any(tmp_path.rglob("*.JPEG")) and not (tmp_path / MARKER).exists()  # left unfinished: not taken as done
    write_synth_imagenet(tmp_path, num_classes=2, train_per_class=2, val_per_class=1, size=16, progress=False)
    assert (tmp_path / MARKER).exists()
