"""The paired bootstrap itself: identity, the analytic paired interval and McNemar, coverage, seeds, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from dropbench.benchmarks.stats import StatsError, format_interval, paired_bootstrap
from dropbench.finetune.samples import ClassificationState, SegmentationState


def _cls_pair(n: int, b: int, c: int, acc: float = 0.7, seed: int = 0) -> tuple[ClassificationState, ...]:
    """Two classification runs on n images: b images only the first gets right, c only the second."""
    rng = np.random.default_rng(seed)
    k = 10
    labels = rng.integers(0, k, n)
    both = int(round(acc * (n - b - c)))
    kinds = np.array([0] * b + [1] * c + [2] * both + [3] * (n - b - c - both))  # A only, B only, both, neither
    rng.shuffle(kinds)

    def top5(correct: np.ndarray) -> np.ndarray:
        wrong = (labels + 1 + rng.integers(0, k - 1, n)) % k
        first = np.where(correct, labels, wrong)
        rest = np.stack([(first + 1 + i) % k for i in range(4)], axis=1)
        return np.concatenate([first[:, None], rest], axis=1)

    ids = np.arange(n)
    a = ClassificationState(ids, labels, top5((kinds == 0) | (kinds == 2)), k)
    bb = ClassificationState(ids, labels, top5((kinds == 1) | (kinds == 2)), k)
    return a, bb


# ------------------------------------------------------------------------------------------------------ bootstrap
def test_run_against_itself_gives_zero_interval_and_p_one():
    a, _ = _cls_pair(500, 30, 20)
    res = paired_bootstrap(a, a, n_boot=200)
    for r in res.values():
        assert (r.delta, r.ci_low, r.ci_high, r.p) == (0.0, 0.0, 0.0, 1.0)
        assert not r.excludes_zero
    rng = np.random.default_rng(0)
    areas = rng.integers(0, 50, (4, 40, 6))
    seg = SegmentationState(np.arange(40), areas[0], areas[0] + areas[1], areas[0] + areas[2], areas[0] + areas[3])
    r = paired_bootstrap([seg, seg], [seg, seg], n_boot=100)["mIoU"]  # seeds paired: still exactly 0
    assert (r.ci_low, r.ci_high, r.p, r.seeds) == (0.0, 0.0, 1.0, (2, 2))


@pytest.mark.parametrize(("b", "c"), [(60, 40), (45, 25), (80, 50), (30, 14), (120, 95), (200, 170)])
def test_classification_matches_analytic_interval_and_mcnemar(b, c):
    from scipy.stats import binomtest

    n = 2000
    a, bb = _cls_pair(n, b, c, seed=b)
    r = paired_bootstrap(a, bb, metrics=["top1"], seed=c)["top1"]  # B = 1000
    assert r.delta == pytest.approx(100 * (b - c) / n)
    half = 1.96 * np.sqrt(b + c - (b - c) ** 2 / n) / n * 100
    assert abs((r.ci_high - r.ci_low) - 2 * half) <= 0.1 * 2 * half
    assert r.ci_low == pytest.approx(r.delta - half, abs=0.15 * half)
    p_exact = binomtest(b, b + c, 0.5).pvalue
    assert 0.01 <= p_exact <= 0.5
    assert abs(r.p - p_exact) <= 0.05


def test_interval_coverage_on_simulated_test_sets():
    """The 95% interval holds the true difference of the population in 93-97% of simulated test sets."""
    rng = np.random.default_rng(2024)
    n, sets, k = 300, 400, 5
    # population: P(A right, B right) per image type, true difference of top-1 = 100 * (0.08 - 0.05)
    probs = [0.62, 0.08, 0.05, 0.25]  # both, A only, B only, neither
    true_delta = 100 * (probs[1] - probs[2])
    hits = 0
    for s in range(sets):
        kinds = rng.choice(4, size=n, p=probs)
        labels = rng.integers(0, k, n)
        wrong = (labels + 1) % k
        a = ClassificationState(np.arange(n), labels, np.where((kinds == 0) | (kinds == 1), labels, wrong), k)
        b = ClassificationState(np.arange(n), labels, np.where((kinds == 0) | (kinds == 2), labels, wrong), k)
        r = paired_bootstrap(a, b, metrics=["top1"], n_boot=500, seed=s)["top1"]
        hits += r.ci_low <= true_delta <= r.ci_high
    assert 0.93 <= hits / sets <= 0.97


def test_seeds_widen_the_interval():
    """Seed-to-seed variation enters the interval (hierarchical), and unequal seed counts are resampled apart."""
    rng = np.random.default_rng(3)
    n, k = 1000, 10
    labels = rng.integers(0, k, n)
    difficulty = rng.random(n)  # image i is right for every run whose accuracy exceeds its difficulty

    def run(p: float) -> ClassificationState:
        return ClassificationState(np.arange(n), labels, np.where(difficulty < p, labels, (labels + 1) % k), k)

    one = paired_bootstrap(run(0.75), run(0.75), metrics=["top1"], n_boot=400)["top1"]
    assert (one.ci_low, one.ci_high) == (0.0, 0.0)
    # the mean over seeds equals the baseline too, but the seeds spread by 10 points
    seeds_a, seeds_b = [run(p) for p in (0.65, 0.75, 0.85)], [run(0.75)] * 3
    many = paired_bootstrap(seeds_a, seeds_b, metrics=["top1"], n_boot=400)["top1"]
    assert many.seeds == (3, 3) and many.paired_seeds
    assert abs(many.delta) < 1
    assert many.ci_low < -5 and many.ci_high > 5 and many.p > 0.5
    unpaired = paired_bootstrap(seeds_a, seeds_b[:2], metrics=["top1"], n_boot=400)["top1"]
    assert not unpaired.paired_seeds and unpaired.seeds == (3, 2)


def test_refusals_name_the_runs_and_the_difference():
    a, b = _cls_pair(100, 5, 3)
    other = ClassificationState(np.arange(1, 101), b.labels, b.topk, 10)
    with pytest.raises(StatsError, match=r"run-a and run-b were evaluated on different test images.*\[0\].*\[100\]"):
        paired_bootstrap(a, other, names=("run-a", "run-b"))
    seg = SegmentationState(np.arange(100), np.ones((100, 2)), np.ones((100, 2)), np.ones((100, 2)),
                            np.ones((100, 2)))
    with pytest.raises(StatsError, match="run-a holds cls outputs but run-b holds seg"):
        paired_bootstrap(a, seg, names=("run-a", "run-b"))
    with pytest.raises(StatsError, match="not among the per-sample metrics"):
        paired_bootstrap(a, b, metrics=["mIoU"])
    # the same images in another order are aligned, not refused
    perm = np.random.default_rng(0).permutation(100)
    shuffled = ClassificationState(b.image_ids[perm], b.labels[perm], b.topk[perm], 10)
    assert paired_bootstrap(a, shuffled, n_boot=50)["top1"] == paired_bootstrap(a, b, n_boot=50)["top1"]


def test_deterministic_and_formatted():
    a, b = _cls_pair(400, 40, 15)
    r1 = paired_bootstrap(a, b, n_boot=300, seed=7)["top1"]
    assert r1 == paired_bootstrap(a, b, n_boot=300, seed=7)["top1"]
    assert r1.excludes_zero and r1.p < 0.05
    text = format_interval(r1)
    assert text.startswith("+6.2*") and "[" in text
    assert format_interval(r1.scaled(-1), tex=True).startswith("$-$6.2* {\\scriptsize[$-$")


def _run_dir(root, name: str, state: ClassificationState | None, dataset: str = "cifar100", task: str = "cls"):
    from dropbench.benchmarks.results import RunResult, write_result
    from dropbench.finetune.samples import save_states

    run = root / name
    extra = {}
    metrics = {"top1": 50.0, "top5": 90.0}
    if state is not None:
        save_states(run / "samples.npz", {"cls": state})
        extra["samples"] = "samples.npz"
        metrics = state.summary()
    write_result(RunResult(task=task, dataset=dataset, model="vit_tiny", metrics=metrics, config={}, config_hash="h",
                           extra=extra, run_dir=str(run)), run)
    return run


def test_compare_runs_and_its_refusals(tmp_path):
    from dropbench.benchmarks.stats import compare_runs

    a, b = _cls_pair(400, 40, 15)
    ra, rb = _run_dir(tmp_path, "a", a), _run_dir(tmp_path, "b", b)
    cmp = compare_runs(ra, rb, n_boot=200)
    assert list(cmp.results) == ["top1", "top5", "mean_per_class_top1"] and cmp.task == "cls"
    assert cmp.results["top1"].delta == pytest.approx(100 * 25 / 400)
    other = _run_dir(tmp_path, "pets", b, dataset="pets")
    with pytest.raises(StatsError, match=rf"{ra} is a cls run on cifar100 but {other} is a cls run on pets"):
        compare_runs(ra, other)
    old = _run_dir(tmp_path, "old", None)
    with pytest.raises(StatsError, match=rf"{old} has no per-sample outputs.*re-run it to compare it with {ra}"):
        compare_runs(ra, old)
    shifted = ClassificationState(np.arange(5, 405), b.labels, b.topk, 10)
    moved = _run_dir(tmp_path, "moved", shifted)
    with pytest.raises(StatsError, match=rf"{ra} and {moved} were evaluated on different test images"):
        compare_runs(ra, moved)


def test_compare_command(tmp_path, capsys):
    from dropbench.benchmarks import cli

    a, b = _cls_pair(400, 40, 15)
    ra, rb = _run_dir(tmp_path, "a", a), _run_dir(tmp_path, "b", b)
    assert cli.main(["compare", str(ra), str(rb), "--boot", "200"]) == 0
    out = capsys.readouterr().out
    assert f"**{ra}** vs **{rb}** (cls, cifar100, 400 test images)" in out
    assert "| top1 | " in out and "+6.25*" in out and "B = 200" in out
    other = _run_dir(tmp_path, "pets", b, dataset="pets")
    assert cli.main(["compare", str(ra), str(other)]) == 2
    err = capsys.readouterr().err
    assert f"dropbench compare: error: {ra} is a cls run on cifar100 but {other} is a cls run on pets" in err
    # rows of a results folder: every seed of a (model, variant)
    from dropbench.benchmarks.results import RunResult, write_result
    from dropbench.finetune.samples import save_states

    root = tmp_path / "suite"
    for variant, state in (("baseline", b), ("early-dropout", a)):
        for seed in (0, 1):
            run = root / f"{variant}-{seed}"
            save_states(run / "samples.npz", {"cls": state})
            write_result(RunResult(task="cls", dataset="cifar100", model="vit_tiny", metrics=state.summary(),
                                   config={}, config_hash="h", variant=variant, seed=seed,
                                   extra={"samples": "samples.npz"}), run)
    assert cli.main(["compare", "vit_tiny:early-dropout", "vit_tiny:baseline", "--results", str(root), "--boot",
                     "100", "--metric", "top1"]) == 0
    out = capsys.readouterr().out
    assert "**vit_tiny:early-dropout** vs **vit_tiny:baseline**" in out and "seeds resampled first (2 vs 2" in out
    assert cli.main(["compare", "vit_tiny:late-sd", "vit_tiny:baseline", "--results", str(root)]) == 2
    assert "has no finished run of vit_tiny:late-sd" in capsys.readouterr().err
