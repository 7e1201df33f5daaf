"""SLURM submission through submitit, for every stage (pretraining, fine-tuning, suite runs).

A job is one :class:`SlurmTask`: an entry point (a module-level function taking an argv list, given by the caller, so
that this module never names the layers above it; pickled by reference) and its arguments. On the
cluster each task exports the torch.distributed variables from submitit's ``JobEnvironment`` (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), so the same code path as torchrun runs. On
pre-emption or time-out submitit calls :meth:`SlurmTask.checkpoint`, which requeues the task with ``--resume auto``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["SlurmTask", "slurm_executor", "strip_slurm_args", "submit_slurm"]

_SLURM_FLAGS = {"--slurm": 0, "--nodes": 1, "--gpus-per-node": 1, "--partition": 1, "--timeout-min": 1,
                "--slurm-comment": 1}


class SlurmTask:
    """A picklable callable that runs ``entry(argv)`` inside a SLURM task with torch.distributed set up.

    ``entry`` must be a module-level function (pickled as a reference to it, imported again on the node).
    """

    def __init__(self, entry: Callable[[list[str]], Any], argv: list[str]) -> None:
        if not callable(entry):
            raise TypeError(f"a SLURM task's entry must be a function taking an argv list, got {entry!r}")
        self.entry, self.argv = entry, list(argv)

    def __call__(self) -> Any:
        submitit = import_submitit()
        env = submitit.JobEnvironment()
        os.environ.update(
            RANK=str(env.global_rank),
            WORLD_SIZE=str(env.num_tasks),
            LOCAL_RANK=str(env.local_rank),
            MASTER_ADDR=env.hostnames[0],
            MASTER_PORT=os.environ.get("MASTER_PORT", str(20000 + int(env.job_id.split("_")[0]) % 20000)),
        )
        return self.entry(self.argv)

    def checkpoint(self) -> Any:
        """Requeue on pre-emption / time-out, resuming from the run's latest checkpoint."""
        submitit = import_submitit()
        argv = strip_flag(self.argv, "--resume") + ["--resume", "auto"]
        return submitit.helpers.DelayedSubmission(SlurmTask(self.entry, argv))


def import_submitit() -> Any:
    """``submitit``, imported without its logging set-up.

    On import submitit calls ``logging.config.dictConfig``, which closes every handler already open in the process:
    a suite's ``run.log`` and the mmengine runner's log file would go dead mid-run. ``SUBMITIT_LOG_LEVEL=NOCONFIG``
    (submitit's own switch) skips that; its messages then reach the root logger like everyone else's.
    """
    os.environ.setdefault("SUBMITIT_LOG_LEVEL", "NOCONFIG")
    import submitit

    return submitit


def strip_flag(argv: list[str], flag: str, nargs: int = 1) -> list[str]:
    """``argv`` without ``flag`` and its values (also the ``--flag=value`` form)."""
    out, skip = [], 0
    for a in argv:
        if skip:
            skip -= 1
            continue
        if a == flag:
            skip = nargs
            continue
        if a.startswith(flag + "="):
            continue
        out.append(a)
    return out


def strip_slurm_args(argv: list[str]) -> list[str]:
    """The arguments a SLURM task reruns: the command line without the submission flags."""
    for flag, nargs in _SLURM_FLAGS.items():
        argv = strip_flag(argv, flag, nargs)
    return argv


def slurm_executor(folder: str | Path, nodes: int, gpus_per_node: int, timeout_min: int,
                   partition: str | None = None, comment: str = "", cluster: str | None = None) -> Any:
    """A submitit executor with one task per GPU (``cluster='local'`` runs jobs here, for testing)."""
    submitit = import_submitit()
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster, slurm_max_num_timeout=30)
    tasks = max(gpus_per_node, 1)
    params: dict[str, Any] = dict(timeout_min=timeout_min, nodes=nodes, tasks_per_node=tasks,
                                  gpus_per_node=gpus_per_node, cpus_per_task=10, mem_gb=40 * tasks, name="dropbench")
    if executor.cluster == "slurm":
        params.update(slurm_signal_delay_s=120)
        if partition:
            params["slurm_partition"] = partition
        if comment:
            params["slurm_comment"] = comment
    executor.update_parameters(**params)
    return executor


def submit_slurm(entry: Callable[[list[str]], Any], argv: list[str], args: argparse.Namespace,
                 cluster: str | None = None) -> Any:
    """Submit ``entry(argv)`` (e.g. the ``dropbench`` CLI's ``main`` with ``["pretrain", ...]``) as a SLURM job.

    ``args`` carries the submission flags (``out``, ``nodes``, ``gpus_per_node``, ``timeout_min``, ``partition``,
    ``slurm_comment``); they are stripped from ``argv``. Returns the submitit job.
    """
    out = Path(args.out)
    executor = slurm_executor(out / "slurm", args.nodes, args.gpus_per_node, args.timeout_min, args.partition,
                              args.slurm_comment, cluster=cluster)
    return executor.submit(SlurmTask(entry, strip_slurm_args(list(argv))))
