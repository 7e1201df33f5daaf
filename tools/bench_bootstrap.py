"""Cost of the paired bootstrap at the real test-set sizes, on generated per-sample states.

    OMP_NUM_THREADS=2 .venv/bin/python tools/bench_bootstrap.py [--boot 1000] [--seeds 1] [--repeat 1] \
        [--only coco ade20k cls]

- COCO val size: 5,000 images, 80 categories, ~7.3 ground-truth boxes and 100 detections per image (COCO-like
  category frequencies, 1 % crowd boxes, duplicates and background detections, true positives at IoU thresholds
  drawn from an IoU per match), two runs on the same ground truth: paired bootstrap of box AP (with AP50 and AP75
  from the same accumulation); budget 120 s.
- ADE20K size: 2,000 images, 150 classes, 512 x 683 pixels with ~9 classes each: mIoU, mAcc, aAcc; budget 10 s.
- Classification: 10,000 images, 100 classes, top-5: top-1, top-5, mean per-class accuracy; budget 2 s.

Each case is timed end to end (:func:`benchmarks.stats.paired_bootstrap`: point estimates, B resamples of both runs,
intervals), by the wall clock and by this process's CPU time (user + system: on a loaded machine the better guide to
what an idle one takes; BLAS may use two threads for the matrix products, so wall < CPU there). The states are
generated first and not timed (in a run they are written once, at evaluation time).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from dropbench.benchmarks.stats import paired_bootstrap
from dropbench.finetune.samples import ClassificationState, DetectionState, SegmentationState

BUDGET_S = {"coco": 120.0, "ade20k": 10.0, "cls": 2.0}


def coco_ground_truth(rng: np.random.Generator, n_img: int = 5000, n_cat: int = 80, per_image: float = 7.3) -> dict:
    """Ground-truth boxes per image: category (COCO-like skew: one frequent class, a long tail) and crowd flag."""
    popularity = 1.0 / np.arange(1, n_cat + 1) ** 1.1
    popularity /= popularity.sum()
    counts = rng.poisson(per_image, n_img)
    img = np.repeat(np.arange(n_img), counts)
    return {"img": img, "cat": rng.choice(n_cat, size=len(img), p=popularity), "crowd": rng.random(len(img)) < 0.01,
            "n_img": n_img, "n_cat": n_cat, "popularity": popularity}


def coco_run(rng: np.random.Generator, gt: dict, per_image: int = 100, quality: float = 0.0) -> DetectionState:
    """One detector's evaluated detections (``per_image`` per image) on ``gt``, as COCOeval's per-image matches."""
    thr = np.linspace(0.5, 0.95, 10)
    n_img, n_cat, n_gt = gt["n_img"], gt["n_cat"], len(gt["img"])
    # detections that hit a ground truth: 80 % of the boxes found once, 15 % of those found twice (a duplicate)
    found = rng.random(n_gt) < 0.8
    hit = np.flatnonzero(found)
    dup = hit[rng.random(len(hit)) < 0.15]
    src = np.concatenate([hit, dup])
    is_dup = np.r_[np.zeros(len(hit), bool), np.ones(len(dup), bool)]
    iou = np.clip(rng.beta(6 + quality, 2, len(src)), 0, 1)
    score_hit = np.clip(rng.beta(4 + quality, 2, len(src)), 0, 1)
    # background detections fill every image up to per_image
    per_img_hits = np.bincount(gt["img"][src], minlength=n_img)
    n_bg = np.maximum(per_image - per_img_hits, 0)
    bg_img = np.repeat(np.arange(n_img), n_bg)
    bg_cat = rng.choice(n_cat, size=len(bg_img), p=gt["popularity"])
    det_img = np.concatenate([gt["img"][src], bg_img])
    det_cat = np.concatenate([gt["cat"][src], bg_cat])
    score = np.concatenate([score_hit, rng.beta(1.2, 6, len(bg_img))])
    matched = np.concatenate([~is_dup, np.zeros(len(bg_img), bool)])
    crowd = np.concatenate([gt["crowd"][src], np.zeros(len(bg_img), bool)])
    tp = matched[None] & (np.concatenate([iou, np.zeros(len(bg_img))])[None] >= thr[:, None])
    valid = ~(crowd & matched)[None].repeat(len(thr), 0)  # matches to crowd boxes are ignored
    tp &= valid
    # COCOeval.accumulate's order: category, then score (descending), ties by image
    order = np.lexsort((det_img, -score, det_cat))
    gt_count = np.zeros((n_img, n_cat), np.int64)
    np.add.at(gt_count, (gt["img"][~gt["crowd"]], gt["cat"][~gt["crowd"]]), 1)
    return DetectionState(np.arange(1, n_img + 1), np.arange(1, n_cat + 1), det_img[order], det_cat[order],
                          score[order], tp[:, order], valid[:, order], gt_count)


def ade20k_run(rng: np.random.Generator, labels: np.ndarray, accuracy: float) -> SegmentationState:
    """Per-image class areas of one segmenter: each image's label areas, a share of each predicted right."""
    n, c = labels.shape
    right = np.floor(labels * np.clip(rng.normal(accuracy, 0.1, labels.shape), 0, 1))
    wrong = labels - right  # scattered over other classes present in the image and a few absent ones
    pred = right.copy()
    for shift in (1, 7):
        pred += np.roll(wrong / 2, shift, axis=1)
    pred = np.floor(pred)
    union = pred + labels - right
    return SegmentationState(np.arange(n), right, union, pred, labels)


def ade20k_labels(rng: np.random.Generator, n: int = 2000, c: int = 150, h: int = 512, w: int = 683) -> np.ndarray:
    labels = np.zeros((n, c))
    popularity = 1.0 / np.arange(1, c + 1) ** 0.9
    popularity /= popularity.sum()
    for i in range(n):
        present = rng.choice(c, size=rng.integers(3, 16), replace=False, p=popularity)
        labels[i, present] = np.floor(rng.dirichlet(np.ones(len(present))) * h * w * 0.92)  # 8 % ignored
    return labels


def cls_run(rng: np.random.Generator, labels: np.ndarray, accuracy: float, k: int) -> ClassificationState:
    n = len(labels)
    first = np.where(rng.random(n) < accuracy, labels, rng.integers(0, k, n))
    rest = (first[:, None] + rng.integers(1, k, (n, 4))) % k
    return ClassificationState(np.arange(n), labels, np.concatenate([first[:, None], rest], axis=1), k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples (B)")
    parser.add_argument("--repeat", type=int, default=1, help="timings per case (the best is printed)")
    parser.add_argument("--seeds", type=int, default=1, help="runs (seeds) per side: hierarchical bootstrap")
    parser.add_argument("--only", nargs="+", choices=sorted(BUDGET_S), default=["cls", "ade20k", "coco"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cases = {}
    if "cls" in args.only:
        labels = rng.integers(0, 100, 10_000)
        cases["cls"] = ([cls_run(rng, labels, 0.80, 100) for _ in range(args.seeds)],
                        [cls_run(rng, labels, 0.79, 100) for _ in range(args.seeds)], "top1")
    if "ade20k" in args.only:
        labels = ade20k_labels(rng)
        cases["ade20k"] = ([ade20k_run(rng, labels, 0.75) for _ in range(args.seeds)],
                           [ade20k_run(rng, labels, 0.74) for _ in range(args.seeds)], "mIoU")
    if "coco" in args.only:
        gt = coco_ground_truth(rng)
        cases["coco"] = ([coco_run(rng, gt, quality=0.3) for _ in range(args.seeds)],
                         [coco_run(rng, gt) for _ in range(args.seeds)], "coco/bbox_mAP")
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"paired bootstrap, B = {args.boot}, {args.seeds} seed(s) per run, OMP_NUM_THREADS={threads}, "
          f"{os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.1f}")
    print(f"{'case':8s} {'images':>7s} {'size':>28s} {'wall s':>7s} {'CPU s':>7s} {'budget':>7s}  result")
    for name, (runs_a, runs_b, metric) in cases.items():
        a = runs_a[0]
        times, cpu = [], []
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            res = paired_bootstrap(runs_a, runs_b, n_boot=args.boot, seed=0)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        r = res[metric]
        size = {"cls": f"{a.num_classes} classes, top-{a.topk.shape[1]}" if name == "cls" else "",
                "ade20k": f"{a.intersect.shape[1]} classes" if name == "ade20k" else "",
                "coco": f"{len(a.cat_ids)} cats, {len(a.det_score) / a.n_images:.0f} det/img"
                if name == "coco" else ""}[name]
        print(f"{name:8s} {a.n_images:7d} {size:>28s} {min(times):7.2f} {min(cpu):7.2f} {BUDGET_S[name]:7.0f}  "
              f"{metric} {r.delta:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}] p={r.p:.3f}")


if __name__ == "__main__":
    main()
