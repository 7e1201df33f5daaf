"""End-to-end pretraining on generated data: schedules in force, checkpoints, resume after a kill, DDP, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from dropbench.pretrain.checkpoint import load_checkpoint_file
from dropbench.pretrain.schedules import drop_schedule
from dropbench.pretrain.train import build_config, get_args_parser, run

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "dropbench.benchmarks.cli"]  # the `dropbench` command, run from this checkout
TINY = ["data.input_size=32", "data.num_workers=0", "data.eval_batch_size=32", "runtime.progress=false"]


def _args(data, out, *extra, epochs=3, batch=8):
    argv = ["--config", "smoke", "--model", "vit_tiny", "--data", str(data), "--out", str(out),
            "--epochs", str(epochs), "--batch-size", str(batch), *extra, "--cfg-options", *TINY]
    return get_args_parser().parse_args(argv)


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_pretrain_runs_and_schedules_rates(synth_imagenet, tmp_path):
    args = _args(synth_imagenet, tmp_path / "run", "--dropout", "0.2", "--drop-mode", "early", "--drop-schedule",
                 "linear", "--cutoff-epoch", "2")
    summary = run(build_config(args), args.out)
    records = _log(tmp_path / "run")
    assert [r["epoch"] for r in records] == [0, 1, 2]
    # 96 images / batch 8 = 12 iterations per epoch; the logged rate is the one in force at each epoch's last step
    expected = drop_schedule(0.2, 3, 12, 2, "early", "linear")
    assert [r["dropout"] for r in records] == pytest.approx([expected[11], expected[23], 0.0])
    assert records[0]["dropout"] > 0.1 and records[-1]["dropout"] == 0.0
    for r in records:
        assert {"train_loss", "val_top1", "val_top5", "lr", "drop_path", "images_per_sec"} <= set(r)
    ckpt = load_checkpoint_file(summary["checkpoint"])  # weights-only loadable
    assert {"model", "optimizer", "epoch", "scaler", "iteration", "config", "pretrain"} <= set(ckpt)
    assert ckpt["epoch"] == 2 and ckpt["iteration"] == 36
    assert ckpt["pretrain"] | {"config_hash": None} == {
        "model": "vit_tiny", "drop_kind": "dropout", "drop_rate": 0.2, "drop_mode": "early", "drop_schedule": "linear",
        "cutoff_epoch": 2, "epochs": 3, "recipe": "smoke", "config_hash": None,
        "precision": {"amp": "fp32", "tf32": False}}
    assert ckpt["precision"] == summary["precision"] == {"amp": "fp32", "tf32": False}  # float32 on the CPU
    assert (tmp_path / "run" / "config.py").read_text().startswith("# resolved by dropbench; config hash")
    # the smoke recipe keeps the newest epoch's file only (runtime.keep_checkpoints=1)
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*.pth")) == ["checkpoint-2.pth"]
    # no temporary files left behind
    assert not list((tmp_path / "run").glob(".*tmp"))


@pytest.mark.slow
def test_late_drop_path_switches_on_at_cutoff(synth_imagenet, tmp_path):
    args = _args(synth_imagenet, tmp_path / "late", "--drop-path", "0.4", "--drop-mode", "late", "--cutoff-epoch", "1",
                 epochs=2)
    run(build_config(args), args.out)
    assert [r["drop_path"] for r in _log(tmp_path / "late")] == [0.0, 0.4]


def _train_cmd(data, out, *extra):
    return [*CLI, "pretrain", "--config", "smoke", "--model", "vit_tiny", "--data", str(data),
            "--out", str(out), "--epochs", "2", "--batch-size", "8", "--drop-path", "0.3", "--drop-mode", "early",
            "--cutoff-epoch", "1", *extra, "--cfg-options", *TINY, "runtime.save_every_iters=3"]


@pytest.mark.slow
def test_killed_and_resumed_run_matches_an_uninterrupted_one(synth_imagenet, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_train_cmd(synth_imagenet, full), check=True, env=env, cwd=REPO, capture_output=True)

    proc = subprocess.Popen(_train_cmd(synth_imagenet, killed), env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt_path = killed / "checkpoint.pth"
    deadline = time.time() + 120
    while not ckpt_path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = load_checkpoint_file(ckpt_path)["iteration"]
    assert 0 < stopped_at < 24, "the kill should land before the run ends"

    subprocess.run(_train_cmd(synth_imagenet, killed, "--resume", "auto"), check=True, env=env, cwd=REPO,
                   capture_output=True)
    a = load_checkpoint_file(full / "checkpoint.pth")
    b = load_checkpoint_file(killed / "checkpoint.pth")
    assert a["iteration"] == b["iteration"] == 24
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=k)
    timing = ("images_per_sec", "epoch_time", "data_wait_share")
    for ra, rb in zip(_log(full), _log(killed), strict=True):
        assert {k: v for k, v in ra.items() if k not in timing} == pytest.approx(
            {k: v for k, v in rb.items() if k not in timing}, rel=1e-9)


@pytest.mark.slow
def test_two_process_ddp_uses_the_same_schedule(synth_imagenet, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    cmd = _train_cmd(synth_imagenet, single)
    subprocess.run(cmd, check=True, env=env, cwd=REPO, capture_output=True)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517"]
    ddp_cmd = torchrun + _train_cmd(synth_imagenet, ddp)[1:]
    ddp_cmd[ddp_cmd.index("--batch-size") + 1] = "4"  # same total batch: 2 x 4
    res = subprocess.run(ddp_cmd, env=env, cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = _log(single), _log(ddp)
    assert [r["iteration"] for r in a] == [r["iteration"] for r in b] == [12, 24]
    assert [r["drop_path"] for r in a] == [r["drop_path"] for r in b]
    assert [r["lr"] for r in a] == pytest.approx([r["lr"] for r in b])
    assert all(r["samples"] == 96 for r in b)  # both ranks' samples counted
    ckpt = load_checkpoint_file(ddp / "checkpoint.pth")
    assert not any(k.startswith("module.") for k in ckpt["model"])


def test_a_stop_at_an_epochs_last_step_finishes_the_epoch_first(synth_imagenet, tmp_path):
    """Stopped (SIGTERM, or runtime.stop_at_iter) at the last step of an epoch, the run evaluates and records that
    epoch before it stops, so the resumed run starts at the next epoch with nothing missing."""
    from dropbench.pretrain.train import Preempted

    # 96 images / batch 32 = 3 iterations per epoch: iteration 3 is epoch 0's last step
    args = _args(synth_imagenet, tmp_path / "run", epochs=2, batch=32)
    args.cfg_options = {**dict(args.cfg_options or {}), "runtime.stop_at_iter": 3}
    with pytest.raises(Preempted, match="after epoch 0"):
        run(build_config(args), args.out)
    assert [r["epoch"] for r in _log(tmp_path / "run")] == [0] and "val_top1" in _log(tmp_path / "run")[0]
    summary = run(build_config(args), args.out, resume="auto")
    assert [r["epoch"] for r in _log(tmp_path / "run")] == [0, 1] and summary["top1"] is not None


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "convnext_femto", "--dropout", "0.1"], "no dropout"),
        (["--drop-path", "0.1", "--drop-mode", "late", "--drop-schedule", "linear", "--cutoff-epoch", "1"], "linear"),
        (["--drop-path", "0.1", "--drop-mode", "early", "--cutoff-epoch", "9"], "cutoff_epoch"),
        (["--drop-mode", "early"], "needs a rate"),
        (["--variant", "earliest"], "unknown variant"),
    ],
)
def test_bad_flags_are_refused(synth_imagenet, tmp_path, extra, message):
    args = _args(synth_imagenet, tmp_path / "x", *extra)
    with pytest.raises(ValueError, match=message):
        build_config(args)


def test_paper_recipes_pretrain_in_float32_unless_amp_is_given(synth_imagenet, tmp_path):
    from dropbench.pretrain.train import resolve_precision

    cuda = torch.device("cuda")  # only sets backend flags: no GPU needed
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        for recipe in ("basic", "improved"):
            args = get_args_parser().parse_args(["--config", recipe, "--model", "vit_tiny", "--data",
                                                 str(synth_imagenet), "--out", str(tmp_path / "x")])
            cfg = build_config(args)
            assert cfg.runtime.amp is None and cfg.runtime.tf32 is True
            assert resolve_precision(cfg.runtime, cuda) == {"amp": "fp32", "tf32": True, "dtype": None}
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        for flag, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
            args = get_args_parser().parse_args(["--config", "basic", "--model", "vit_tiny", "--amp", flag, "--data",
                                                 str(synth_imagenet), "--out", str(tmp_path / "x")])
            cfg = build_config(args)
            assert cfg.runtime.amp == flag and resolve_precision(cfg.runtime, cuda)["dtype"] is dtype
            # no autocast off CUDA: the run says it trains in float32
            assert resolve_precision(cfg.runtime, torch.device("cpu")) == {"amp": "fp32", "tf32": False, "dtype": None}
        assert resolve_precision({"amp": True}, cuda)["amp"] == "fp16"  # configs written before the choice existed
        with pytest.raises(ValueError, match="runtime.amp must be one of"):
            resolve_precision({"amp": "fp8"}, cuda)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def test_missing_data_root_is_refused(tmp_path):
    args = _args(tmp_path / "nowhere", tmp_path / "x")
    with pytest.raises(ValueError, match="does not exist.*synth-imagenet"):
        run(build_config(args), args.out)
    assert not (tmp_path / "x").exists()  # nothing left behind


def test_model_is_required(synth_imagenet, tmp_path):
    args = get_args_parser().parse_args(["--config", "basic", "--data", str(synth_imagenet), "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="give --model"):
        build_config(args)


def test_existing_run_needs_resume(synth_imagenet, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "checkpoint.pth").write_bytes(b"")
    args = _args(synth_imagenet, tmp_path / "x")
    with pytest.raises(FileExistsError, match="--resume auto"):
        run(build_config(args), args.out)


def test_cli_reports_errors_in_one_line(tmp_path):
    res = subprocess.run([*CLI, "pretrain", "--config", "smoke", "--model", "vit_x",
                          "--data", str(tmp_path), "--out", str(tmp_path / "o")], cwd=REPO, capture_output=True,
                         text=True)
    assert res.returncode == 2
    assert "error: unknown model 'vit_x'" in res.stderr


def test_random_init_with_a_drop_setting_is_refused_with_the_fix(synth_imagenet, tmp_path):
    """``--epochs 0`` (the random-init reference) trains nothing: a drop setting beside it is named, not half-run."""
    with pytest.raises(ValueError, match="--epochs 0 writes the random-init reference.*leave out --dropout"):
        build_config(_args(synth_imagenet, tmp_path / "r", "--dropout", "0.1", epochs=0))
    assert not (tmp_path / "r").exists()
