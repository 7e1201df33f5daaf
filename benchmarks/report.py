"""Figures and a Markdown report of a results folder: drop-rate schedules, pretraining curves, Tables 4–6.

``dropbench report --results DIR`` writes ``DIR/report/``: ``schedules.png`` (the drop rate of every pretraining
variant over training, as the paper's Figure 2 draws them, from each run's recorded metadata),
``pretrain_<model>.png`` (train loss and val top-1 per epoch of each pretraining run, from its ``log.jsonl``) and
``report.md`` with the figures and the tables.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from dropbench.benchmarks.results import collect_results  # noqa: E402
from dropbench.benchmarks.tables import TABLES, build_tables, load_reference, render  # noqa: E402
from dropbench.pretrain.io import atomic_write  # noqa: E402
from dropbench.pretrain.models import PAPER_MODELS  # noqa: E402
from dropbench.pretrain.schedules import DropSpec  # noqa: E402

__all__ = ["plot_pretraining_curves", "plot_schedules", "write_report"]

log = logging.getLogger(__name__)


def _pretrain_runs(results: pd.DataFrame) -> pd.DataFrame:
    if results.empty or "task" not in results:
        return results
    return results[(results["task"] == "pretrain") & (results["status"] == "ok")]


def plot_schedules(results: pd.DataFrame, path: str | os.PathLike, points: int = 200) -> Path | None:
    """Drop rate over training (x: epoch) of each distinct pretraining variant in ``results``."""
    runs = _pretrain_runs(results)
    if runs.empty:
        return None
    seen: dict[tuple[DropSpec, int], str] = {}
    for _, r in runs.iterrows():
        meta = {k.removeprefix("pretrain:"): v for k, v in r.items() if k.startswith("pretrain:") and pd.notna(v)}
        seen.setdefault((DropSpec.from_metadata(meta), int(meta["epochs"])), r["variant"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for (drop, epochs), variant in sorted(seen.items(), key=lambda kv: kv[1]):
        per_epoch = max(1, points // epochs)
        x = [i / per_epoch for i in range(epochs * per_epoch)]
        ax.plot(x, drop.rates(epochs, per_epoch), label=f"{variant} ({drop.describe()})", drawstyle="steps-post")
    ax.set_xlabel("epoch")
    ax.set_ylabel("drop rate")
    ax.set_title("Drop-rate schedules of the pretraining runs")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_pretraining_curves(results: pd.DataFrame, out_dir: str | os.PathLike) -> list[Path]:
    """One figure per model: train loss and val top-1 per epoch of each pretraining run (from ``log.jsonl``)."""
    runs = _pretrain_runs(results)
    paths = []
    for model, grp in (runs.groupby("model") if not runs.empty else []):
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
        for _, r in grp.sort_values("variant").iterrows():
            log_path = Path(r["log_path"]) if isinstance(r.get("log_path"), str) else None
            if log_path is None or not log_path.exists() or not log_path.stat().st_size:
                continue
            recs = pd.read_json(log_path, lines=True, convert_dates=False)
            a.plot(recs["epoch"] + 1, recs["train_loss"], marker="o", label=r["variant"])
            val = recs.dropna(subset=["val_top1"]) if "val_top1" in recs else recs.iloc[:0]
            b.plot(val["epoch"] + 1, val.get("val_top1", []), marker="o", label=r["variant"])
        label = PAPER_MODELS[model].label if model in PAPER_MODELS else model
        a.set(xlabel="epoch", ylabel="train loss", title=f"{label}: train loss")
        b.set(xlabel="epoch", ylabel="val top-1 (%)", title=f"{label}: val accuracy")
        a.legend(fontsize=7)
        b.legend(fontsize=7)
        fig.tight_layout()
        path = Path(out_dir) / f"pretrain_{model}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def write_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> Path:
    """Figures and tables of ``results_dir`` in ``out_dir`` (default ``<results_dir>/report``); returns report.md."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {results_dir} does not exist")
    out = Path(out_dir) if out_dir else results_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    results = collect_results(results_dir)
    tables = build_tables(results, load_reference())
    parts = [f"# dropbench report: {results_dir}", "",
             f"{len(results)} runs" + (f" ({(results['status'] == 'failed').sum()} failed)" if len(results) else ""),
             ""]
    sched = plot_schedules(results, out / "schedules.png")
    if sched:
        parts += ["## Drop-rate schedules", "", f"![schedules]({sched.name})", ""]
    curves = plot_pretraining_curves(results, out)
    if curves:
        parts += ["## Pretraining curves", ""] + [f"![{p.stem}]({p.name})" for p in curves] + [""]
    parts += ["## Tables", ""]
    for name, table in tables.items():
        parts += [render(table, "md", TABLES[name].title), ""]
    return atomic_write(out / "report.md", "\n".join(parts))
