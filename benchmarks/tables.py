"""Tables 4–6 and the pretraining table, from a results folder, as Markdown, LaTeX (booktabs) or CSV.

Pure functions of DataFrames: :func:`benchmarks.results.collect_results` gives one row per run; :func:`build_table`
aggregates the runs of one table by (backbone, pretraining variant) over seeds (mean, sample std, count), adds the
difference to the backbone's baseline row and the paper's figure where ``results/reference/paper.csv`` has one;
:func:`render` prints it. Each downstream task brings its table (:attr:`finetune.tasks.Task.table`); the pretraining
table is defined here. Scales: mmdet's AP (0–1) is shown x100 as the paper does; mIoU and accuracies are percent.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pandas as pd
from dropbench.finetune.tasks import TASKS, Column, TableSpec
from dropbench.pretrain.io import atomic_write
from dropbench.pretrain.models import PAPER_MODELS

__all__ = ["PRETRAIN_TABLE", "REFERENCE", "TABLES", "Column", "TableSpec", "build_table", "build_tables",
           "load_reference", "render", "write_tables"]

REFERENCE = Path(os.environ.get("DROPBENCH_REFERENCE", Path(__file__).resolve().parents[1] / "results" / "reference"
                                / "paper.csv"))
VARIANT_ORDER = ("baseline", "standard-dropout", "standard-sd", "early-dropout", "early-sd", "late-dropout", "late-sd")
VARIANT_LABELS = {"baseline": "no dropout", "standard-dropout": "standard dropout", "standard-sd": "standard s.d.",
                  "early-dropout": "early dropout", "early-sd": "early s.d.", "late-dropout": "late dropout",
                  "late-sd": "late s.d."}
PRETRAIN_TABLE = TableSpec("pretrain", "ImageNet pretraining (top-1, %; paper: the run's recipe, basic if it has none)",
                           "pretrain", (Column("top-1", "top1", "imagenet"),), "imagenet", reference_recipe="basic")


class _Tables(Mapping[str, TableSpec]):
    """The pretraining table, then each registered downstream task's table in the registry's order (read at use)."""

    def _specs(self) -> dict[str, TableSpec]:
        return {PRETRAIN_TABLE.name: PRETRAIN_TABLE, **{task.table.name: task.table for task in TASKS.values()}}

    def __getitem__(self, name: str) -> TableSpec:
        return self._specs()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs())

    def __len__(self) -> int:
        return len(self._specs())


TABLES: Mapping[str, TableSpec] = _Tables()


def load_reference(path: str | os.PathLike = REFERENCE) -> pd.DataFrame:
    """The paper's published figures (rows with an empty value are kept out)."""
    ref = pd.read_csv(path, dtype={"recipe": str}, keep_default_na=False, na_values={"value": [""]})
    return ref[ref["value"].notna()].reset_index(drop=True)


def _variant_key(v: str) -> tuple[int, str]:
    return (VARIANT_ORDER.index(v), v) if v in VARIANT_ORDER else (len(VARIANT_ORDER), v)


def _model_key(m: str) -> tuple[int, str]:
    names = list(PAPER_MODELS)
    return (names.index(m), m) if m in names else (len(names), m)


def build_table(results: pd.DataFrame, spec: TableSpec, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Aggregate one table: a row per (model, variant), per column ``mean``, ``std``, ``n``, ``delta``, ``paper``.

    Args:
        results: :func:`~benchmarks.results.collect_results` output (failed runs are ignored).
        spec: which table.
        reference: :func:`load_reference` output, or None for no paper figures.

    Returns:
        A DataFrame indexed by (model, variant) with a column MultiIndex (column title, statistic); an empty frame
        when no run belongs to the table.
    """
    stats = ("mean", "std", "n", "delta", "paper")
    cols = [c for c in spec.columns if not c.optional or (f"metric:{c.metric}" in results
                                                           and results[f"metric:{c.metric}"].notna().any())]
    titles = [c.title for c in cols] + (["mean"] if spec.mean_column else [])
    empty = pd.DataFrame(columns=pd.MultiIndex.from_product([titles, stats]),
                         index=pd.MultiIndex.from_arrays([[], []], names=["model", "variant"]))
    if results.empty or "task" not in results:
        return empty
    runs = results[(results["task"] == spec.task) & (results["status"] == "ok")]
    if runs.empty:
        return empty
    keys = sorted({(m, v) for m, v in zip(runs["model"], runs["variant"], strict=True)},
                  key=lambda mv: (_model_key(mv[0]), _variant_key(mv[1])))
    table = pd.DataFrame(index=pd.MultiIndex.from_tuples(keys, names=["model", "variant"]),
                         columns=pd.MultiIndex.from_product([titles, stats]), dtype=float)
    for col in cols:
        metric = f"metric:{col.metric}"
        sel = runs if col.dataset is None else runs[runs["dataset"] == col.dataset]
        if metric not in sel:
            continue
        sel = sel[sel[metric].notna()]
        agg = (sel[metric].astype(float) * col.scale).groupby([sel["model"], sel["variant"]]).agg(
            ["mean", "std", "count"])  # std: the sample std (ddof 1), NaN for one run
        for stat, name in (("mean", "mean"), ("std", "std"), ("count", "n")):
            table.loc[agg.index, (col.title, name)] = agg[stat].astype(float)
        if reference is not None and not reference.empty:
            ref = reference[(reference["table"] == spec.reference) & (reference["metric"] == col.metric)]
            if col.dataset is not None:
                ref = ref[ref["dataset"] == col.dataset]
            for (m, v) in keys:
                hit = ref[(ref["model"] == m) & (ref["variant"] == v)]
                if spec.reference_recipe:
                    used = set(runs[(runs["model"] == m) & (runs["variant"] == v)].get("recipe", pd.Series()))
                    recipe = used.pop() if len(used) == 1 and used <= set(hit["recipe"]) else spec.reference_recipe
                    hit = hit[hit["recipe"] == recipe]
                if len(hit):
                    table.loc[(m, v), (col.title, "paper")] = float(hit["value"].iloc[0])
    if spec.mean_column:
        means = table[[(c.title, "mean") for c in cols]]
        complete = means.notna().all(axis=1)
        table[("mean", "mean")] = means.mean(axis=1).where(complete)
        table[("mean", "n")] = table[[(c.title, "n") for c in cols]].min(axis=1).where(complete)
        papers = table[[(c.title, "paper") for c in cols]]
        table[("mean", "paper")] = papers.mean(axis=1).where(papers.notna().all(axis=1))
    for title in titles:
        for m in {k[0] for k in keys}:
            base = _baseline(table, m)
            if base is None:
                continue
            for v in table.loc[m].index:
                table.loc[(m, v), (title, "delta")] = table.loc[(m, v), (title, "mean")] - \
                    table.loc[(m, base), (title, "mean")]
            table.loc[(m, base), (title, "delta")] = float("nan")
    return table


def _baseline(table: pd.DataFrame, model: str) -> str | None:
    """The row differences are taken to: ``baseline`` if present, else ``standard-sd`` (late s.d.'s baseline)."""
    variants = list(table.loc[model].index)
    for candidate in ("baseline", "standard-sd"):
        if candidate in variants and len(variants) > 1:
            return candidate
    return None


def build_tables(results: pd.DataFrame, reference: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Every table of :data:`TABLES` (possibly empty)."""
    return {name: build_table(results, spec, reference) for name, spec in TABLES.items()}


def _fmt(x: float, digits: int = 1) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _cell(table: pd.DataFrame, idx: tuple, title: str, tex: bool) -> str:
    mean = table.loc[idx, (title, "mean")]
    if pd.isna(mean):
        return "–"
    text = _fmt(mean)
    std, n = table.loc[idx, (title, "std")], table.loc[idx, (title, "n")]
    if not pd.isna(n) and n > 1:
        pm = r"$\pm$" if tex else "±"
        text += f" {pm} {_fmt(std)} (n={int(n)})"
    delta = table.loc[idx, (title, "delta")]
    if not pd.isna(delta):
        text += f" ({'+' if delta >= 0 else '−' if not tex else '$-$'}{_fmt(abs(delta))})"
    return text


def _display(table: pd.DataFrame, tex: bool = False) -> pd.DataFrame:
    """The table as the strings shown: Markdown text, or LaTeX (escaped labels, ``--`` for a missing value)."""
    titles = list(dict.fromkeys(t for t, _ in table.columns))
    text = _tex_escape if tex else str
    dash = "--" if tex else "–"
    rows = []
    for idx in table.index:
        m, v = idx
        row = {"backbone": text(PAPER_MODELS[m].label if m in PAPER_MODELS else m),
               "pretraining": text(VARIANT_LABELS.get(v, v))}
        for t in titles:
            row[text(t)] = _cell(table, idx, t, tex=tex).replace("–", dash)
            if table[(t, "paper")].notna().any():
                row[text(f"{t} (paper)")] = _fmt(table.loc[idx, (t, "paper")]) or dash
        rows.append(row)
    return pd.DataFrame(rows)


def _tex_escape(s: str) -> str:
    return s.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def render(table: pd.DataFrame, fmt: str = "md", title: str | None = None) -> str:
    """A table as Markdown (``md``), LaTeX booktabs (``tex``) or CSV (``csv``: numbers, one column per statistic)."""
    if fmt not in ("md", "tex", "csv"):
        raise ValueError(f"format must be md, tex or csv, got {fmt!r}")
    if fmt == "csv":
        flat = table.copy()
        flat.columns = [t if s == "mean" else f"{t} {s}" for t, s in flat.columns]
        flat = flat.dropna(axis=1, how="all").reset_index()
        return flat.to_csv(index=False, float_format="%.4g")
    if fmt == "md":
        head = f"**{title}**\n\n" if title else ""
        if table.empty:
            return head + "(no results)\n"
        return head + _display(table).to_markdown(index=False, disable_numparse=True) + "\n"
    if table.empty:
        return f"% {_tex_escape(title or '')}: no results\n"
    shown = _display(table, tex=True)
    return shown.style.hide(axis="index").to_latex(
        column_format="ll" + "r" * (shown.shape[1] - 2), position="t", position_float="centering", hrules=True,
        caption=_tex_escape(title) if title else None)


def write_tables(tables: dict[str, pd.DataFrame], out_dir: str | os.PathLike,
                 formats: tuple[str, ...] = ("md", "tex", "csv")) -> list[Path]:
    """Write ``<name>.<fmt>`` for every table and format into ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, table in tables.items():
        for fmt in formats:
            paths.append(atomic_write(out_dir / f"{name}.{fmt}", render(table, fmt, TABLES[name].title)))
    return paths
