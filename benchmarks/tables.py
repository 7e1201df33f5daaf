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
from dropbench.benchmarks.stats import DEFAULT_B, DEFAULT_LEVEL, delta_intervals, interval_caption, mean_of
from dropbench.finetune.tasks import TASKS, Column, TableSpec
from dropbench.pretrain.data import PRETRAIN_DATASET
from dropbench.pretrain.io import atomic_write
from dropbench.pretrain.models import PAPER_MODELS
from dropbench.pretrain.train import RANDOM_INIT

__all__ = ["PRETRAIN_TABLE", "REFERENCE", "TABLES", "Column", "TableSpec", "build_table", "build_tables",
           "data_caption", "load_reference", "mean_groups", "recipe_caption", "render", "write_tables"]

REFERENCE = Path(os.environ.get("DROPBENCH_REFERENCE", Path(__file__).resolve().parents[1] / "results" / "reference"
                                / "paper.csv"))
VARIANT_ORDER = (RANDOM_INIT, "baseline", "standard-dropout", "standard-sd", "early-dropout", "early-sd",
                 "late-dropout", "late-sd")
VARIANT_LABELS = {RANDOM_INIT: "random init", "baseline": "no dropout", "standard-dropout": "standard dropout",
                  "standard-sd": "standard s.d.", "early-dropout": "early dropout", "early-sd": "early s.d.",
                  "late-dropout": "late dropout", "late-sd": "late s.d."}
DELTA_STATS = ("delta", "ci_low", "ci_high", "p")  # a row's difference to its backbone's baseline row
GAIN_STATS = ("gain", "gain_low", "gain_high", "gain_p")  # a row's gain over its backbone's random-init row
PRETRAIN_TABLE = TableSpec("pretrain", "ImageNet pretraining (top-1, %; paper: the run's recipe, basic if it has none)",
                           "pretrain", (Column("top-1", "top1", PRETRAIN_DATASET),), "imagenet",
                           reference_recipe="basic")


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


def build_table(results: pd.DataFrame, spec: TableSpec, reference: pd.DataFrame | None = None,
                intervals: bool = True, n_boot: int = DEFAULT_B, level: float = DEFAULT_LEVEL,
                baseline: str | None = None) -> pd.DataFrame:
    """Aggregate one table: a row per (model, variant), per column ``mean``, ``std``, ``n``, ``delta``, ``ci_low``,
    ``ci_high``, ``p``, ``paper``.

    ``delta`` is the difference of the row's mean to its backbone's baseline row; ``ci_low`` / ``ci_high`` / ``p`` its
    paired bootstrap interval and p-value (:func:`benchmarks.stats.delta_intervals`: the rows' per-sample outputs,
    resampled together; seeds first when a row has several), left empty for rows whose runs have no per-sample
    outputs. ``table.attrs["caption"]`` says how the intervals were computed.

    Args:
        results: :func:`~benchmarks.results.collect_results` output (failed runs are ignored).
        spec: which table.
        reference: :func:`load_reference` output, or None for no paper figures.
        intervals: compute the intervals (False: differences only).
        n_boot: bootstrap resamples (B); ``level``: interval level.
        baseline: the variant (row label) differences are taken to where a backbone has it (e.g. a ``dropbench
            evaluate`` label); otherwise ``baseline``, else ``standard-sd``.

    Returns:
        A DataFrame indexed by (model, variant) with a column MultiIndex (column title, statistic); an empty frame
        when no run belongs to the table. ``unreadable`` counts the runs of a cell whose ``result.json`` could not be
        read (``results.attrs["unreadable"]``): the cell is marked, never silently left out.
    """
    stats = ("mean", "std", "n", "delta", "ci_low", "ci_high", "p", "gain", "gain_low", "gain_high", "gain_p", "paper",
             "unreadable")
    cols = [c for c in spec.columns if not c.optional or (f"metric:{c.metric}" in results
                                                           and results[f"metric:{c.metric}"].notna().any())]
    means = mean_groups(spec, cols)
    titles = [c.title for c in cols] + list(means)
    empty = pd.DataFrame(columns=pd.MultiIndex.from_product([titles, stats]),
                         index=pd.MultiIndex.from_arrays([[], []], names=["model", "variant"]))
    titled = {c.dataset: c.title for c in cols}
    lost = [u for u in results.attrs.get("unreadable", []) if u.get("task") == spec.task
            and (u.get("dataset") in titled or None in titled)]
    if (results.empty or "task" not in results) and not lost:
        return empty
    runs = results[(results["task"] == spec.task) & (results["status"] == "ok")] if "task" in results else results
    if runs.empty and not lost:
        return empty
    measured = set() if runs.empty else set(zip(runs["model"], runs["variant"], strict=True))
    keys = sorted(measured | {(u["model"], u["variant"]) for u in lost},
                  key=lambda mv: (_model_key(mv[0]), _variant_key(mv[1])))
    table = pd.DataFrame(index=pd.MultiIndex.from_tuples(keys, names=["model", "variant"]),
                         columns=pd.MultiIndex.from_product([titles, stats]), dtype=float)
    for col in cols:
        metric = f"metric:{col.metric}"
        if runs.empty:
            break
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
    for u in lost:
        title = titled.get(u.get("dataset"), titled.get(None))
        cell = (u["model"], u["variant"]), (title, "unreadable")
        table.loc[cell] = (0 if pd.isna(table.loc[cell]) else table.loc[cell]) + 1
    table.attrs["data"] = _provenance(runs, cols, keys, means)
    table.attrs["recipe"] = recipe_caption(runs, spec)
    for title, group in means.items():
        values = table[[(c.title, "mean") for c in group]]
        complete = values.notna().all(axis=1)
        table[(title, "mean")] = values.mean(axis=1).where(complete)
        table[(title, "n")] = table[[(c.title, "n") for c in group]].min(axis=1).where(complete)
        papers = table[[(c.title, "paper") for c in group]]
        table[(title, "paper")] = papers.mean(axis=1).where(papers.notna().all(axis=1))
    for title in titles:
        for m in {k[0] for k in keys}:
            base = _baseline(table, m, baseline)
            if base is None:
                continue
            for v in table.loc[m].index:
                table.loc[(m, v), (title, "delta")] = table.loc[(m, v), (title, "mean")] - \
                    table.loc[(m, base), (title, "mean")]
            table.loc[(m, base), (title, "delta")] = float("nan")
    pairs = [(m, v, base) for m in dict.fromkeys(k[0] for k in keys) if (base := _baseline(table, m, baseline))
             for v in table.loc[m].index if v != base]
    if pairs and intervals:
        _add_intervals(table, runs, spec, cols, pairs, n_boot, level)
    elif pairs:
        table.attrs["caption"] = "Differences to the backbone's baseline row (intervals not computed)."
    # the gain over the backbone's random-init row (the same recipe from untrained weights): what pretraining gives
    gains = [(m, v, RANDOM_INIT) for m in dict.fromkeys(k[0] for k in keys) if RANDOM_INIT in table.loc[m].index
             for v in table.loc[m].index if v != RANDOM_INIT]
    for title in titles:
        for m, v, r in gains:
            table.loc[(m, v), (title, "gain")] = table.loc[(m, v), (title, "mean")] - table.loc[(m, r), (title, "mean")]
    if gains and intervals:
        _add_intervals(table, runs, spec, cols, gains, n_boot, level, GAIN_STATS)
    return table


def mean_groups(spec: TableSpec, cols: list[Column]) -> dict[str, list[Column]]:
    """A table's mean columns: title -> the shown columns it averages (``mean`` over all of them where
    ``mean_column``; one per ``metric_means`` entry over that metric's columns)."""
    groups = {"mean": list(cols)} if spec.mean_column else {}
    for title, metric in spec.metric_means:
        groups[title] = [c for c in cols if c.metric == metric]
    return {t: g for t, g in groups.items() if g}


def _generated(runs: pd.DataFrame) -> pd.Series:
    """Per run, the data sets it read that were generated (``data_generated``), as sets (empty where not recorded)."""
    col = runs["data_generated"] if "data_generated" in runs else pd.Series("", index=runs.index)
    return col.fillna("").map(lambda v: set(filter(None, str(v).split(","))))


def _provenance(runs: pd.DataFrame, cols: list[Column], keys: list[tuple[str, str]],
                means: dict[str, list[Column]]) -> dict:
    """Which data sets a table's runs read were generated, and which of its cells come from generated data.

    Returns ``{"generated": sorted names, "cells": {(model, variant, column title)}, "mixed": generated and real cells
    side by side, "unrecorded": runs without provenance (results of schema 1)}``.
    """
    generated = _generated(runs)
    recorded = runs["data_recorded"].fillna(False).astype(bool) if "data_recorded" in runs else \
        pd.Series(False, index=runs.index)
    cells, shown = set(), 0
    for m, v in keys:
        row = (runs["model"] == m) & (runs["variant"] == v)
        generated_cols = set()
        for col in cols:
            sel = row if col.dataset is None else row & (runs["dataset"] == col.dataset)
            metric = f"metric:{col.metric}"
            if metric in runs:
                sel = sel & runs[metric].notna()
            if not sel.any():
                continue
            shown += 1
            if generated[sel].map(bool).any():
                cells.add((m, v, col.title))
                generated_cols.add(col.title)
        for title, group in means.items():
            if generated_cols & {c.title for c in group}:
                cells.add((m, v, title))
    names = sorted(set().union(*generated)) if len(generated) else []
    return {"generated": names, "cells": cells, "mixed": 0 < len(cells) < shown,
            "unrecorded": int((~recorded).sum())}


def data_caption(table: pd.DataFrame, tex: bool = False) -> str:
    """What a table's caption says about its data: which data sets were generated, or that all were real."""
    info = table.attrs.get("data")
    if not info or table.empty:
        return ""
    dagger = r"$^\dagger$" if tex else "†"
    if info["mixed"]:
        text = (f"Cells marked {dagger} come from runs on data generated by dropbench ({', '.join(info['generated'])}; "
                f"stand-ins, not the real data sets), the others from real data.")
    elif info["generated"]:
        text = (f"Generated data (dropbench's stand-ins, not the real data sets, not comparable with the paper): "
                f"{', '.join(info['generated'])}.")
    elif info["unrecorded"] == 0:
        text = "All data sets real."
    else:
        text = ""
    if info["unrecorded"]:
        text += (" " if text else "") + (f"Data provenance not recorded for {info['unrecorded']} run(s) (results "
                                         f"written before dropbench recorded it): real or generated is unknown.")
    return text


def _values(runs: pd.DataFrame, column: str) -> list:
    if column not in runs:
        return []
    return sorted({v for v in runs[column] if v is not None and not (isinstance(v, float) and math.isnan(v))},
                  key=str)


def recipe_caption(runs: pd.DataFrame, spec: TableSpec) -> str:
    """What produced a table's rows, read from its runs: the pretraining recipe, the fine-tuning recipe and its
    drop-path rate, the seeds (several values are listed with ``/``)."""
    parts = []
    if spec.task == "pretrain":
        recipes = _values(runs, "recipe")
        if recipes:
            parts.append("recipe " + " / ".join(map(str, recipes)))
    else:
        pre = _values(runs, "pretrain:recipe")
        if pre:
            parts.append("pretraining " + " / ".join(map(str, pre)))
        fine = _values(runs, "recipe")
        rates = _values(runs, "drop_path")
        if fine or rates:
            stage = "probe" if spec.task == "probe" else "fine-tuning"  # the probe trains no backbone
            text = f"{stage} " + (" / ".join(map(str, fine)) or "recipe not recorded")
            if rates:
                text += ", drop path " + " / ".join(f"{r:g}" for r in rates)
                if 0.1 in rates:
                    text += " (0.1: dropbench's choice, no source for these models)"
            parts.append(text)
    seeds = _values(runs, "seed")
    if seeds:
        parts.append(("seed " if len(seeds) == 1 else "seeds ") + ", ".join(str(int(x)) for x in seeds))
    return "; ".join(parts)


def _add_intervals(table: pd.DataFrame, runs: pd.DataFrame, spec: TableSpec, cols: list[Column],
                   pairs: list[tuple[str, str, str]], n_boot: int, level: float,
                   names: tuple[str, str, str, str] = DELTA_STATS) -> None:
    """Fill the interval and p-value of every difference that per-sample outputs support: ``names`` are the
    difference's statistic and those three (``delta``, ``ci_low``, ``ci_high``, ``p``: differences to the baseline
    row, whose call also writes the caption; :data:`GAIN_STATS`: gains over the random-init row)."""
    diff, low, high, pval = names
    found: dict[str, dict] = {}
    for col in cols:
        found[col.title] = delta_intervals(runs, col.metric, col.dataset, pairs, col.scale, n_boot, level)
    for title, group in mean_groups(spec, cols).items():  # a mean over independent test sets: its draws are the
        found[title] = {(m, v): mean_of([found[c.title][(m, v)] for c in group])  # mean of theirs
                        if all(found[c.title].get((m, v)) for c in group) else None for m, v, _ in pairs}
    missing = False
    for title, cells in found.items():
        for (m, v), r in cells.items():
            if pd.isna(table.loc[(m, v), (title, diff)]):
                continue
            if r is None:
                missing = True
                continue
            table.loc[(m, v), (title, low)] = r.ci_low
            table.loc[(m, v), (title, high)] = r.ci_high
            table.loc[(m, v), (title, pval)] = r.p
    if names != DELTA_STATS:
        return
    any_interval = any(r is not None for cells in found.values() for r in cells.values())
    seed_counts = [table.loc[(m, x), (c.title, "n")] for m, v, base in pairs for x in (v, base) for c in cols]
    table.attrs["caption"] = interval_caption(n_boot, level, [n for n in seed_counts if pd.notna(n)], missing,
                                              any_interval)


def _baseline(table: pd.DataFrame, model: str, preferred: str | None = None) -> str | None:
    """The row differences are taken to: ``preferred`` if given and present, else ``baseline``, else ``standard-sd``
    (late s.d.'s baseline)."""
    variants = list(table.loc[model].index)
    for candidate in (preferred, "baseline", "standard-sd"):
        if candidate in variants and len(variants) > 1:
            return candidate
    return None


def build_tables(results: pd.DataFrame, reference: pd.DataFrame | None = None, intervals: bool = True,
                 n_boot: int = DEFAULT_B, level: float = DEFAULT_LEVEL, baseline: str | None = None
                 ) -> dict[str, pd.DataFrame]:
    """Every table of :data:`TABLES` (possibly empty); see :func:`build_table` for the intervals and ``baseline``."""
    return {name: build_table(results, spec, reference, intervals, n_boot, level, baseline)
            for name, spec in TABLES.items()}


def _fmt(x: float, digits: int = 1) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _signed(x: float, tex: bool) -> str:
    return f"{'+' if x >= 0 else '$-$' if tex else '−'}{_fmt(abs(x))}"


def _bounds(lo: float, hi: float, tex: bool) -> tuple[str, str]:
    """An interval's ends as shown: one decimal, a minus sign for negatives (``$-$`` in LaTeX), never ``-0.0``."""
    shown = [_fmt(abs(x)) for x in (lo, hi)]
    return tuple(s if x >= 0 or s == _fmt(0.0) else ("$-$" if tex else "−") + s for x, s in zip((lo, hi), shown,
                                                                                              strict=True))


def _has(table: pd.DataFrame, title: str, stat: str) -> bool:
    return (title, stat) in table and table[(title, stat)].notna().any()


def _cell(table: pd.DataFrame, idx: tuple, title: str, tex: bool) -> str:
    """``mean ± std (n=k)``; in LaTeX followed by the difference and its interval (``+0.4 {\\scriptsize[...]}``)."""
    mean = table.loc[idx, (title, "mean")]
    lost = table.loc[idx, (title, "unreadable")] if (title, "unreadable") in table.columns else float("nan")
    if not pd.isna(lost) and lost > 0:  # a result.json that could not be read: say so, never show a partial mean
        return f"unreadable ({int(lost)} result file{'s' if lost > 1 else ''})"
    if pd.isna(mean):
        return "--" if tex else "–"
    text = _fmt(mean)
    info = table.attrs.get("data") or {}
    if info.get("mixed") and (*idx, title) in info["cells"]:
        text += r"$^\dagger$" if tex else " †"
    std, n = table.loc[idx, (title, "std")], table.loc[idx, (title, "n")]
    if not pd.isna(n) and n > 1:
        pm = r"$\pm$" if tex else "±"
        text += f" {pm} {_fmt(std)} (n={int(n)})" if not pd.isna(std) else f" (n={int(n)})"  # the mean column: no std
    delta = table.loc[idx, (title, "delta")]
    if tex and not pd.isna(delta):
        lo, hi = table.loc[idx, (title, "ci_low")], table.loc[idx, (title, "ci_high")]
        if pd.isna(lo):
            text += f" ({_signed(delta, tex)})"
        else:
            mark = "$^*$" if lo > 0 or hi < 0 else ""
            lo_s, hi_s = _bounds(lo, hi, tex)
            text += f" {_signed(delta, tex)}{mark} {{\\scriptsize[{lo_s}, {hi_s}]}}"
    return text


def _delta_cells(table: pd.DataFrame, idx: tuple, title: str) -> dict[str, str]:
    """Markdown's ``delta`` (``*`` when the interval excludes 0), ``ci_low``, ``ci_high`` and ``p`` cells."""
    delta, lo, hi, p = (table.loc[idx, (title, s)] for s in ("delta", "ci_low", "ci_high", "p"))
    out = {f"{title} delta": "–" if pd.isna(delta) else _signed(delta, False) + ("*" if lo > 0 or hi < 0 else "")}
    if _has(table, title, "ci_low"):
        out[f"{title} ci_low"] = "–" if pd.isna(lo) else _fmt(lo).replace("-", "−")
        out[f"{title} ci_high"] = "–" if pd.isna(hi) else _fmt(hi).replace("-", "−")
        out[f"{title} p"] = "–" if pd.isna(p) else f"{p:.3f}"
    return out


def _gain_cell(table: pd.DataFrame, idx: tuple, title: str, tex: bool) -> str:
    """The gain over the random-init row: ``+8.1* [5.0, 11.2]`` (``*``: the interval excludes 0)."""
    gain, lo, hi = (table.loc[idx, (title, s)] for s in GAIN_STATS[:3])
    if pd.isna(gain):
        return "--" if tex else "–"
    if pd.isna(lo):
        return _signed(gain, tex)
    lo_s, hi_s = _bounds(lo, hi, tex)
    return f"{_signed(gain, tex)}{'*' if lo > 0 or hi < 0 else ''} [{lo_s}, {hi_s}]"


def _display(table: pd.DataFrame, tex: bool = False) -> pd.DataFrame:
    """The table as the strings shown: Markdown text (with the delta / interval columns), or LaTeX (escaped labels,
    ``--`` for a missing value, the difference and its interval inside the cell)."""
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
            if not tex and _has(table, t, "delta"):
                row.update(_delta_cells(table, idx, t))
            if _has(table, t, "gain"):
                row[text(f"{t} vs random init")] = _gain_cell(table, idx, t, tex)
            if table[(t, "paper")].notna().any():
                row[text(f"{t} (paper)")] = _fmt(table.loc[idx, (t, "paper")]) or dash
        rows.append(row)
    return pd.DataFrame(rows)


def _tex_escape(s: str) -> str:
    return s.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def render(table: pd.DataFrame, fmt: str = "md", title: str | None = None) -> str:
    """A table as Markdown (``md``), LaTeX booktabs (``tex``) or CSV (``csv``: numbers, one column per statistic).

    Markdown has ``delta``, ``ci_low``, ``ci_high`` and ``p`` columns per measured column (the last three when some
    row has an interval), LaTeX the difference and interval in the cell; both end with ``table.attrs["caption"]``.
    Where a backbone has a ``random init`` row, both have a ``<column> vs random init`` column: each row's gain over
    it, with its interval.
    """
    if fmt not in ("md", "tex", "csv"):
        raise ValueError(f"format must be md, tex or csv, got {fmt!r}")
    caption = table.attrs.get("caption")
    recipe = table.attrs.get("recipe")
    if title and recipe:
        title = f"{title} — {recipe}"
    if fmt == "csv":
        flat = table.copy()
        flat.columns = [t if s == "mean" else f"{t} {s}" for t, s in flat.columns]
        flat = flat.dropna(axis=1, how="all").reset_index()
        info = table.attrs.get("data") or {}
        if info.get("generated"):  # which cells come from generated data, per row (names of its columns)
            flat["generated"] = [" ".join(t for t in dict.fromkeys(c[0] for c in table.columns)
                                          if (m, v, t) in info["cells"] and pd.notna(table.loc[(m, v), (t, "mean")]))
                                 for m, v in table.index]
        return flat.to_csv(index=False, float_format="%.4g")
    note = data_caption(table, tex=fmt == "tex")  # which data sets were generated
    if fmt == "md":
        head = f"**{title}**\n\n" if title else ""
        if table.empty:
            return head + "(no results)\n"
        foot = "".join(f"\n{x}\n" for x in (caption, note) if x)  # under the table, as a caption's sentences
        return head + _display(table).to_markdown(index=False, disable_numparse=True) + "\n" + foot
    if table.empty:
        return f"% {_tex_escape(title or '')}: no results\n"
    shown = _display(table, tex=True)
    full = " ".join(x for x in (title and title.rstrip(".") + ".", caption) if x)
    text = " ".join(x for x in (_tex_escape(full), note) if x)  # (the data note: plain words and $^\dagger$)
    return shown.style.hide(axis="index").to_latex(
        column_format="ll" + "r" * (shown.shape[1] - 2), position="t", position_float="centering", hrules=True,
        caption=text or None)


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
