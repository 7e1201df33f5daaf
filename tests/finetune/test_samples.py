"""Per-sample states recompute the engines' metrics: COCOeval, mmseg's IoUMetric, the classification evaluator."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from dropbench.benchmarks.stats import resample_weights
from dropbench.finetune.samples import (
    ClassificationState,
    DetectionState,
    SegmentationState,
    load_states,
    save_states,
)


def _cls_run(n: int, seed: int = 0, k: int = 10) -> ClassificationState:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    first = np.where(rng.random(n) < 0.7, labels, (labels + 1) % k)
    rest = np.stack([(first + 1 + i) % k for i in range(4)], axis=1)
    return ClassificationState(np.arange(n), labels, np.concatenate([first[:, None], rest], axis=1), k)


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
    for key in ("mIoU", "mAcc", "aAcc"):  # as finetune.seg records mmseg's figures: round(float(x), 2)
        assert got[key] == pytest.approx(round(float(ref[key]), 2), abs=1e-6)
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
    a = _cls_run(300)
    s = a.summary()
    hit = a.topk == a.labels[:, None]
    assert s["top1"] == pytest.approx(100 * hit[:, 0].mean(), abs=1e-9)
    assert s["top5"] == pytest.approx(100 * hit.any(axis=1).mean(), abs=1e-9)
    per = [hit[a.labels == c, 0].mean() * 100 for c in range(10) if (a.labels == c).any()]
    assert s["mean_per_class_top1"] == pytest.approx(np.mean(per), abs=1e-9)
    for k, v in a.point().items():
        assert v == pytest.approx(s[k], abs=1e-9)


def test_states_round_trip_through_file(tmp_path):
    a = _cls_run(50)
    gt, dets = _coco_dicts(n_img=6)
    det = DetectionState.from_cocoeval(_cocoeval(gt, dets))
    seg = SegmentationState(["x", "y"], [[1, 2]] * 2, [[3, 4]] * 2, [[2, 3]] * 2, [[2, 3]] * 2, suffix="_ms")
    path = save_states(tmp_path / "samples.npz", {"cls": a, "bbox": det, "seg_ms": seg})
    back = load_states(path)
    assert set(back) == {"cls", "bbox", "seg_ms"}
    for name, st in {"cls": a, "bbox": det, "seg_ms": seg}.items():
        assert back[name].point() == st.point()
        assert back[name].metric_names() == st.metric_names()



def test_recall_points_reached_equals_searchsorted():
    from dropbench.finetune.samples import _REC_THRS, _recall_points_reached

    den = np.arange(1, 1201)
    rc = np.concatenate([np.arange(d + 1) / d for d in den] + [np.arange(0, 3001) / 3000 * k for k in (1, 0.5)])
    rc = rc[rc <= 1]
    np.testing.assert_array_equal(_recall_points_reached(rc), np.searchsorted(_REC_THRS, rc, side="right"))


def test_engine_samples_recompute_its_metrics():
    """pretrain.engine.evaluate's per-sample outputs give back its top-1, top-5 and per-class accuracy."""
    torch = pytest.importorskip("torch")
    from dropbench.pretrain.data import eval_loader
    from dropbench.pretrain.engine import evaluate

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(53, 6, generator=g), torch.randint(0, 7, (53,), generator=g)

    class Indexed(torch.utils.data.Dataset):  # the evaluation sampler yields (index, epoch), as SeededDataset takes
        def __len__(self) -> int:
            return len(y)

        def __getitem__(self, item: tuple[int, int]) -> tuple:
            return x[item[0]], y[item[0]]

    dataset = Indexed()
    model = torch.nn.Linear(6, 7)
    out = evaluate(model, eval_loader(dataset, 8, 0, 1, 0), torch.device("cpu"), num_classes=7, keep_samples=True)
    s = out["samples"]
    np.testing.assert_array_equal(s["index"], np.arange(53))
    np.testing.assert_array_equal(s["label"], y.numpy())
    np.testing.assert_array_equal(s["topk"], model(x).topk(5, dim=1).indices.numpy())
    state = ClassificationState(s["index"], s["label"], s["topk"], 7)
    present = [v for v in out["per_class_top1"] if v is not None]
    got = state.summary()
    assert got["top1"] == pytest.approx(out["top1"], abs=1e-6)
    assert got["top5"] == pytest.approx(out["top5"], abs=1e-6)
    assert got["mean_per_class_top1"] == pytest.approx(sum(present) / len(present), abs=1e-6)


def test_sample_iou_metric_keeps_states_that_recompute_its_metrics():
    pytest.importorskip("mmseg")
    import torch
    from dropbench.finetune.seg import SampleIoUMetric

    ref, results = _ade_results()
    metric = SampleIoUMetric(iou_metrics=["mIoU"], suffix="_ms")
    metric.dataset_meta = ref.dataset_meta
    g = torch.Generator().manual_seed(0)
    samples = [{"pred_sem_seg": {"data": torch.randint(0, 6, (1, 16, 16), generator=g)},
                "gt_sem_seg": {"data": torch.randint(0, 5, (1, 16, 16), generator=g)},
                "img_path": f"/x/ADE_val_{i:08d}.jpg"} for i in range(5)]
    metric.process({}, samples[:3])
    metric.process({}, samples[3:])
    with contextlib.redirect_stdout(io.StringIO()):
        got = metric.evaluate(5)
    state = metric.last_state
    assert state.image_ids.tolist() == [f"ADE_val_{i:08d}" for i in range(5)]
    for k in ("mIoU", "mAcc", "aAcc"):
        assert state.summary()[f"{k}_ms"] == pytest.approx(round(float(got[k]), 2), abs=1e-6)


def test_sample_coco_metric_keeps_states_that_recompute_its_metrics(tmp_path):
    pytest.importorskip("mmdet")
    import json

    import torch
    from dropbench.finetune.det import SampleCocoMetric

    gt, dets = _coco_dicts(n_img=10, seed=3)
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(gt))
    metric = SampleCocoMetric(ann_file=str(ann), metric=["bbox"])
    metric.dataset_meta = {"classes": [c["name"] for c in gt["categories"]]}
    cat_index = {c["id"]: i for i, c in enumerate(gt["categories"])}
    samples = []
    for img in gt["images"]:
        mine = [d for d in dets if d["image_id"] == img["id"]]
        boxes = torch.tensor([[d["bbox"][0], d["bbox"][1], d["bbox"][0] + d["bbox"][2], d["bbox"][1] + d["bbox"][3]]
                              for d in mine]).reshape(-1, 4)
        samples.append({"img_id": img["id"], "ori_shape": (img["height"], img["width"]),
                        "pred_instances": {"bboxes": boxes, "scores": torch.tensor([d["score"] for d in mine]),
                                           "labels": torch.tensor([cat_index[d["category_id"]] for d in mine])}})
    metric.process({}, samples)
    with contextlib.redirect_stdout(io.StringIO()):
        got = metric.evaluate(len(samples))
    states = metric.sample_states()
    assert set(states) == {"bbox"} and json.loads(metric.last_json["bbox"])
    for k, v in states["bbox"].summary().items():
        assert v == pytest.approx(got[k], abs=1e-4)
    assert got["coco/bbox_mAP"] > 0.05  # not a trivial 0 = 0
