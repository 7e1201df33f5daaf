"""The statistics themselves: metric recomputation from per-sample states, and the paired bootstrap's behaviour."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from dropbench.benchmarks.stats import (
    ClassificationState,
    DetectionState,
    SegmentationState,
    StatsError,
    format_interval,
    load_states,
    paired_bootstrap,
    resample_weights,
    save_states,
)


# ----------------------------------------------------------------------------------------------------- generators
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


def _coco_dicts(n_img: int = 24, seed: int = 0, ties: bool = True) -> tuple[dict, list[dict]]:
    """A generated COCO ground truth (3 categories, some crowd boxes, an empty image) and noisy detections."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(n_img):
        img_id = 10 + 3 * i
        images.append({"id": img_id, "width": 200, "height": 200, "file_name": f"{img_id}.jpg"})
        n_gt = 0 if i == 0 else int(rng.integers(1, 6))
        for _ in range(n_gt):
            x, y = rng.uniform(0, 150, 2)
            w, h = rng.uniform(8, 50, 2)
            cat = int(rng.choice([1, 2, 5], p=[0.5, 0.3, 0.2]))
            crowd = int(rng.random() < 0.1)
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": cat, "bbox": [x, y, w, h],
                         "area": w * h, "iscrowd": crowd})
            for _ in range(int(rng.integers(0, 3))):  # detections near the box, some of another category
                jit = rng.normal(0, 0.15, 4) * [w, h, w, h]
                dcat = cat if rng.random() < 0.85 else int(rng.choice([1, 2, 5, 7]))
                dets.append({"image_id": img_id, "category_id": dcat, "bbox": list(np.abs([x, y, w, h] + jit)),
                             "score": float(rng.uniform(0.3, 1.0))})
        for _ in range(int(rng.integers(0, 4))):  # false positives anywhere
            x, y = rng.uniform(0, 150, 2)
            dets.append({"image_id": img_id, "category_id": int(rng.choice([1, 2, 5, 7])),
                         "bbox": [x, y, *rng.uniform(8, 50, 2)], "score": float(rng.uniform(0.0, 0.7))})
    if ties:  # equal scores within and across images exercise COCOeval's stable sort
        for d in dets[::5]:
            d["score"] = 0.5
    cats = [{"id": c, "name": f"c{c}"} for c in (1, 2, 5, 7)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def _cocoeval(gt: dict, dets: list[dict]):
    coco_mod = pytest.importorskip("pycocotools.coco")
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = coco_mod.COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        ev.params.maxDets = [100, 300, 1000]  # as mmdet's CocoMetric sets them
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


# ------------------------------------------------------------------------------------------------- recomputation
def test_coco_recomputation_equals_cocoeval():
    gt, dets = _coco_dicts()
    ev = _cocoeval(gt, dets)
    state = DetectionState.from_cocoeval(ev)
    got = state.point()
    assert got["coco/bbox_mAP"] == pytest.approx(ev.stats[0], abs=1e-4)
    assert got["coco/bbox_mAP_50"] == pytest.approx(ev.stats[1], abs=1e-4)
    assert got["coco/bbox_mAP_75"] == pytest.approx(ev.stats[2], abs=1e-4)
    # per category, per threshold: the mean of COCOeval's precision over the recall points
    prec = ev.eval["precision"][:, :, :, 0, 0]  # (T, R, K), area all, maxDet 100
    ap = state.per_category_ap(np.ones((1, state.n_images)))[0]  # (K, T)
    ref = np.where(prec.min(axis=1) > -1, prec.mean(axis=1), np.nan).T
    np.testing.assert_allclose(ap, ref, atol=1e-12)
    assert np.isnan(ap[state.cat_ids.tolist().index(7)]).all()  # a category without ground truth is left out
    assert state.summary()["coco/bbox_mAP"] == float(f"{round(ev.stats[0], 3)}")  # mmdet's rounding
    small = DetectionState.from_cocoeval(ev, area="small")
    assert small.point()["coco/bbox_mAP_s"] == pytest.approx(ev.stats[3], abs=1e-4)


def test_coco_resample_counts_repeated_images():
    """Weights k equal COCOeval run on a data set where each image (and its boxes) appears k times."""
    gt, dets = _coco_dicts(n_img=12, seed=1, ties=False)
    state = DetectionState.from_cocoeval(_cocoeval(gt, dets))
    rng = np.random.default_rng(0)
    for _ in range(3):
        w = resample_weights(rng, state.n_images, 1)[0]
        images, anns, rdets = [], [], []
        for img, k in zip(gt["images"], w.astype(int)):
            for copy in range(k):  # copies get adjacent ids, so COCOeval's image order keeps them together
                new = img["id"] * 100 + copy
                images.append({**img, "id": new})
                anns += [{**a, "id": len(anns) + j + 1, "image_id": new}
                         for j, a in enumerate(a for a in gt["annotations"] if a["image_id"] == img["id"])]
                rdets += [{**d, "image_id": new} for d in dets if d["image_id"] == img["id"]]
        ev = _cocoeval({**gt, "images": images, "annotations": anns}, rdets)
        got = state.resample(w[None])
        assert got["coco/bbox_mAP"][0] == pytest.approx(ev.stats[0], abs=1e-12)
        assert got["coco/bbox_mAP_75"][0] == pytest.approx(ev.stats[2], abs=1e-12)


def _ade_results(n: int = 12, classes: int = 6, seed: int = 0) -> tuple[list, list]:
    """IoUMetric's per-image results for generated maps (255 = ignore), and the maps' data samples."""
    torch = pytest.importorskip("torch")
    iou_metric = pytest.importorskip("mmseg.evaluation.metrics.iou_metric")
    g = torch.Generator().manual_seed(seed)
    metric = iou_metric.IoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = {"classes": [f"c{i}" for i in range(classes)]}
    samples = []
    for i in range(n):
        label = torch.randint(0, classes - 1, (1, 24, 32), generator=g)  # the last class never in the labels
        label[:, :4] = 255
        pred = torch.where(torch.rand(label.shape, generator=g) < 0.6, label.clamp(max=classes - 1),
                           torch.randint(0, classes, label.shape, generator=g))
        if i == 0:
            pred[:] = classes - 1  # predicted but absent: IoU 0, accuracy undefined
        samples.append({"pred_sem_seg": {"data": pred}, "gt_sem_seg": {"data": label}})
    metric.process({}, samples)
    return metric, metric.results


def test_ade20k_recomputation_equals_iou_metric():
    metric, results = _ade_results()
    with contextlib.redirect_stdout(io.StringIO()):
        ref = metric.compute_metrics(list(results))
    arrays = [np.stack([r[j].numpy() for r in results]) for j in range(4)]
    state = SegmentationState(np.arange(len(results)), arrays[0], arrays[1], arrays[2], arrays[3])
    got = state.summary()
    for key in ("mIoU", "mAcc", "aAcc"):
        assert got[key] == pytest.approx(float(ref[key]), abs=1e-6)
    # unrounded, and with weights: IoUMetric's formulas (float64) on the same images repeated
    w = np.array([2, 0, 1, 3, 1, 1, 0, 0, 1, 2, 1, 1], dtype=float)
    totals = [sum(float(k) * np.asarray(r[j], dtype=np.float64) for k, r in zip(w, results)) for j in range(4)]
    import torch

    mm = metric.total_area_to_metrics(*(torch.from_numpy(t) for t in totals), ["mIoU"])
    res = state.resample(w[None])
    assert res["mIoU"][0] == pytest.approx(100 * np.nanmean(mm["IoU"]), abs=1e-9)
    assert res["mAcc"][0] == pytest.approx(100 * np.nanmean(mm["Acc"]), abs=1e-9)
    assert res["aAcc"][0] == pytest.approx(100 * float(mm["aAcc"]), abs=1e-9)


def test_classification_recomputation_matches_engine_formulas():
    a, _ = _cls_pair(300, 20, 10)
    s = a.summary()
    hit = a.topk == a.labels[:, None]
    assert s["top1"] == pytest.approx(100 * hit[:, 0].mean(), abs=1e-9)
    assert s["top5"] == pytest.approx(100 * hit.any(axis=1).mean(), abs=1e-9)
    per = [hit[a.labels == c, 0].mean() * 100 for c in range(10) if (a.labels == c).any()]
    assert s["mean_per_class_top1"] == pytest.approx(np.mean(per), abs=1e-9)
    for k, v in a.point().items():
        assert v == pytest.approx(s[k], abs=1e-9)


def test_states_round_trip_through_file(tmp_path):
    a, _ = _cls_pair(50, 5, 3)
    gt, dets = _coco_dicts(n_img=6)
    det = DetectionState.from_cocoeval(_cocoeval(gt, dets))
    seg = SegmentationState(["x", "y"], [[1, 2]] * 2, [[3, 4]] * 2, [[2, 3]] * 2, [[2, 3]] * 2, suffix="_ms")
    path = save_states(tmp_path / "samples.npz", {"cls": a, "bbox": det, "seg_ms": seg})
    back = load_states(path)
    assert set(back) == {"cls", "bbox", "seg_ms"}
    for name, st in {"cls": a, "bbox": det, "seg_ms": seg}.items():
        assert back[name].point() == st.point()
        assert back[name].metric_names() == st.metric_names()


# ------------------------------------------------------------------------------------------------------ bootstrap
def test_run_against_itself_gives_zero_interval_and_p_one():
    a, _ = _cls_pair(500, 30, 20)
    res = paired_bootstrap(a, a, n_boot=200)
    for r in res.values():
        assert (r.delta, r.ci_low, r.ci_high, r.p) == (0.0, 0.0, 0.0, 1.0)
        assert not r.excludes_zero
    gt, dets = _coco_dicts()
    det = DetectionState.from_cocoeval(_cocoeval(gt, dets))
    r = paired_bootstrap([det, det], [det, det], n_boot=100)["coco/bbox_mAP"]  # seeds paired: still exactly 0
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


def test_recall_points_reached_equals_searchsorted():
    from dropbench.benchmarks.stats import _REC_THRS, _recall_points_reached

    den = np.arange(1, 1201)
    rc = np.concatenate([np.arange(d + 1) / d for d in den] + [np.arange(0, 3001) / 3000 * k for k in (1, 0.5)])
    rc = rc[rc <= 1]
    np.testing.assert_array_equal(_recall_points_reached(rc), np.searchsorted(_REC_THRS, rc, side="right"))
