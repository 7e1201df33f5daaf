"""``dropbench doctor`` and the fine-tuning paths' mmcv check: a CPU-only mmcv on a (simulated) GPU machine is caught
with the command that fixes it; on a machine without a GPU everything runs on the CPU."""

from __future__ import annotations

import io
import struct

import mmcv.ops
import pytest
import torch
from dropbench.benchmarks import cli, doctor
from dropbench.finetune.mm import adapt_to_device
from mmengine.config import Config


@pytest.fixture
def h100_with_cpu_mmcv(monkeypatch):
    """torch sees one H100 (compute capability 9.0); mmcv's ops were built without CUDA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (9, 0))
    monkeypatch.setattr(doctor, "gpus", lambda: [("NVIDIA H100 80GB HBM3", (9, 0))])
    monkeypatch.setattr(mmcv.ops, "get_compiling_cuda_version", lambda: "not available")


def test_cpu_only_mmcv_on_a_gpu_fails_with_the_fix(h100_with_cpu_mmcv):
    with pytest.raises(doctor.StackError, match=r"built with CPU ops only.*fix: .*TORCH_CUDA_ARCH_LIST='9.0' "
                                                r"FORCE_CUDA=1"):
        doctor.check_mmcv_device()


def test_doctor_reports_the_failure_and_exits_1(h100_with_cpu_mmcv):
    out = io.StringIO()
    assert doctor.run_doctor(out) == 1
    text = out.getvalue()
    assert "GPU 0        NVIDIA H100 80GB HBM3, compute capability 9.0" in text
    assert "[FAIL] coco, ade20k: mmcv 2.1.0 was built with CPU ops only" in text
    assert "fix: " in text and "FORCE_CUDA=1" in text.split("[FAIL] coco, ade20k")[1]


def test_finetuning_on_a_gpu_checks_mmcv_before_building_anything(h100_with_cpu_mmcv):
    cfg = Config(dict(optim_wrapper=dict(type="AmpOptimWrapper", optimizer=dict(type="AdamW", lr=1e-4))))
    with pytest.raises(doctor.StackError, match="FORCE_CUDA=1"):
        adapt_to_device(cfg)
    assert cfg.optim_wrapper.type == "AmpOptimWrapper"  # a GPU recipe is left as it is


def test_cli_turns_a_stack_error_into_exit_1(monkeypatch, capsys):
    def broken(*_):
        raise doctor.StackError("mmcv was built with CPU ops only; fix: FORCE_CUDA=1 make setup")

    monkeypatch.setattr(doctor, "run_doctor", broken)
    assert cli.main(["doctor"]) == 1
    assert "fix: FORCE_CUDA=1 make setup" in capsys.readouterr().err


def test_doctor_passes_on_this_machine_without_a_gpu(monkeypatch):
    monkeypatch.setattr(doctor, "gpus", lambda: [])
    out = io.StringIO()
    assert doctor.run_doctor(out) == 0, out.getvalue()
    assert "no GPU" in out.getvalue() and "[ok] coco, ade20k: mmcv roi_align and nms on cpu" in out.getvalue()


def _fatbin(entries: list[tuple[int, int]]) -> bytes:
    """A CUDA fat binary as nvcc lays it out: 16-byte header, then per entry a 64-byte header and its payload."""
    body = b""
    for kind, sm in entries:
        payload = b"\0" * 32
        body += struct.pack("<HHIQIIIIII", kind, 0x101, 64, len(payload), 0, 0, 0, sm, 0, 0) + b"\0" * 24 + payload
    return b"\x7fELF junk" + struct.pack("<IHHQ", 0xBA55ED50, 1, 16, len(body)) + body + b"tail"


def test_gpu_code_is_read_from_the_fat_binary(tmp_path):
    lib = tmp_path / "_ext.so"
    lib.write_bytes(_fatbin([(2, 90), (1, 80), (2, 86)]))
    archs = doctor._fatbin_archs(lib)
    assert archs == ["compute_80", "sm_86", "sm_90"]
    assert doctor._runs_arch(archs, (9, 0)) and doctor._runs_arch(archs, (8, 9))  # sm_86 runs on 8.9
    assert doctor._runs_arch(["sm_90"], (9, 0)) and not doctor._runs_arch(["sm_90"], (8, 0))
    assert not doctor._runs_arch(["sm_90"], (10, 0))  # machine code does not cross a major version
