"""Figures and a Markdown report of a results folder: drop-rate schedules, pretraining curves, Tables 4–6.

``dropbench report --results DIR`` writes ``DIR/report/``: ``schedules.png`` (the drop rate of every pretraining
variant over training, as the paper's Figure 2 draws them, from each run's recorded metadata),
``pretrain_<model>.png`` (train loss and val top-1 per epoch of each pretraining run, from its ``log.jsonl``),
``deltas_<table>.png`` (each variant's difference to its baseline with its paired bootstrap interval, a line at 0),
``probe_vs_finetune.png`` (frozen-feature probe top-1 against fine-tuned top-1 per model, variant and data set, with
the Spearman rank correlation across them: how far the cheap screen ranks checkpoints as fine-tuning does) and
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

__all__ = ["plot_deltas", "plot_pretraining_curves", "plot_probe_vs_finetune", "plot_schedules", "probe_vs_finetune",
           "write_report"]

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
        if epochs == 0:  # the random-init reference: no training, nothing to schedule
            continue
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
            if "train_loss" in recs:  # a random-init run logs its one evaluation only (epoch -1: a point at 0)
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


def plot_deltas(table: pd.DataFrame, title: str, path: str | os.PathLike) -> Path | None:
    """Each variant's difference to its backbone's baseline with its bootstrap interval, one panel per column.

    A row without per-sample outputs shows its difference alone (no bar); a vertical line marks 0. None when the
    table has no differences.
    """
    if table.empty or "delta" not in set(table.columns.get_level_values(1)):
        return None
    titles = [t for t in dict.fromkeys(table.columns.get_level_values(0)) if table[(t, "delta")].notna().any()]
    if not titles:
        return None
    rows = [idx for idx in table.index if any(pd.notna(table.loc[idx, (t, "delta")]) for t in titles)]
    labels = [f"{PAPER_MODELS[m].label if m in PAPER_MODELS else m}: {v}" for m, v in rows]
    fig, axes = plt.subplots(1, len(titles), figsize=(3.2 * len(titles) + 1.5, 0.45 * len(rows) + 1.4), sharey=True,
                             squeeze=False)
    y = list(range(len(rows)))[::-1]
    for ax, t in zip(axes[0], titles):
        d = [table.loc[idx, (t, "delta")] for idx in rows]
        lo = [table.loc[idx, (t, "ci_low")] if (t, "ci_low") in table else float("nan") for idx in rows]
        hi = [table.loc[idx, (t, "ci_high")] if (t, "ci_high") in table else float("nan") for idx in rows]
        for yi, di, low, h in zip(y, d, lo, hi):
            if pd.isna(di):
                continue
            has = not (pd.isna(low) or pd.isna(h))
            color = "C3" if has and (low > 0 or h < 0) else "C0"
            ax.errorbar([di], [yi], xerr=[[di - low], [h - di]] if has else None, fmt="o", color=color, capsize=3,
                        mfc=color if has else "white")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("difference to baseline", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, labels, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def probe_vs_finetune(results: pd.DataFrame) -> pd.DataFrame:
    """Per (model, variant, data set) with both a probe and a fine-tuning run: the mean over seeds of the probes'
    ``knn_top1`` and ``linear_top1`` and of the fine-tuned ``top1`` (columns ``knn``, ``linear``, ``finetuned``)."""
    cols = ["model", "variant", "dataset", "knn", "linear", "finetuned"]
    if results.empty or "task" not in results:
        return pd.DataFrame(columns=cols)
    ok = results[results["status"] == "ok"]
    keys = ["model", "variant", "dataset"]
    needed = {"metric:knn_top1", "metric:linear_top1", "metric:top1"}
    if not needed <= set(ok.columns):
        return pd.DataFrame(columns=cols)
    probe = ok[ok["task"] == "probe"].groupby(keys)[["metric:knn_top1", "metric:linear_top1"]].mean()
    fine = ok[ok["task"] == "cls"].groupby(keys)[["metric:top1"]].mean()
    joined = probe.join(fine, how="inner").dropna().reset_index()
    return joined.rename(columns={"metric:knn_top1": "knn", "metric:linear_top1": "linear",
                                  "metric:top1": "finetuned"})[cols]


def _spearman(x: pd.Series, y: pd.Series) -> float:
    return float(x.corr(y, method="spearman")) if len(x) > 2 else float("nan")


def plot_probe_vs_finetune(results: pd.DataFrame, path: str | os.PathLike) -> tuple[Path, str] | None:
    """Probe top-1 (kNN, linear) against fine-tuned top-1, one point per (model, variant, data set); the Spearman
    rank correlation of each probe with fine-tuning across those points in the legend. Returns (figure, a sentence
    giving the correlations), or None when no (model, variant, data set) has both."""
    rows = probe_vs_finetune(results)
    if rows.empty:
        return None
    rho = {kind: _spearman(rows[kind], rows["finetuned"]) for kind in ("knn", "linear")}
    fig, ax = plt.subplots(figsize=(5, 4.2))
    for kind, marker, label in (("knn", "o", "kNN (k = 20)"), ("linear", "s", "linear")):
        ax.scatter(rows["finetuned"], rows[kind], marker=marker, alpha=0.75,
                   label=f"{label}: Spearman ρ = {rho[kind]:.2f}")
    low = min(rows[["knn", "linear", "finetuned"]].min().min(), 100) - 2
    ax.plot([low, 100], [low, 100], color="k", lw=0.6, ls=":")
    ax.set(xlabel="fine-tuned top-1 (%)", ylabel="probe top-1 (%)",
           title=f"Probe vs fine-tuning ({len(rows)} model x variant x data set)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    text = (f"Spearman rank correlation with fine-tuned top-1 across {len(rows)} (model, variant, data set): kNN "
            f"{rho['knn']:.2f}, linear {rho['linear']:.2f}" + (" (needs 3 or more points)" if len(rows) < 3 else ""))
    return Path(path), text


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
    for problem in results.attrs.get("problems", []):  # named in the report and on the console; cells marked
        log.warning("unreadable result (its cell is marked, the run is not done): %s", problem)
        parts += [f"**warning**: unreadable result (its cell is marked, the run is not done): {problem}", ""]
    sched = plot_schedules(results, out / "schedules.png")
    if sched:
        parts += ["## Drop-rate schedules", "", f"![schedules]({sched.name})", ""]
    curves = plot_pretraining_curves(results, out)
    if curves:
        parts += ["## Pretraining curves", ""] + [f"![{p.stem}]({p.name})" for p in curves] + [""]
    probe = plot_probe_vs_finetune(results, out / "probe_vs_finetune.png")
    if probe:
        log.info("%s", probe[1])
        parts += ["## Can the probes screen checkpoints?", "", f"![probe vs fine-tuning]({probe[0].name})", "",
                  probe[1] + ".", ""]
    parts += ["## Tables", ""]
    for name, table in tables.items():
        parts += [render(table, "md", TABLES[name].title), ""]
        plot = plot_deltas(table, TABLES[name].title, out / f"deltas_{name}.png")
        if plot:
            parts += [f"![differences, {name}]({plot.name})", ""]
    return atomic_write(out / "report.md", "\n".join(parts))
