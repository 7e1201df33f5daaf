"""run_and_record: the result file of a run that succeeds, fails, or refuses to overwrite."""

from __future__ import annotations

import pytest
from dropbench.benchmarks.results import read_result
from dropbench.benchmarks.runs import run_and_record
from dropbench.finetune.tasks import Outcome


def _ok() -> Outcome:
    return Outcome(metrics={"top1": 50.0}, config={"a": 1}, config_hash="h", seed=0, checkpoint=None,
                   checkpoint_sha256=None, pretrain={"drop_kind": "drop_path", "drop_rate": 0.5, "drop_mode": "early"},
                   log_path=None)


def _boom() -> Outcome:
    raise RuntimeError("out of memory")


def test_success_then_failure_keeps_the_finished_result(tmp_path):
    r = run_and_record("cls", "pets", "vit_tiny", tmp_path, _ok)
    assert r.variant == "early-sd" and read_result(tmp_path).metrics == {"top1": 50.0}
    with pytest.raises(RuntimeError):
        run_and_record("cls", "pets", "vit_tiny", tmp_path, _boom)
    assert read_result(tmp_path).status == "ok"
    failed = read_result(tmp_path / "result.failed.json")
    assert failed.status == "failed" and "out of memory" in failed.error and "traceback" in failed.extra


def test_a_stage_must_return_an_outcome(tmp_path):
    with pytest.raises(TypeError, match="Outcome"):
        run_and_record("cls", "pets", "vit_tiny", tmp_path, lambda: {"metrics": {"top1": 1.0}})


def test_failure_is_recorded(tmp_path):
    with pytest.raises(RuntimeError):
        run_and_record("coco", "coco", "swin_femto", tmp_path, _boom, variant="baseline")
    r = read_result(tmp_path)
    assert r.status == "failed" and r.error == "RuntimeError: out of memory" and r.variant == "baseline"


def test_refusal_to_overwrite_records_nothing(tmp_path):
    def refuse() -> Outcome:
        raise FileExistsError("already holds a run")

    with pytest.raises(FileExistsError):
        run_and_record("pretrain", "imagenet", "vit_tiny", tmp_path, refuse)
    assert not (tmp_path / "result.json").exists()


def test_a_run_stopped_by_a_signal_records_nothing(tmp_path):
    """SIGTERM (pre-emption) saves a checkpoint and raises Preempted: the run is resumable, not failed."""
    from dropbench.pretrain.train import Preempted

    def stopped() -> Outcome:
        raise Preempted("stopped by signal at iteration 3; checkpoint saved")

    with pytest.raises(Preempted):
        run_and_record("pretrain", "imagenet", "vit_tiny", tmp_path, stopped)
    assert not (tmp_path / "result.json").exists()


def test_signal_handlers_are_given_back_after_a_run(synth_imagenet, tmp_path):
    """A suite process goes on to mmengine runs after a pretraining: SIGTERM must stop it again."""
    import signal

    from dropbench.pretrain.train import build_config, get_args_parser, run

    before = signal.getsignal(signal.SIGTERM)
    args = get_args_parser().parse_args([
        "--config", "smoke", "--model", "vit_tiny", "--data", str(synth_imagenet), "--out", str(tmp_path / "r"),
        "--epochs", "1", "--batch-size", "32", "--cfg-options", "data.input_size=32", "data.num_workers=0",
        "runtime.progress=false", "runtime.channels_last=true"])
    summary = run(build_config(args), args.out)
    assert signal.getsignal(signal.SIGTERM) is before
    # the loop options in force are reported (result.json's extra.loop): channels-last asked for, on the CPU
    assert summary["loop"] == {"channels_last": True, "fused_optimizer": False, "compile": False, "sync_every": 50}


def test_a_run_on_a_gpu_records_its_peak_memory_and_the_device_s(tmp_path, monkeypatch):
    """On CUDA the peak is reset before the stage and recorded after it (``extra.gpu_memory``); on a CPU nothing."""
    import types

    import torch

    assert "gpu_memory" not in run_and_record("cls", "pets", "vit_tiny", tmp_path / "cpu", _ok).extra
    gib, resets = 1024 ** 3, []
    cuda = torch.cuda
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "current_device", lambda: 0)
    monkeypatch.setattr(cuda, "reset_peak_memory_stats", lambda *a: resets.append(1))
    h100 = types.SimpleNamespace(name="H100", total_memory=80 * gib)
    monkeypatch.setattr(cuda, "get_device_properties", lambda i: h100)
    monkeypatch.setattr(cuda, "max_memory_allocated", lambda *a: 30 * gib)
    monkeypatch.setattr(cuda, "max_memory_reserved", lambda *a: 32.5 * gib)
    r = run_and_record("cls", "pets", "vit_tiny", tmp_path / "gpu", _ok)
    assert resets == [1]
    assert read_result(tmp_path / "gpu").extra["gpu_memory"] == r.extra["gpu_memory"] == {
        "device": "H100", "total_gib": 80.0, "peak_allocated_gib": 30.0, "peak_reserved_gib": 32.5}
