"""Per-sample outputs of an evaluation: what each downstream task keeps per test image, its file, its metrics.

A *sample state* holds what one evaluation run produced per test image, enough to recompute its metrics on any
weighting of the images (a bootstrap resample that draws image ``i`` ``k`` times gives it weight ``k``) without running
the model or matching detections again:

- :class:`ClassificationState`: per image, the label and the top-5 predicted classes: ``top1``, ``top5``,
  ``mean_per_class_top1`` (percent, as :func:`dropbench.pretrain.engine.evaluate` reports them);
- :class:`SegmentationState`: per image, the per-class intersection, union, predicted and label areas that mmseg's
  ``IoUMetric`` sums: ``mIoU``, ``mAcc``, ``aAcc`` (percent; classes whose union (label) area is 0 are skipped by
  ``nanmean``, as mmseg does);
- :class:`DetectionState`: COCOeval's per-image, per-category matches (``evaluateImg``: score, true / false positive
  at each IoU threshold, ignore flags, the number of non-ignored ground truths), re-accumulated as
  ``COCOeval.accumulate`` does (interpolated precision at 101 recall points, averaged over IoU thresholds and
  categories with ground truth): ``coco/bbox_mAP``, ``_50``, ``_75`` (0–1, mmdet's names and scale).

Every state computes its metrics for a whole matrix of image weights at once (``resample(weights)``, weights of shape
(resamples, images)): sparse and dense matrix products for classification and segmentation, sparse segment counts and
cumulative sums over the true positives for COCO; ``summary()`` gives the metrics exactly as the engine reports them
(its float width and rounding), the check that a per-sample file matches its ``result.json``. :func:`save_states`
writes named states into one compressed ``.npz`` (``samples.npz`` beside ``result.json``), :func:`load_states` reads
them. The bootstrap itself is :mod:`benchmarks.stats`.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from dropbench.pretrain.io import atomic_write

__all__ = [
    "SAMPLES_FILE",
    "check_summary",
    "kept_samples",
    "write_samples",
    "ClassificationState",
    "DetectionState",
    "SampleError",
    "SampleState",
    "SegmentationState",
    "load_states",
    "save_states",
]

SAMPLES_FILE = "samples.npz"
log = logging.getLogger(__name__)


class SampleError(ValueError):
    """Per-sample data that does not fit its schema, or states that cannot be compared."""


def _as_ids(ids: Any) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise SampleError(f"image ids must be one-dimensional, got shape {arr.shape}")
    if len(np.unique(arr)) != len(arr):
        raise SampleError("image ids must be unique")
    return arr


class SampleState:
    """Per-image state of one evaluation run (base class; see the module docstring)."""

    kind: ClassVar[str] = ""
    image_ids: np.ndarray

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    def metric_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def resample(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric (unrounded) for each row of ``weights`` (resamples x images): name -> array (resamples,)."""
        raise NotImplementedError

    def summary(self) -> dict[str, float]:
        """The metrics on the whole test set exactly as the engine reports them (its rounding and float width)."""
        raise NotImplementedError

    def point(self) -> dict[str, float]:
        """The metrics on the whole test set, unrounded (weights all 1)."""
        out = self.resample(np.ones((1, self.n_images)))
        return {k: float(v[0]) for k, v in out.items()}

    def to_arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> SampleState:
        raise NotImplementedError

    def reorder(self, image_ids: np.ndarray) -> SampleState:
        """The same state with its images in the order of ``image_ids`` (the same set)."""
        raise NotImplementedError


def _positions(have: np.ndarray, want: np.ndarray) -> np.ndarray:
    order = np.argsort(have, kind="stable")
    pos = order[np.searchsorted(have, want, sorter=order)]
    return pos


# --------------------------------------------------------------------------------------------------- classification
@dataclass(frozen=True, eq=False)
class ClassificationState(SampleState):
    """Per test image: the label and the top-k predicted classes (best first; k = min(5, classes)).

    Attributes:
        image_ids: one id per test image (the data set's sample index or file name).
        labels: (n,) int class index.
        topk: (n, k) int predicted class indices, best first.
        num_classes: the classifier's class count (classes without test images do not enter the per-class mean).
        prefix, suffix: put around the metric names (the probe's ``knn_top1_k10``: ``knn_`` and ``_k10``), so that
            one run can keep several classifiers' predictions side by side.
    """

    kind: ClassVar[str] = "cls"
    image_ids: np.ndarray
    labels: np.ndarray
    topk: np.ndarray
    num_classes: int
    prefix: str = ""
    suffix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_ids", _as_ids(self.image_ids))
        labels = np.asarray(self.labels, dtype=np.int64)
        topk = np.asarray(self.topk, dtype=np.int64)
        if topk.ndim == 1:
            topk = topk[:, None]
        n = len(self.image_ids)
        if labels.shape != (n,) or topk.ndim != 2 or topk.shape[0] != n or not 1 <= topk.shape[1] <= 5:
            raise SampleError(f"classification state: {n} image ids need labels of shape ({n},) and top-k predictions "
                             f"of shape ({n}, k <= 5); got {labels.shape} and {topk.shape}")
        if n and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise SampleError(f"classification state: labels must lie in [0, {self.num_classes}), got "
                             f"[{labels.min()}, {labels.max()}]")
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "topk", topk)

    def _name(self, metric: str) -> str:
        return f"{self.prefix}{metric}{self.suffix}"

    def metric_names(self) -> tuple[str, ...]:
        return tuple(self._name(m) for m in ("top1", "top5", "mean_per_class_top1"))

    @cached_property
    def _columns(self) -> Any:
        """Sparse (images, 2 + 2 classes): top-1 hit, top-5 hit, one-hot label, one-hot label x top-1 hit."""
        import scipy.sparse

        hit = self.topk == self.labels[:, None]
        c1, c5 = hit[:, 0].astype(np.float64), hit.any(axis=1).astype(np.float64)
        n, k = len(self.labels), self.num_classes
        rows = np.arange(n)
        data = np.concatenate([c1, c5, np.ones(n), c1])
        cols = np.concatenate([np.zeros(n, int), np.ones(n, int), 2 + self.labels, 2 + k + self.labels])
        return scipy.sparse.csc_matrix((data, (np.tile(rows, 4), cols)), shape=(n, 2 + 2 * k))

    def resample(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        k = self.num_classes
        sums = np.asarray(weights @ self._columns)  # (B, 2 + 2k): one sparse product gives every count
        total = weights.sum(axis=1)
        per_total, per_correct = sums[:, 2:2 + k], sums[:, 2 + k:]
        present = per_total > 0  # classes drawn in the resample
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class = np.where(present, 100 * per_correct / np.where(present, per_total, 1), 0)
            mean_per_class = per_class.sum(axis=1) / present.sum(axis=1)
        return {self._name("top1"): 100 * sums[:, 0] / total, self._name("top5"): 100 * sums[:, 1] / total,
                self._name("mean_per_class_top1"): mean_per_class}

    def summary(self) -> dict[str, float]:
        # as pretrain.engine.evaluate and finetune.cls compute them
        hit = self.topk == self.labels[:, None]
        n = max(len(self.labels), 1)
        correct = np.bincount(self.labels, weights=hit[:, 0], minlength=self.num_classes).tolist()
        total = np.bincount(self.labels, minlength=self.num_classes).tolist()
        present = [100 * c / t for c, t in zip(correct, total) if t]
        out = {self._name("top1"): 100 * float(hit[:, 0].sum()) / n,
               self._name("top5"): 100 * float(hit.any(axis=1).sum()) / n}
        if present:
            out[self._name("mean_per_class_top1")] = sum(present) / len(present)
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        names = {k: np.asarray(v) for k, v in (("prefix", self.prefix), ("suffix", self.suffix)) if v}
        return {"image_ids": self.image_ids, "labels": self.labels, "topk": self.topk,
                "num_classes": np.asarray(self.num_classes), **names}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ClassificationState:
        return cls(arrays["image_ids"], arrays["labels"], arrays["topk"], int(arrays["num_classes"]),
                   prefix=str(arrays.get("prefix", "")), suffix=str(arrays.get("suffix", "")))

    def reorder(self, image_ids: np.ndarray) -> ClassificationState:
        pos = _positions(self.image_ids, image_ids)
        return ClassificationState(self.image_ids[pos], self.labels[pos], self.topk[pos], self.num_classes,
                                   self.prefix, self.suffix)


# ----------------------------------------------------------------------------------------------------- segmentation
@dataclass(frozen=True, eq=False)
class SegmentationState(SampleState):
    """Per test image and class: the intersection, union, predicted and label areas (pixels) of mmseg's ``IoUMetric``.

    Attributes:
        image_ids: one id per test image (file stem).
        intersect, union, pred, label: (n, classes) areas, as ``IoUMetric.intersect_and_union`` returns them.
        suffix: appended to the metric names (``_ms`` for the multi-scale + flip evaluation).
    """

    kind: ClassVar[str] = "seg"
    image_ids: np.ndarray
    intersect: np.ndarray
    union: np.ndarray
    pred: np.ndarray
    label: np.ndarray
    suffix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_ids", _as_ids(self.image_ids))
        n = len(self.image_ids)
        shapes = set()
        for name in ("intersect", "union", "pred", "label"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            shapes.add(arr.shape)
            object.__setattr__(self, name, arr)
        if len(shapes) != 1 or (shape := shapes.pop())[0] != n or len(shape) != 2:
            raise SampleError(f"segmentation state: intersect, union, pred and label must all be ({n}, classes)")

    def metric_names(self) -> tuple[str, ...]:
        return tuple(f"{m}{self.suffix}" for m in ("mIoU", "mAcc", "aAcc"))

    def resample(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        inter, union, label = weights @ self.intersect, weights @ self.union, weights @ self.label
        with np.errstate(invalid="ignore", divide="ignore"):
            iou, acc = inter / union, inter / label  # nan for 0 / 0: skipped below, as mmseg's nanmean does
            s = self.suffix
            return {f"mIoU{s}": 100 * _nanmean_rows(iou), f"mAcc{s}": 100 * _nanmean_rows(acc),
                    f"aAcc{s}": 100 * inter.sum(axis=1) / label.sum(axis=1)}

    def summary(self) -> dict[str, float]:
        """As ``result.json`` holds them: IoUMetric.compute_metrics (float32 torch sums of the per-image areas, float32
        ratios, ``np.nanmean``, ``np.round(x * 100, 2)``), then ``round(float(x), 2)`` as :mod:`finetune.seg` stores
        them."""
        import torch

        f32 = [torch.from_numpy(getattr(self, n).astype(np.float32)) for n in ("intersect", "union", "label")]
        inter, union, label = (sum(t[i] for i in range(len(t))) for t in f32)
        all_acc = (inter.sum() / label.sum()).numpy()
        iou, acc = (inter / union).numpy(), (inter / label).numpy()
        s = self.suffix
        return {f"aAcc{s}": round(float(np.round(np.nanmean(all_acc) * 100, 2)), 2),
                f"mIoU{s}": round(float(np.round(np.nanmean(iou) * 100, 2)), 2),
                f"mAcc{s}": round(float(np.round(np.nanmean(acc) * 100, 2)), 2)}

    def to_arrays(self) -> dict[str, np.ndarray]:
        # areas are whole pixel counts: stored as integers
        return {"image_ids": self.image_ids, "suffix": np.asarray(self.suffix),
                **{n: getattr(self, n).astype(np.int64) for n in ("intersect", "union", "pred", "label")}}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> SegmentationState:
        return cls(arrays["image_ids"], arrays["intersect"], arrays["union"], arrays["pred"], arrays["label"],
                   suffix=str(arrays.get("suffix", "")))

    def reorder(self, image_ids: np.ndarray) -> SegmentationState:
        pos = _positions(self.image_ids, image_ids)
        return SegmentationState(self.image_ids[pos], self.intersect[pos], self.union[pos], self.pred[pos],
                                 self.label[pos], self.suffix)


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, x, 0).sum(axis=1) / ok.sum(axis=1)


# -------------------------------------------------------------------------------------------------------------- COCO
_REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)  # COCOeval's Params
_REC_PAD = np.r_[_REC_THRS, np.inf, np.inf]
_IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)


def _recall_points_reached(rc: np.ndarray) -> np.ndarray:
    """How many of COCOeval's recall points are <= each recall (``searchsorted(rec_thrs, rc, 'right')``, faster).

    ``floor(100 rc)`` is the count of points below it up to one either way; two exact comparisons settle it.
    """
    c = np.minimum((rc * 100).astype(np.intp), 100)
    return c + (_REC_PAD[c] <= rc) + (_REC_PAD[c + 1] <= rc)


@dataclass(frozen=True, eq=False)
class DetectionState(SampleState):
    """COCOeval's per-image, per-category matches of one area range, ready to be re-accumulated on any resample.

    Detections are stored in ``COCOeval.accumulate``'s order: category by category, and within a category sorted by
    descending score with a stable sort over the images in id order (each image's detections as ``evaluateImg``
    keeps them, its best ``max_det``).

    Attributes:
        image_ids, cat_ids: COCO ids, ascending (COCOeval's ``params.imgIds`` / ``catIds``).
        det_image, det_cat: (N,) index into ``image_ids`` / ``cat_ids`` of each detection.
        det_score: (N,) score.
        det_tp: (T, N) bool: matched to a non-ignored ground truth at IoU threshold t.
        det_valid: (T, N) bool: not ignored at threshold t (true and false positives count, ignored ones do not).
        gt_count: (images, categories) non-ignored ground truths.
        iou_type: ``bbox`` or ``segm`` (the metric prefix ``coco/<iou_type>_``).
        iou_thrs: (T,) IoU thresholds; ``max_det`` detections per image and category; ``area`` the area range label.
    """

    kind: ClassVar[str] = "coco"
    image_ids: np.ndarray
    cat_ids: np.ndarray
    det_image: np.ndarray
    det_cat: np.ndarray
    det_score: np.ndarray
    det_tp: np.ndarray
    det_valid: np.ndarray
    gt_count: np.ndarray
    iou_type: str = "bbox"
    iou_thrs: np.ndarray = field(default_factory=lambda: _IOU_THRS.copy())
    max_det: int = 100
    area: str = "all"

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_ids", _as_ids(self.image_ids))
        conv = {"cat_ids": np.int64, "det_image": np.int64, "det_cat": np.int64, "det_score": np.float64,
                "det_tp": bool, "det_valid": bool, "gt_count": np.float64, "iou_thrs": np.float64}
        for name, dtype in conv.items():
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=dtype))
        n, k, t, d = len(self.image_ids), len(self.cat_ids), len(self.iou_thrs), len(self.det_score)
        want = {"det_image": (d,), "det_cat": (d,), "det_tp": (t, d), "det_valid": (t, d), "gt_count": (n, k)}
        bad = {name: getattr(self, name).shape for name, shape in want.items() if getattr(self, name).shape != shape}
        if bad:
            raise SampleError(f"COCO state: {n} images, {k} categories, {t} IoU thresholds, {d} detections; "
                             f"shapes that do not fit: {bad}")
        if d and (np.any(np.diff(self.det_cat) < 0) or self.det_image.min() < 0 or self.det_image.max() >= n
                  or self.det_cat.min() < 0 or self.det_cat.max() >= k):
            raise SampleError("COCO state: detections must be grouped by category with valid image/category indices")
        if np.any(self.det_tp & ~self.det_valid):
            raise SampleError("COCO state: an ignored detection cannot be a true positive")
        # category slices of the detection arrays
        object.__setattr__(self, "_ptr", np.searchsorted(self.det_cat, np.arange(k + 1)))

    @classmethod
    def from_cocoeval(cls, coco_eval: Any, iou_type: str | None = None, max_det: int | None = None,
                      area: str = "all") -> DetectionState:
        """The state of a ``pycocotools.cocoeval.COCOeval`` after ``evaluate()`` (categories used, one area range).

        Args:
            coco_eval: evaluated COCOeval (``evalImgs`` filled).
            iou_type: defaults to ``coco_eval.params.iouType``.
            max_det: detections per image and category; defaults to 100 if listed in ``params.maxDets`` (what
                COCOeval's AP and mmdet's ``mAP`` use), else the largest.
            area: area range label (``all``, ``small``, ``medium``, ``large``).
        """
        p = coco_eval.params
        if not coco_eval.evalImgs:
            raise SampleError("COCOeval has no per-image results: call evaluate() first")
        if not p.useCats:
            raise SampleError("COCOeval with useCats=0 (proposal recall) has no per-category AP to resample")
        max_det = max_det or (100 if 100 in p.maxDets else max(p.maxDets))
        if area not in p.areaRngLbl:
            raise SampleError(f"area range {area!r} is not one of {p.areaRngLbl}")
        n_img, n_area = len(p.imgIds), len(p.areaRng)
        a0 = p.areaRngLbl.index(area)
        gt_count = np.zeros((n_img, len(p.catIds)), dtype=np.int64)
        img, cat, score, tp, valid = [], [], [], [], []
        for k in range(len(p.catIds)):
            c_img, c_score, c_tp, c_valid = [], [], [], []
            for i in range(n_img):
                e = coco_eval.evalImgs[k * n_area * n_img + a0 * n_img + i]
                if e is None:
                    continue
                gt_count[i, k] = int(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0))
                s = np.asarray(e["dtScores"][:max_det], dtype=np.float64)
                if not len(s):
                    continue
                ig = np.asarray(e["dtIgnore"])[:, :max_det].astype(bool)
                c_img.append(np.full(len(s), i))
                c_score.append(s)
                c_tp.append((np.asarray(e["dtMatches"])[:, :max_det] != 0) & ~ig)  # COCOeval: logical_and(dtm, ~dtIg)
                c_valid.append(~ig)
            if not c_score:
                continue
            s = np.concatenate(c_score)
            order = np.argsort(-s, kind="mergesort")  # COCOeval.accumulate's sort
            img.append(np.concatenate(c_img)[order])
            cat.append(np.full(len(s), k))
            score.append(s[order])
            tp.append(np.concatenate(c_tp, axis=1)[:, order])
            valid.append(np.concatenate(c_valid, axis=1)[:, order])
        t = len(p.iouThrs)
        return cls(
            image_ids=np.asarray(p.imgIds), cat_ids=np.asarray(p.catIds),
            det_image=np.concatenate(img) if img else np.zeros(0, np.int64),
            det_cat=np.concatenate(cat) if cat else np.zeros(0, np.int64),
            det_score=np.concatenate(score) if score else np.zeros(0),
            det_tp=np.concatenate(tp, axis=1) if tp else np.zeros((t, 0), bool),
            det_valid=np.concatenate(valid, axis=1) if valid else np.zeros((t, 0), bool),
            gt_count=gt_count, iou_type=iou_type or p.iouType, iou_thrs=np.asarray(p.iouThrs), max_det=max_det,
            area=area)

    def _names(self) -> dict[str, int | None]:
        pre = f"coco/{self.iou_type}_mAP"
        suffix = "" if self.area == "all" else f"_{self.area[0]}"
        names: dict[str, int | None] = {pre + suffix: None}
        if self.area == "all":
            for thr, name in ((0.5, "_50"), (0.75, "_75")):
                hit = np.flatnonzero(np.isclose(self.iou_thrs, thr))
                if len(hit):
                    names[pre + name] = int(hit[0])
        return names

    def metric_names(self) -> tuple[str, ...]:
        return tuple(self._names())

    def resample(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        ap = self.per_category_ap(weights)  # (B, K, T), nan for categories without ground truth in the resample
        out = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            for name, t in self._names().items():
                out[name] = _nanmean_rows(ap.mean(axis=2) if t is None else ap[:, :, t])
        return out

    @cached_property
    def _plan(self) -> list[dict[str, Any] | None]:
        """Per category, what :meth:`per_category_ap` needs, computed once.

        ``keys``: positions (in the detection arrays) of the detections that are a true positive at some threshold;
        ``segments``: sparse (keys, images) counting the detections of each image from the previous key (exclusive)
        to this key (inclusive), so ``segments @ weights.T`` cumulated over keys is the weighted count of detections
        up to each key; ``tp[t]``: which keys are true positives at threshold t; ``ignored[t]``: positions of the
        detections ignored at threshold t (they do not count), when there are any.
        """
        import scipy.sparse

        plan: list[dict[str, Any] | None] = []
        for k in range(len(self.cat_ids)):
            s, e = int(self._ptr[k]), int(self._ptr[k + 1])
            any_tp = self.det_tp[:, s:e].any(axis=0)
            if not any_tp.any():
                plan.append(None)
                continue
            keys = s + np.flatnonzero(any_tp)
            upto = np.arange(s, keys[-1] + 1)
            seg = np.searchsorted(keys, upto, side="left")
            segments = scipy.sparse.csr_matrix((np.ones(len(upto)), (seg, self.det_image[upto])),
                                               shape=(len(keys), self.n_images))
            ignored = [upto[~self.det_valid[t, upto]] for t in range(len(self.iou_thrs))]
            plan.append({"keys": keys, "segments": segments, "tp": [self.det_tp[t, keys] for t in
                                                                     range(len(self.iou_thrs))],
                         "ignored": [x if len(x) else None for x in ignored]})
        return plan

    def per_category_ap(self, weights: np.ndarray) -> np.ndarray:
        """COCOeval.accumulate's precision averaged over the 101 recall points: (resamples, categories, thresholds).

        A detection of an image drawn k times counts k times, and so do the image's ground truths. Only a true
        positive can raise the interpolated precision, so precision and recall are needed at the true positives
        alone: the weighted count of valid detections up to each one (a sparse product per category) and of true
        positives up to it give them exactly as COCOeval's detection-by-detection sums do (whole numbers in float64).
        Recall point r takes the precision envelope of the first true positive whose recall reaches it, so the mean
        over recall points is the sum over true positives of envelope x (recall points newly reached) / 101.
        """
        weights = np.asarray(weights, dtype=np.float64)
        wt = np.ascontiguousarray(weights.T)  # (images, B): rows gathered per detection
        b, n_t = len(weights), len(self.iou_thrs)
        ap = np.full((b, len(self.cat_ids), n_t), np.nan)
        npig_all = weights @ self.gt_count  # (B, K)
        eps = np.spacing(1)
        for k, plan in enumerate(self._plan):
            npig = npig_all[:, k]
            present = npig > 0
            if not present.any():
                continue
            ap[present, k, :] = 0.0
            if plan is None:  # no true positive at any threshold: precision 0 at every recall point
                continue
            keys = plan["keys"]
            upto = np.cumsum(np.asarray(plan["segments"] @ wt), axis=0)  # (keys, B) detections up to each key
            safe_npig = np.where(present, npig, 1.0)
            for t in range(n_t):
                sel = plan["tp"][t]
                if not sel.any():
                    continue
                count = upto[sel]
                ign = plan["ignored"][t]
                if ign is not None:  # ignored detections before each true positive do not count
                    before = np.searchsorted(ign, keys[sel], side="right")
                    cum = np.vstack([np.zeros((1, b)), np.cumsum(wt[self.det_image[ign]], axis=0)])
                    count = count - cum[before]
                tps = np.cumsum(wt[self.det_image[keys[sel]]], axis=0)
                pr = tps / (count + eps)
                env = np.maximum.accumulate(pr[::-1], axis=0)[::-1]  # precision envelope
                reached = _recall_points_reached(tps / safe_npig)
                gained = np.diff(reached, axis=0, prepend=0)
                ap[present, k, t] = (env * gained).sum(axis=0)[present] / len(_REC_THRS)
        return ap

    def summary(self) -> dict[str, float]:
        # mmdet's CocoMetric: float(f'{round(stat, 3)}')
        return {k: float(f"{round(v, 3)}") for k, v in self.point().items()}

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"image_ids": self.image_ids, "cat_ids": self.cat_ids, "det_image": self.det_image.astype(np.int32),
                "det_cat": self.det_cat.astype(np.int32), "det_score": self.det_score, "det_tp": self.det_tp,
                "det_valid": self.det_valid, "gt_count": self.gt_count.astype(np.int32),
                "iou_type": np.asarray(self.iou_type), "iou_thrs": self.iou_thrs,
                "max_det": np.asarray(self.max_det), "area": np.asarray(self.area)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> DetectionState:
        return cls(arrays["image_ids"], arrays["cat_ids"], arrays["det_image"], arrays["det_cat"],
                   arrays["det_score"], arrays["det_tp"], arrays["det_valid"], arrays["gt_count"],
                   iou_type=str(arrays["iou_type"]), iou_thrs=arrays["iou_thrs"], max_det=int(arrays["max_det"]),
                   area=str(arrays["area"]))

    def reorder(self, image_ids: np.ndarray) -> DetectionState:
        # COCOeval's order is by image id: the order of the detections does not depend on the order of image_ids
        pos = _positions(self.image_ids, image_ids)
        inverse = np.empty_like(pos)
        inverse[pos] = np.arange(len(pos))
        return DetectionState(self.image_ids[pos], self.cat_ids, inverse[self.det_image], self.det_cat,
                              self.det_score, self.det_tp, self.det_valid, self.gt_count[pos], self.iou_type,
                              self.iou_thrs, self.max_det, self.area)


STATE_TYPES: dict[str, type[SampleState]] = {c.kind: c for c in (ClassificationState, SegmentationState,
                                                                  DetectionState)}


# ------------------------------------------------------------------------------------------------------------- files
def save_states(path: str | os.PathLike, states: dict[str, SampleState]) -> Path:
    """Write named states into one compressed ``.npz`` atomically (temp file + rename)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for name, state in states.items():
        if "/" in name:
            raise SampleError(f"state name {name!r} must not contain '/'")
        arrays[f"{name}/kind"] = np.asarray(state.kind)
        arrays.update({f"{name}/{k}": v for k, v in state.to_arrays().items()})
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write(path, buf.getvalue())


def check_summary(states: dict[str, SampleState], metrics: dict[str, float], tolerance: dict[str, float] | None = None
                  ) -> list[str]:
    """Metrics of ``metrics`` that the states recompute differently (beyond ``tolerance[kind]``); empty when all agree.

    Default tolerances: 1e-6 for classification and segmentation, 1e-4 for COCO AP (mmdet rounds it to 3 digits).
    """
    tol = {"cls": 1e-6, "seg": 1e-6, "coco": 1e-4, **(tolerance or {})}
    bad = []
    for state in states.values():
        for k, v in state.summary().items():
            if k in metrics and not abs(v - metrics[k]) <= tol[state.kind]:
                bad.append(f"{k}: result {metrics[k]!r}, per-sample outputs {v!r}")
    return bad


def write_samples(out_dir: str | os.PathLike, states: dict[str, SampleState], metrics: dict[str, float] | None = None
                  ) -> str | None:
    """Write ``out_dir/samples.npz`` and return its name (relative to ``out_dir``, as ``result.json`` records it).

    With ``metrics`` (what the run reports) the states must recompute them (:func:`check_summary`): a per-sample file
    that disagrees with its result would give wrong intervals, so none is written (an error is logged; the run's
    result stands, its table cells get no interval) and None is returned. None too when there are no states.
    """
    if not states:
        return None
    bad = check_summary(states, metrics) if metrics is not None else []
    if bad:
        log.error("per-sample outputs not kept: they do not recompute the run's metrics (%s)", "; ".join(bad))
        return None
    save_states(Path(out_dir) / SAMPLES_FILE, states)
    return SAMPLES_FILE


def kept_samples(out_dir: str | os.PathLike, metrics: dict[str, float]) -> str | None:
    """The name of ``out_dir/samples.npz`` if an earlier process of the run wrote it and it recomputes ``metrics``.

    A run resumed after its last evaluation (nothing left to train) reports the recorded metrics without evaluating
    again; its per-sample outputs are the ones the finishing process wrote.
    """
    path = Path(out_dir) / SAMPLES_FILE
    if not path.is_file():
        return None
    try:
        states = load_states(path)
    except SampleError as e:
        log.warning("ignoring %s: %s", path, e)
        return None
    return SAMPLES_FILE if states and not check_summary(states, metrics) else None


def load_states(path: str | os.PathLike) -> dict[str, SampleState]:
    """Read the states :func:`save_states` wrote (name -> state)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise SampleError(f"{path} is not a readable per-sample file ({e})") from None
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, value in data.items():
        name, _, field_ = key.partition("/")
        groups.setdefault(name, {})[field_] = value
    out = {}
    for name, arrays in groups.items():
        kind = str(arrays.pop("kind", ""))
        if kind not in STATE_TYPES:
            raise SampleError(f"{path}: state {name!r} has unknown kind {kind!r} (known: {sorted(STATE_TYPES)})")
        try:
            out[name] = STATE_TYPES[kind].from_arrays(arrays)
        except KeyError as e:
            raise SampleError(f"{path}: state {name!r} lacks {e}") from None
    return out
