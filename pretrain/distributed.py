"""Process-group set-up for single-process, torchrun (DDP) and SLURM (submitit) runs, and small helpers around it.

torchrun and :func:`pretrain.launch.submit_slurm` both export ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and starts the process group: NCCL on GPUs,
gloo on CPUs. Without them the run is a single process.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["LAUNCHERS", "DistInfo", "all_reduce_sum", "barrier", "cleanup", "init_distributed", "setup_launcher"]

LAUNCHERS = ("none", "pytorch", "slurm")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Start the process group if the environment describes one; pick the device.

    Args:
        device: ``auto`` (the local GPU if there is one, else the CPU), ``cpu`` or ``cuda``.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but torch sees no GPU")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method="env://")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over processes in place (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def cleanup() -> None:
    """Tear the process group down if one was started."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def setup_launcher(launcher: str) -> None:
    """Export the torch.distributed variables ``pretrain.train.run`` and mmengine read, as the launcher defines them
    (``--launcher`` of the fine-tuning commands); a launcher whose variables are missing is refused, naming the fix.

    ``none``: one process, unless ``RANK`` / ``WORLD_SIZE`` are already exported (torchrun, or the CLI's ``--slurm``
    submission through submitit, do that). ``pytorch``: torchrun must have exported them. ``slurm``: inside an
    ``srun`` task, ``SLURM_PROCID`` / ``SLURM_NTASKS`` / ``SLURM_LOCALID`` become ``RANK`` / ``WORLD_SIZE`` /
    ``LOCAL_RANK`` (unless ``RANK`` is set), the first host of ``SLURM_NODELIST`` the master.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; choose one of: {', '.join(LAUNCHERS)}")
    env = os.environ
    if launcher == "pytorch":
        missing = [k for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in env]
        if missing:
            raise ValueError(f"--launcher pytorch needs torchrun's variables ({', '.join(missing)} unset); start with "
                             "`torchrun --nproc_per_node N -m dropbench.benchmarks.cli finetune ... "
                             "--launcher pytorch`")
    elif launcher == "slurm" and "RANK" not in env:
        if "SLURM_PROCID" not in env:
            raise ValueError("--launcher slurm needs SLURM_PROCID (run inside `srun`), or RANK already exported")
        env["RANK"] = env["SLURM_PROCID"]
        env["WORLD_SIZE"] = env.get("SLURM_NTASKS", "1")
        env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
        env.setdefault("MASTER_PORT", str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000))
        if "MASTER_ADDR" not in env:
            env["MASTER_ADDR"] = _first_slurm_host(env.get("SLURM_NODELIST", ""))


def _first_slurm_host(nodelist: str) -> str:
    if not nodelist:
        return "127.0.0.1"
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], check=True, capture_output=True, text=True)
        return out.stdout.split()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        raise ValueError(f"cannot resolve SLURM_NODELIST {nodelist!r} with scontrol; export MASTER_ADDR") from None
