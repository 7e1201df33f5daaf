"""Is the gain real? The paired bootstrap of a metric difference between two runs over the same test images.

Each resample draws the test images with replacement once and applies the draw to both runs' per-image states
(:mod:`finetune.samples`: weights, image ``i`` drawn ``k`` times counts ``k`` times): paired. With several seeds per
run the seeds are drawn first (hierarchical: seeds, then images), seed ``i`` of one run together with seed ``i`` of
the other when both have the same number of seeds. :func:`paired_bootstrap` returns, per metric, the difference
(first run minus second), its percentile interval and a two-sided bootstrap p-value; :func:`format_interval` prints
it as the tables do.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from dropbench.benchmarks.results import RESULT_FILE, RunResult, read_result
from dropbench.finetune.samples import DetectionState, SampleError, SampleState, load_states

__all__ = ["DEFAULT_B", "DEFAULT_LEVEL", "BootstrapResult", "Comparison", "StatsError", "check_comparable",
           "compare_runs", "delta_intervals", "format_interval", "group_interval", "interval_caption", "mean_of",
           "paired_bootstrap", "resample_weights", "run_states", "state_for"]

DEFAULT_B = 1000
DEFAULT_LEVEL = 0.95
# at most this many (resample x image) weights are held at once; the block size depends on the image count only, so
# a bootstrap's draws (and its result) do not depend on how the work is split
_BLOCK_ELEMENTS = 2_000_000


class StatsError(SampleError):
    """Runs that cannot be compared: other images, other kinds of output, other metrics."""


def resample_weights(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``size`` bootstrap resamples of ``n`` images as weights: row ``b`` counts how often each image was drawn.

    Returns:
        float64 array (size, n); every row sums to ``n``.
    """
    idx = rng.integers(0, n, size=(size, n))
    idx += (np.arange(size, dtype=idx.dtype) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)


# --------------------------------------------------------------------------------------------------------- bootstrap
@dataclass(frozen=True)
class BootstrapResult:
    """The paired bootstrap of one metric's difference (first run minus second run), on the metric's own scale.

    Attributes:
        metric: the metric's name.
        delta: mean over the first run's seeds minus mean over the second's, on the whole test set (unrounded).
        ci_low, ci_high: the percentile interval at ``level``.
        p: two-sided bootstrap p-value of "no difference": ``min(1, 2 min(#(d* <= 0) + 1, #(d* >= 0) + 1) / (B + 1))``
            over the resampled differences d*.
        level: interval level; ``n_boot``: resamples; ``n_images``: test images.
        seeds: (first, second) seed counts; ``paired_seeds``: whether seed i of one run was drawn with seed i of the
            other.
    """

    metric: str
    delta: float
    ci_low: float
    ci_high: float
    p: float
    level: float
    n_boot: int
    n_images: int
    seeds: tuple[int, int]
    paired_seeds: bool
    draws: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def excludes_zero(self) -> bool:
        """The interval lies entirely above or below 0."""
        return self.ci_low > 0 or self.ci_high < 0

    def scaled(self, factor: float) -> BootstrapResult:
        """The same result with the difference and interval multiplied by ``factor`` (AP 0–1 shown x100)."""
        lo, hi = sorted((self.ci_low * factor, self.ci_high * factor))
        return BootstrapResult(self.metric, self.delta * factor, lo, hi, self.p, self.level, self.n_boot,
                               self.n_images, self.seeds, self.paired_seeds,
                               None if self.draws is None else self.draws * factor)


def _as_runs(x: SampleState | Sequence[SampleState]) -> list[SampleState]:
    return [x] if isinstance(x, SampleState) else list(x)


def check_comparable(a: Sequence[SampleState], b: Sequence[SampleState], names: tuple[str, str] = ("A", "B")) -> None:
    """Refuse states that do not describe the same test images with the same kind of metric."""
    for side, runs in zip(names, (a, b)):
        if not runs:
            raise StatsError(f"{side}: no per-sample state to compare")
    ref = a[0]
    for side, runs in zip(names, (a, b)):
        for s in runs:
            if type(s) is not type(ref):
                raise StatsError(f"{names[0]} holds {ref.kind} outputs but {side} holds {s.kind} outputs")
            if s.metric_names() != ref.metric_names():
                raise StatsError(f"{names[0]} reports {list(ref.metric_names())} but {side} reports "
                                 f"{list(s.metric_names())}")
            if len(s.image_ids) != len(ref.image_ids) or set(s.image_ids.tolist()) != set(ref.image_ids.tolist()):
                only_a = sorted(set(ref.image_ids.tolist()) - set(s.image_ids.tolist()))
                only_b = sorted(set(s.image_ids.tolist()) - set(ref.image_ids.tolist()))
                raise StatsError(
                    f"{names[0]} and {side} were evaluated on different test images ({len(ref.image_ids)} vs "
                    f"{len(s.image_ids)} ids; only in {names[0]}: {only_a[:5]}{' ...' if len(only_a) > 5 else ''}, "
                    f"only in {side}: {only_b[:5]}{' ...' if len(only_b) > 5 else ''})")
    if isinstance(ref, DetectionState):
        for side, runs in zip(names, (a, b)):
            for s in runs:
                if not np.array_equal(s.cat_ids, ref.cat_ids) or not np.allclose(s.iou_thrs, ref.iou_thrs):
                    raise StatsError(f"{names[0]} and {side} were evaluated with other categories or IoU thresholds")


def paired_bootstrap(
    a: SampleState | Sequence[SampleState],
    b: SampleState | Sequence[SampleState],
    metrics: Sequence[str] | None = None,
    n_boot: int = DEFAULT_B,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
    names: tuple[str, str] = ("A", "B"),
) -> dict[str, BootstrapResult]:
    """Paired (hierarchical with seeds) bootstrap of ``metric(a) - metric(b)`` over the shared test images.

    Each resample draws the test images with replacement once and weights both runs' per-image states with the same
    draw. When a side has several seeds (one state each), the seeds are drawn with replacement first and the side's
    metric is the mean over the drawn seeds; seed i of ``a`` is drawn together with seed i of ``b`` when both sides have
    the same number of seeds (pass them in seed order), independently otherwise.

    Args:
        a, b: one state per seed of each run (or a single state).
        metrics: which metrics (default: all of the state's).
        n_boot: resamples (B).
        level: interval level.
        seed: the bootstrap's random seed (the result is a deterministic function of it).
        names: the runs' names for error messages.

    Returns:
        metric name -> :class:`BootstrapResult`.
    """
    runs_a, runs_b = _as_runs(a), _as_runs(b)
    check_comparable(runs_a, runs_b, names)
    ids = runs_a[0].image_ids
    runs_a = [s if np.array_equal(s.image_ids, ids) else s.reorder(ids) for s in runs_a]
    runs_b = [s if np.array_equal(s.image_ids, ids) else s.reorder(ids) for s in runs_b]
    known = runs_a[0].metric_names()
    metrics = list(metrics or known)
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise StatsError(f"metrics {unknown} are not among the per-sample metrics {list(known)}")
    if n_boot < 1 or not 0 < level < 1:
        raise StatsError(f"need n_boot >= 1 and 0 < level < 1, got {n_boot} and {level}")
    n, sa, sb = len(ids), len(runs_a), len(runs_b)
    paired_seeds = sa == sb
    img_seq, seed_seq = np.random.SeedSequence(seed).spawn(2)
    rng_img, rng_seed = np.random.default_rng(img_seq), np.random.default_rng(seed_seq)

    point_a = [s.point() for s in runs_a]
    point_b = [s.point() for s in runs_b]
    deltas = {m: np.empty(n_boot) for m in metrics}
    block = max(1, min(n_boot, _BLOCK_ELEMENTS // max(n, 1)))
    for start in range(0, n_boot, block):
        size = min(block, n_boot - start)
        w = resample_weights(rng_img, n, size)
        va = _seed_weights(rng_seed, sa, size)
        vb = va if paired_seeds else _seed_weights(rng_seed, sb, size)
        got_a = [s.resample(w) for s in runs_a]
        got_b = [s.resample(w) for s in runs_b]
        for m in metrics:
            ma = (np.stack([g[m] for g in got_a], axis=1) * va).sum(axis=1) / sa
            mb = (np.stack([g[m] for g in got_b], axis=1) * vb).sum(axis=1) / sb
            deltas[m][start:start + size] = ma - mb
    out = {}
    for m in metrics:
        d = deltas[m][np.isfinite(deltas[m])]
        if not len(d):
            raise StatsError(f"{m}: undefined on every resample (no test image has what the metric needs)")
        lo, hi = np.quantile(d, [(1 - level) / 2, 1 - (1 - level) / 2])
        p = min(1.0, 2 * min(np.count_nonzero(d <= 0) + 1, np.count_nonzero(d >= 0) + 1) / (len(d) + 1))
        delta = float(np.mean([x[m] for x in point_a]) - np.mean([x[m] for x in point_b]))
        out[m] = BootstrapResult(m, delta, float(lo), float(hi), float(p), level, len(d), n, (sa, sb), paired_seeds,
                                 d)
    return out


def _seed_weights(rng: np.random.Generator, s: int, size: int) -> np.ndarray:
    if s == 1:
        return np.ones((size, 1))
    return resample_weights(rng, s, size)


def format_interval(r: BootstrapResult, digits: int = 1, tex: bool = False) -> str:
    """``+0.4 [−0.1, 0.9]`` (LaTeX: ``+0.4 {\\scriptsize[$-$0.1, 0.9]}``), a ``*`` when the interval excludes 0."""
    minus = "$-$" if tex else "−"

    def num(x: float, sign: bool = False) -> str:
        if math.isnan(x):
            return "nan"
        s = f"{abs(x):.{digits}f}"
        neg = x < 0 and float(s) != 0
        return (minus if neg else "+" if sign else "") + s

    mark = "*" if r.excludes_zero else ""
    if tex:
        return f"{num(r.delta, True)}{mark} {{\\scriptsize[{num(r.ci_low)}, {num(r.ci_high)}]}}"
    return f"{num(r.delta, True)}{mark} [{num(r.ci_low)}, {num(r.ci_high)}]"


# -------------------------------------------------------------------------------------------------------------- runs
def run_states(result: RunResult, source: str | os.PathLike | None = None) -> dict[str, SampleState] | None:
    """The per-sample states a run's ``result.json`` names (``extra["samples"]``), or None when it names none.

    Args:
        result: the run's result.
        source: its ``result.json`` (or run folder); default ``result.run_dir``.
    """
    name = (result.extra or {}).get("samples")
    if not name:
        return None
    base = Path(source) if source is not None else Path(result.run_dir or ".")
    if base.name == RESULT_FILE or base.is_file():
        base = base.parent
    path = base / name
    if not path.is_file():
        raise StatsError(f"{base}: result.json names per-sample outputs {name!r} but the file is missing")
    return _load_cached(path)


_STATE_CACHE: dict[tuple[str, float, int], dict[str, SampleState]] = {}


def _load_cached(path: Path) -> dict[str, SampleState]:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime, stat.st_size)
    if key not in _STATE_CACHE:
        if len(_STATE_CACHE) > 64:
            _STATE_CACHE.clear()
        _STATE_CACHE[key] = load_states(path)
    return _STATE_CACHE[key]


def state_for(states: dict[str, SampleState], metric: str) -> SampleState | None:
    """The state that recomputes ``metric`` (None if none does)."""
    for state in states.values():
        if metric in state.metric_names():
            return state
    return None


@dataclass(frozen=True)
class Comparison:
    """Two runs (or two groups of seeds) of one task and data set compared metric by metric (:func:`compare_runs`).

    ``values``: metric -> (mean of the first, mean of the second) as their ``result.json`` report them.
    """

    name_a: str
    name_b: str
    task: str
    dataset: str
    results: dict[str, BootstrapResult]
    values: dict[str, tuple[float, float]]

    def render(self) -> str:
        """A Markdown table (metric, both values, delta, ci_low, ci_high, p) and a line saying how it was computed."""
        r0 = next(iter(self.results.values()))
        lines = [f"**{self.name_a}** vs **{self.name_b}** ({self.task}, {self.dataset}, {r0.n_images} test images)",
                 "", "| metric | A | B | delta | ci_low | ci_high | p |", "|:--|--:|--:|--:|--:|--:|--:|"]
        for m, r in self.results.items():
            va, vb = self.values.get(m, (float("nan"), float("nan")))
            lines.append(f"| {m} | {va:.4g} | {vb:.4g} | {r.delta:+.4g}{'*' if r.excludes_zero else ''} | "
                         f"{r.ci_low:.4g} | {r.ci_high:.4g} | {r.p:.3f} |")
        seeds = (f"seeds resampled first ({r0.seeds[0]} vs {r0.seeds[1]}, {'paired' if r0.paired_seeds else 'apart'})"
                 if max(r0.seeds) > 1 else "one run each")
        lines += ["", f"A - B with {100 * r0.level:g} % paired bootstrap intervals over the test images (B = "
                      f"{r0.n_boot}; {seeds}); * the interval excludes 0. Metrics on the engines' own scales."]
        return "\n".join(lines) + "\n"


def compare_runs(run_a: str | os.PathLike | Sequence[str | os.PathLike],
                 run_b: str | os.PathLike | Sequence[str | os.PathLike], metrics: Sequence[str] | None = None,
                 n_boot: int = DEFAULT_B, level: float = DEFAULT_LEVEL, seed: int = 0,
                 names: tuple[str, str] | None = None) -> Comparison:
    """Paired bootstrap of every shared metric of two runs (``a - b``), from their per-sample outputs.

    Args:
        run_a, run_b: run folders (or their ``result.json``), or lists of them (one run per seed, in seed order:
            resampled hierarchically, seeds first).
        metrics: which metrics (default: every metric both runs report that the per-sample outputs recompute).
        names: how to call the two sides in messages (default: the paths).

    Raises:
        StatsError: the runs are of different tasks or data sets, one has no per-sample outputs, or they were
            evaluated on different test images; the message names both runs and what differs.
    """
    group_a = [run_a] if isinstance(run_a, (str, os.PathLike)) else list(run_a)
    group_b = [run_b] if isinstance(run_b, (str, os.PathLike)) else list(run_b)
    if not group_a or not group_b:
        raise StatsError("nothing to compare: a side has no runs")
    name_a, name_b = names or (", ".join(map(str, group_a)), ", ".join(map(str, group_b)))
    read = {side: [(str(p), read_result(p)) for p in group] for side, group in (("a", group_a), ("b", group_b))}
    first_a, first_b = read["a"][0], read["b"][0]
    for name, r in (*read["a"], *read["b"]):
        if r.status != "ok":
            raise StatsError(f"{name} is a failed run ({r.error}); compare finished runs")
    for (na, ra), (nb, rb) in [(first_a, x) for x in read["a"][1:] + read["b"]]:
        if (ra.task, ra.dataset) != (rb.task, rb.dataset):
            raise StatsError(f"{na} is a {ra.task} run on {ra.dataset} but {nb} is a {rb.task} run on "
                             f"{rb.dataset}: compare runs of one task and data set")
    states: dict[str, list[dict[str, SampleState]]] = {"a": [], "b": []}
    for side, other in (("a", name_b), ("b", name_a)):
        for name, r in read[side]:
            s = run_states(r, name)
            if not s:
                raise StatsError(f"{name} has no per-sample outputs (a run from before they were kept): re-run it to "
                                 f"compare it with {other}")
            states[side].append(s)
    ra, rb = first_a[1], first_b[1]
    shared = [m for m in ra.metrics if all(m in r.metrics for _, r in read["a"] + read["b"])]
    wanted = list(metrics) if metrics else shared
    out: dict[str, BootstrapResult] = {}
    groups: dict[str, list[str]] = {}
    for m in wanted:
        if any(state_for(s, m) is None for s in states["a"] + states["b"]):
            if metrics:
                raise StatsError(f"{m}: not recomputable from the per-sample outputs of {name_a} and {name_b}")
            continue
        groups.setdefault(next(k for k, st in states["a"][0].items() if m in st.metric_names()), []).append(m)
    if not groups:
        raise StatsError(f"{name_a} and {name_b} share no metric that their per-sample outputs recompute")
    for ms in groups.values():
        sa = [state_for(s, ms[0]) for s in states["a"]]
        sb = [state_for(s, ms[0]) for s in states["b"]]
        out.update(paired_bootstrap(sa, sb, metrics=ms, n_boot=n_boot, level=level, seed=seed,
                                    names=(name_a, name_b)))
    values = {m: (float(np.mean([r.metrics[m] for _, r in read["a"] if m in r.metrics])),
                  float(np.mean([r.metrics[m] for _, r in read["b"] if m in r.metrics]))) for m in out}
    return Comparison(name_a, name_b, ra.task, ra.dataset, {m: out[m] for m in wanted if m in out}, values)


def mean_of(results: Sequence[BootstrapResult], metric: str = "mean") -> BootstrapResult:
    """The interval of the mean of differences measured on independent test sets (Table 6's mean column).

    Each result's resampled differences (``draws``, from its own bootstrap) are averaged draw by draw.
    """
    if not results or any(r.draws is None for r in results):
        raise StatsError("the mean's interval needs every data set's bootstrap draws")
    b = min(len(r.draws) for r in results)
    d = np.mean([r.draws[:b] for r in results], axis=0)
    level = results[0].level
    lo, hi = np.quantile(d, [(1 - level) / 2, 1 - (1 - level) / 2])
    p = min(1.0, 2 * min(np.count_nonzero(d <= 0) + 1, np.count_nonzero(d >= 0) + 1) / (len(d) + 1))
    return BootstrapResult(metric, float(np.mean([r.delta for r in results])), float(lo), float(hi), float(p), level,
                           len(d), sum(r.n_images for r in results), results[0].seeds, results[0].paired_seeds, d)


# ------------------------------------------------------------------------------------------------------------ tables
_RESULT_CACHE: dict[tuple, BootstrapResult] = {}


def _group_states(paths: Sequence[str], metric: str) -> list[SampleState] | None:
    """One state per run (in the given order) that recomputes ``metric``; None if any run has none."""
    out = []
    for p in paths:
        states = run_states(read_result(p), p)
        state = state_for(states, metric) if states else None
        if state is None:
            return None
        out.append(state)
    return out


def _cell_seed(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def group_interval(paths_a: Sequence[str], paths_b: Sequence[str], metric: str, scale: float = 1.0,
                   n_boot: int = DEFAULT_B, level: float = DEFAULT_LEVEL, seed: int = 0) -> BootstrapResult | None:
    """The paired bootstrap of ``metric`` between two groups of runs (each one run per seed, in seed order).

    Returns None when a run of either group has no per-sample outputs for ``metric`` (runs from before they were
    kept); the result is scaled by ``scale`` (AP 0–1 shown x100). Results are cached by file, metric and settings.
    """
    files = []
    for p in (*paths_a, *paths_b):
        stat = Path(p).stat()
        files.append((str(p), stat.st_mtime, stat.st_size))
    key = (tuple(files), len(paths_a), metric, n_boot, level, seed)
    if key not in _RESULT_CACHE:
        a, b = _group_states(paths_a, metric), _group_states(paths_b, metric)
        if a is None or b is None:
            return None
        _RESULT_CACHE[key] = paired_bootstrap(a, b, metrics=[metric], n_boot=n_boot, level=level, seed=seed,
                                              names=(str(paths_a[0]), str(paths_b[0])))[metric]
    return _RESULT_CACHE[key].scaled(scale)


def delta_intervals(runs: pd.DataFrame, metric: str, dataset: str | None, pairs: Sequence[tuple[str, str, str]],
                    scale: float = 1.0, n_boot: int = DEFAULT_B, level: float = DEFAULT_LEVEL
                    ) -> dict[tuple[str, str], BootstrapResult | None]:
    """For each (model, variant, baseline variant): the interval of the variant's difference to the baseline.

    Args:
        runs: finished runs of one task (:func:`benchmarks.results.collect_results` rows: ``model``, ``variant``,
            ``dataset``, ``seed``, ``path``, ``metric:<name>``).
        metric, dataset: the column's metric and data set (None: any).
        pairs: (model, variant, baseline variant) triples.

    Returns:
        (model, variant) -> the result (None where per-sample outputs are missing). Each cell draws its own
        resamples (seeded by model, variant, data set and metric), so cells are reproducible and independent.
    """
    col = f"metric:{metric}"
    if col not in runs:
        return {(m, v): None for m, v, _ in pairs}
    sel = runs[runs[col].notna()]
    if dataset is not None:
        sel = sel[sel["dataset"] == dataset]

    def paths(m: str, v: str) -> list[str]:
        grp = sel[(sel["model"] == m) & (sel["variant"] == v)]
        order = grp.sort_values("seed", na_position="first", kind="stable") if "seed" in grp else grp
        return list(order["path"])

    out = {}
    for m, v, base in pairs:
        a, b = paths(m, v), paths(m, base)
        out[(m, v)] = group_interval(a, b, metric, scale, n_boot, level, _cell_seed(m, v, dataset, metric)) \
            if a and b else None
    return out


def interval_caption(n_boot: int, level: float, seed_counts: Sequence[int], missing: bool, any_interval: bool) -> str:
    """How a table's intervals were computed (B, level, seeds per row), and which rows have none."""
    if not any_interval:
        return ("Differences to the backbone's baseline row, without intervals: the runs have no per-sample outputs "
                "(runs from before they were kept); re-run them for paired bootstrap intervals.")
    n = sorted({int(s) for s in seed_counts if s})
    seeds_text = (f"seeds resampled first, then images (hierarchical; {', '.join(map(str, n))} seeds per row)"
                  if any(s > 1 for s in n) else "one seed per row")
    text = (f"Differences to the backbone's baseline row with {100 * level:g} % paired bootstrap intervals over the "
            f"test images (both rows on the same resample; B = {n_boot}; {seeds_text}); p: two-sided bootstrap "
            f"p-value; * the interval excludes 0.")
    if missing:
        text += " Rows without per-sample outputs (runs from before they were kept) show the difference alone."
    return text
