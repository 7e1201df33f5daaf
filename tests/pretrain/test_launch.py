"""SLURM submission through submitit: argument handling, and a real job on submitit's local cluster."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
from dropbench.pretrain.launch import SlurmTask, strip_flag, strip_slurm_args, submit_slurm


def test_submission_flags_are_stripped_from_the_rerun_command():
    argv = ["--config", "basic", "--slurm", "--nodes", "4", "--gpus-per-node=8", "--partition", "learn",
            "--timeout-min", "60", "--out", "x"]
    assert strip_slurm_args(argv) == ["--config", "basic", "--out", "x"]
    assert strip_flag(["--resume", "a", "--x"], "--resume") == ["--x"]


def test_requeue_resumes_from_the_latest_checkpoint():
    from dropbench.benchmarks.cli import main

    task = SlurmTask(main, ["pretrain", "--out", "o", "--resume", "some.pth"])
    again = task.checkpoint()
    assert again.function.argv == ["pretrain", "--out", "o", "--resume", "auto"]
    assert again.function.entry is main
    with pytest.raises(TypeError, match="argv list"):
        SlurmTask("dropbench.benchmarks.cli:main", [])  # entries are functions, not names to import


def test_importing_submitit_leaves_open_log_files_open(tmp_path):
    """submitit's own logging set-up would close every handler (a suite's run.log, mmengine's log file) on import."""
    script = f"""
import logging, os
os.environ.pop("SUBMITIT_LOG_LEVEL", None)
handler = logging.FileHandler({str(tmp_path / "run.log")!r})
logging.getLogger("x").addHandler(handler)
from dropbench.pretrain.launch import import_submitit
import_submitit()
assert handler.stream is not None and not handler.stream.closed, "the log file was closed"
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_pretrain_job_runs_on_submitits_local_cluster(synth_imagenet, tmp_path):
    out = tmp_path / "run"
    argv = ["pretrain", "--config", "smoke", "--model", "vit_tiny", "--data", str(synth_imagenet), "--out", str(out),
            "--epochs", "1", "--batch-size", "16", "--no-progress", "--slurm", "--gpus-per-node", "0",
            "--cfg-options", "data.input_size=32", "data.num_workers=0"]
    args = argparse.Namespace(out=str(out), nodes=1, gpus_per_node=0, timeout_min=10, partition=None,
                              slurm_comment="")
    from dropbench.benchmarks.cli import main

    job = submit_slurm(main, argv, args, cluster="local")
    assert job.result() == 0, job.stderr()
    assert (out / "result.json").exists() and (out / "checkpoint.pth").exists()
    assert (out / "slurm").is_dir()
