"""How long `make demo` takes, task by task, and whether its tables still measure transfer (issue 17's figures).

    .venv/bin/python tools/bench_demo.py [--out DIR] [--keep]

Runs what `make demo` runs (``dropbench suite run --preset smoke``, then ``dropbench report``) into a fresh folder
and prints: the wall clock of each command, each task's share (the runs' own ``wall_time_s`` from their
``result.json``; what is left of the suite's wall clock is data generation, the preflight and the tables), and each
pretrained row's gain over its backbone's random-init row in Tables 4-6 and the probe table, with the paired 95 %
interval (``*``: it excludes 0). Run it on idle cores: it measures the machine as much as the code.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from dropbench.benchmarks.results import read_result
from dropbench.benchmarks.suite import plan

CLI = [sys.executable, "-m", "dropbench.benchmarks.cli"]


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="suite folder (default: a temporary one); must not hold a finished smoke suite")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_demo_")) / "smoke"
    try:
        suite_s = _timed([*CLI, "suite", "run", "--preset", "smoke", "--out", str(out), "--no-progress"])
        report_s = _timed([*CLI, "report", "--results", str(out)])
        p = plan("smoke", out)
        rows = [(r.task, read_result(p.run_dir(r)).wall_time_s) for r in p.runs]
        per_task = pd.DataFrame(rows, columns=["task", "s"]).groupby("task", sort=False)["s"].agg(["count", "sum"])
        per_task.loc["data, preflight, tables"] = (float("nan"), suite_s - per_task["sum"].sum())
        per_task.loc["report (figures)"] = (float("nan"), report_s)
        per_task["share %"] = 100 * per_task["sum"] / (suite_s + report_s)
        print(f"make demo's two commands: {suite_s + report_s:.0f} s (suite run {suite_s:.0f} s, report "
              f"{report_s:.0f} s) for {len(p.runs)} runs\n")
        print(per_task.rename(columns={"count": "runs", "sum": "seconds"}).to_markdown(floatfmt=".0f"))
        print("\nGain of each pretrained row over random init (paired 95 % interval over the test samples):")
        for name in ("table4", "table5", "table6", "probe"):
            table = pd.read_csv(out / "tables" / f"{name}.csv")
            for rec in table[table["variant"] != "random-init"].to_dict("records"):
                cells = [f"{c[:-5]} {rec[c]:+.1f}{'*' if rec[c + '_low'] > 0 else ''} "
                         f"[{rec[c + '_low']:.1f}, {rec[c + '_high']:.1f}]"
                         for c in table.columns if c.endswith(" gain")]
                print(f"  {name} {rec['model']} {rec['variant']}: " + "; ".join(cells))
    finally:
        if not args.out and not args.keep:
            shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
