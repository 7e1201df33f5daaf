"""Assemble a CUDA_HOME folder from NVIDIA's PyPI wheels (nvidia-cuda-nvcc, -cccl, -runtime, -crt, nvidia-nvvm).

The wheels unpack into ``site-packages/nvidia/cu13/{bin,include,lib,nvvm}``, possibly spread over several
site-packages folders; torch's extension builder wants one CUDA_HOME with ``bin/nvcc``, ``include/`` and
``lib64/libcudart.so``. This links them into one folder. Usage: ``python cuda_home.py OUT_DIR`` (prints OUT_DIR).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def toolkit_roots(major: str) -> list[Path]:
    """Every ``nvidia/cu<major>`` folder on sys.path (the wheels' namespace package)."""
    roots = []
    for entry in sys.path:
        root = Path(entry) / "nvidia" / f"cu{major}"
        if root.is_dir() and root not in roots:
            roots.append(root)
    return roots


def link_tree(sources: list[Path], dest: Path) -> None:
    """Link each entry of every source folder into ``dest`` (first one wins)."""
    dest.mkdir(parents=True, exist_ok=True)
    for src in sources:
        if not src.is_dir():
            continue
        for item in src.iterdir():
            target = dest / item.name
            if not target.exists() and not target.is_symlink():
                target.symlink_to(item.resolve())


def main(out: str, major: str = "13") -> None:
    """Build CUDA_HOME at ``out`` from the toolkit wheels of CUDA ``major``."""
    roots = toolkit_roots(major)
    home = Path(out)
    if not any((r / "bin" / "nvcc").is_file() for r in roots):
        sys.exit(f"error: no nvidia/cu{major}/bin/nvcc on sys.path; pip install 'nvidia-cuda-nvcc~={major}.0.0'")
    for sub in ("bin", "include", "nvvm"):
        link_tree([r / sub for r in roots], home / sub)
    lib = home / "lib64"
    link_tree([r / "lib" for r in roots], lib)
    for versioned in lib.glob("*.so.*"):  # the linker wants libcudart.so, the wheels ship libcudart.so.13
        plain = lib / (versioned.name.split(".so.")[0] + ".so")
        if not plain.exists():
            plain.symlink_to(versioned.resolve())
    if not (home / "lib").exists():
        (home / "lib").symlink_to("lib64")
    print(os.fspath(home))


if __name__ == "__main__":
    main(*sys.argv[1:])
