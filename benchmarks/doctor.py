"""``dropbench doctor``: print the stack and check that each task can run on the devices this process sees.

The checks that matter on a GPU are mmcv's: mmdet's RoIAlign and NMS (and mmcv's other ops) must be compiled for
CUDA, for torch's CUDA version and for the GPU's compute capability; a CPU-only build fails at the first detection
step with "not implemented for CUDA". :func:`check_mmcv_device` runs ``roi_align`` and ``nms`` on a small tensor of
the device and names the command that fixes a wrong build; the COCO and ADE20K fine-tuning paths call it before they
build a model on a GPU (``finetune.mm.adapt_to_device``), so a wrong build fails in a second.
"""

from __future__ import annotations

import importlib
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["Check", "StackError", "check_mmcv_device", "gpus", "mmcv_build", "run_doctor", "setup_command"]

_ROOT = Path(__file__).resolve().parents[1]  # the checkout (editable install): tools/setup_env.sh lives there
_FATBIN_MAGIC = b"\x50\xed\x55\xba"  # 0xBA55ED50, little endian: a CUDA fat binary header


class StackError(RuntimeError):
    """The installed stack cannot run the task on this device; the message names the fix."""


@dataclass
class Check:
    """One line of the doctor's report: what was checked, whether it passed, and the fix if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def setup_command(cuda: bool, archs: list[str] | None = None) -> str:
    """The command that (re)builds the environment of this interpreter with CPU or CUDA mmcv ops."""
    env = []
    if cuda:
        if archs:
            env.append(f"TORCH_CUDA_ARCH_LIST='{';'.join(archs)}'")
        env.append("FORCE_CUDA=1")
    script = _ROOT / "tools" / "setup_env.sh"
    if Path(sys.prefix).resolve() == (_ROOT / ".venv").resolve() and (_ROOT / "Makefile").is_file():
        return " ".join([f"cd {_ROOT} &&", *env, "make setup"])
    return " ".join([*env, f"DROPBENCH_VENV={sys.prefix}", f"bash {script}"])


def gpus() -> list[tuple[str, tuple[int, int]]]:
    """(name, compute capability) of each visible CUDA device."""
    if not torch.cuda.is_available():
        return []
    return [(torch.cuda.get_device_name(i), torch.cuda.get_device_capability(i))
            for i in range(torch.cuda.device_count())]


def _fatbin_archs(path: Path) -> list[str]:
    """The GPU code in a shared library's CUDA fat binaries: ``sm_90`` (machine code) or ``compute_90`` (PTX)."""
    data = path.read_bytes()
    found: set[str] = set()
    pos = data.find(_FATBIN_MAGIC)
    while pos >= 0:
        header_size = int.from_bytes(data[pos + 6:pos + 8], "little")
        fat_size = int.from_bytes(data[pos + 8:pos + 16], "little")
        entry, end = pos + header_size, pos + header_size + fat_size
        while header_size == 16 and entry + 32 <= min(end, len(data)):
            kind = int.from_bytes(data[entry:entry + 2], "little")
            entry_header = int.from_bytes(data[entry + 4:entry + 8], "little")
            payload = int.from_bytes(data[entry + 8:entry + 16], "little")
            sm = int.from_bytes(data[entry + 28:entry + 32], "little")
            if kind in (1, 2) and 10 <= sm < 1000 and entry_header >= 32:
                found.add(f"{'compute' if kind == 1 else 'sm'}_{sm}")
            if entry_header < 32 or payload == 0:
                break
            entry += entry_header + payload
        pos = data.find(_FATBIN_MAGIC, pos + 4)
    return sorted(found, key=lambda a: (int(a.split("_")[1]), a))


def mmcv_build() -> dict:
    """How the installed mmcv was built: ``version``, ``ops`` (compiled ops load), ``cuda`` (CUDA version of its ops
    or None), ``compiler``, ``archs`` (GPU code in ``mmcv._ext``), ``kind`` (as the set-up recorded it), ``error``."""
    info: dict = {"version": None, "ops": False, "cuda": None, "compiler": None, "archs": [], "kind": None,
                  "error": None}
    try:
        mmcv = importlib.import_module("mmcv")
        info["version"] = mmcv.__version__
        ops = importlib.import_module("mmcv.ops")
        info["ops"] = True
        cuda = ops.get_compiling_cuda_version()
        info["cuda"] = None if cuda == "not available" else cuda
        info["compiler"] = ops.get_compiler_version()
        ext = importlib.import_module("mmcv._ext")
        if info["cuda"] and getattr(ext, "__file__", None):
            info["archs"] = _fatbin_archs(Path(ext.__file__))
    except Exception as e:  # an import error of the build is the finding itself
        info["error"] = f"{type(e).__name__}: {e}"
    kind_file = Path(sys.prefix) / ".dropbench-mmcv-kind"
    if kind_file.is_file():
        info["kind"] = kind_file.read_text().strip()
    return info


def _runs_arch(archs: list[str], cap: tuple[int, int]) -> bool:
    """Whether GPU code for compute capability ``cap`` is present: its own machine code, or PTX of an older one."""
    want = cap[0] * 10 + cap[1]
    sm = {int(a.split("_")[1]) for a in archs if a.startswith("sm_")}
    ptx = {int(a.split("_")[1]) for a in archs if a.startswith("compute_")}
    # machine code runs on the same major with an equal or higher minor; PTX is compiled for any later GPU
    return any(s // 10 == want // 10 and s <= want for s in sm) or any(p <= want for p in ptx)


def _run_ops(device: torch.device) -> None:
    """mmcv's ``roi_align`` and ``nms`` on a small tensor of ``device``, checked against known answers."""
    from mmcv.ops import nms, roi_align

    feat = torch.arange(16.0, device=device).reshape(1, 1, 4, 4)
    rois = torch.tensor([[0.0, 0.0, 0.0, 4.0, 4.0]], device=device)
    pooled = roi_align(feat, rois, (1, 1), 1.0, 0, "avg", True)
    if pooled.shape != (1, 1, 1, 1) or abs(pooled.item() - 7.5) > 1e-4:
        raise StackError(f"mmcv roi_align on {device} gave {pooled.flatten().tolist()}, expected [7.5]")
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32, device=device)
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7], device=device), 0.5)
    if keep.tolist() != [0, 2]:
        raise StackError(f"mmcv nms on {device} kept {keep.tolist()}, expected [0, 2]")


def check_mmcv_device(device: torch.device | str | None = None) -> None:
    """Raise :class:`StackError` with the fixing command unless mmcv's ops run on ``device`` (default: cuda:0 if a
    GPU is visible, else the CPU)."""
    seen = gpus()
    device = torch.device(device or ("cuda" if seen else "cpu"))
    build = mmcv_build()
    if not build["ops"]:
        raise StackError(f"mmcv's compiled ops do not load ({build['error']}); fix: "
                         f"{setup_command(device.type == 'cuda')}")
    if device.type == "cuda":
        caps = sorted({cap for _, cap in seen})
        archs = [f"{a}.{b}" for a, b in caps]
        fix = setup_command(True, archs)
        if build["cuda"] is None:
            raise StackError(f"mmcv {build['version']} was built with CPU ops only, so detection and segmentation "
                             f"cannot run on the GPU; fix: {fix}")
        want = torch.version.cuda or ""
        if build["cuda"].split(".")[:2] != want.split(".")[:2]:
            raise StackError(f"mmcv's ops were built for CUDA {build['cuda']}, torch uses CUDA {want}; fix: {fix}")
        missing = [a for a in caps if build["archs"] and not _runs_arch(build["archs"], a)]
        if missing:
            raise StackError(f"mmcv's ops hold GPU code for {', '.join(build['archs'])}, not for compute "
                             f"capability {', '.join(f'{a}.{b}' for a, b in missing)} of this GPU; fix: {fix}")
    try:
        _run_ops(device)
    except StackError:
        raise
    except Exception as e:
        raise StackError(f"mmcv's roi_align / nms fail on {device}: {type(e).__name__}: {str(e).splitlines()[0]}; "
                         f"fix: {setup_command(device.type == 'cuda')}") from e


def _version(module: str) -> str:
    try:
        return importlib.import_module(module).__version__
    except Exception as e:
        return f"missing ({type(e).__name__}: {e})"


def _stack_lines() -> list[str]:
    build = mmcv_build()
    if build["cuda"]:
        archs = ", ".join(build["archs"]) or "unknown"
        ops = f"CUDA {build['cuda']} ops (GPU code: {archs}), {build['compiler']}"
    elif build["ops"]:
        ops = f"CPU ops only, {build['compiler']}"
    else:
        ops = f"no compiled ops ({build['error']})"
    lines = [
        f"python       {platform.python_version()} ({sys.executable})",
        f"torch        {torch.__version__} (CUDA {torch.version.cuda or 'none'}, cuDNN "
        f"{torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else 'none'})",
        f"timm         {_version('timm')}",
        f"mmengine     {_version('mmengine')}",
        f"mmcv         {build['version'] or 'missing'}: {ops}"
        + (f"; set-up kind {build['kind']}" if build["kind"] else ""),
        f"mmdet        {_version('mmdet')}",
        f"mmseg        {_version('mmseg')}",
    ]
    seen = gpus()
    if seen:
        for i, (name, (a, b)) in enumerate(seen):
            lines.append(f"GPU {i}        {name}, compute capability {a}.{b}")
        nccl = ".".join(map(str, torch.cuda.nccl.version())) if torch.distributed.is_nccl_available() else "none"
        lines.append(f"NCCL         {nccl}")
    else:
        lines.append("GPU          no GPU (torch.cuda.is_available() is False)")
    return lines


def _task_checks(device: torch.device) -> list[Check]:
    checks = []
    for module in ("timm", "mmdet", "mmseg"):
        try:
            importlib.import_module(module)
        except Exception as e:
            checks.append(Check(f"import {module}", False, f"{type(e).__name__}: {e}", setup_command(False)))
    try:  # pretraining and classification: a tiny timm model, forward and backward on the device
        import timm

        model = timm.create_model("test_vit", num_classes=3).to(device)
        model(torch.zeros(2, 3, 160, 160, device=device)).sum().backward()
        checks.append(Check("pretrain, cls", True, f"timm forward/backward on {device}"))
    except Exception as e:
        checks.append(Check("pretrain, cls", False, f"timm on {device}: {type(e).__name__}: {e}",
                            setup_command(device.type == "cuda")))
    try:  # COCO (RoIAlign, NMS) and ADE20K (mmcv's compiled ops)
        check_mmcv_device(device)
        checks.append(Check("coco, ade20k", True, f"mmcv roi_align and nms on {device}"))
    except StackError as e:
        detail, _, fix = str(e).partition("; fix: ")
        checks.append(Check("coco, ade20k", False, detail, fix))
    return checks


def run_doctor(out=None) -> int:
    """Print the stack and the task checks; 0 if every task can run here, 1 otherwise (with the fixes)."""
    out = out or sys.stdout
    for line in _stack_lines():
        print(line, file=out)
    seen = gpus()
    device = torch.device("cuda" if seen else "cpu")
    checks = _task_checks(device)
    print(f"\nchecks on {device}:", file=out)
    for c in checks:
        print(f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}", file=out)
        if not c.ok:
            print(f"         fix: {c.fix}", file=out)
    if not seen:
        print(f"\nno GPU: every task runs on the CPU here. A GPU run needs torch's CUDA {torch.version.cuda} build "
              f"(installed: {torch.__version__}) and mmcv's CUDA ops for CUDA {torch.version.cuda} and the GPU's "
              f"compute capability: on the GPU node, `{setup_command(True)}` builds them (or a cross-build here: "
              f"`{setup_command(True, ['9.0'])}` for H100 / H200); then run `dropbench doctor` there.", file=out)
    bad = [c for c in checks if not c.ok]
    print(f"\n{'all tasks can run' if not bad else f'{len(bad)} check(s) failed'} on {device}", file=out)
    return 1 if bad else 0

