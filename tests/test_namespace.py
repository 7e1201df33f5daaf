"""The three top-level folders install under one namespace: nothing generic lands in a user's site-packages."""

from __future__ import annotations

import subprocess
import sys


def test_installed_under_dropbench_only(tmp_path):
    code = ("import importlib.util as u, dropbench.pretrain, dropbench.finetune.datasets, dropbench.benchmarks.cli\n"
            "print([n for n in ('pretrain', 'finetune', 'benchmarks') if u.find_spec(n) is not None])")
    # from another folder than the repo root, so only what is installed can be imported
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "[]"
