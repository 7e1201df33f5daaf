"""Frozen-feature probes: screen a checkpoint in minutes with kNN and linear classifiers on its pre-logits features.

    dropbench finetune probe --dataset flowers102 --checkpoint runs/pt/checkpoint.pth --data /datasets \
        --config standard --out runs/probe_flowers

:func:`run_probe`, the ``probe`` task's entry (:mod:`finetune.tasks`), resolves the recipe (``configs/probe/``), builds
the paper model without its head, loads the checkpoint through the shared converter (strict except the head), and
extracts each split's features once: timm's ``forward_features`` + ``forward_head(pre_logits=True)``, eval mode, no
augmentation, resize + center crop at the recipe's resolution (timm's eval transform). Features are cached on disk per
(checkpoint sha256 and weights, model, data set and its folder / labels, split, transform), written atomically; a
damaged or truncated cache file is rebuilt, never read. Then:

- kNN (:func:`knn_predict`): cosine similarity to every training feature, the k nearest vote with weights
  ``exp(similarity / T)`` (k = 20, T = 0.07, as DINO's ``eval_knn.py``); k = 1 and k = 10 reported too; chunked
  matrix products, no loop over samples;
- linear (:func:`linear_probe`): multinomial logistic regression on the standardised features, full-batch L-BFGS in
  torch; the L2 strength is chosen on a held-out part of the training split from a logarithmic sweep (highest held-out
  top-1), then the model is refit on the whole training split and evaluated on the test split.

The outcome's metrics (percent): ``knn_top1`` (k = 20), ``knn_top1_k1``, ``knn_top1_k10``, ``linear_top1``,
``linear_top5``; and ``linear_l2`` (the chosen strength), ``feature_dim``, ``cache_hit`` (1 when every split's features
came from the cache). The test predictions are kept per image (``samples.npz``) as classification keeps them, so the
``probe`` table's differences get paired bootstrap intervals.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from dropbench.finetune.convert import CheckpointError, LoadReport, checkpoint_model_args, load_pretrained
from dropbench.finetune.datasets.cls import CLS_DATASETS, ClsData, load_cls_data, split_labels
from dropbench.finetune.samples import ClassificationState, write_samples
from dropbench.finetune.tasks import Job, Outcome, get_task
from dropbench.pretrain.config import config_hash, load_config, plain, resolve_config
from dropbench.pretrain.data import SeededDataset, eval_loader
from dropbench.pretrain.io import atomic_write
from dropbench.pretrain.models import create_paper_model, paper_model
from mmengine.config import Config
from timm.data import create_transform, resolve_data_config
from torch.utils.data import Dataset

__all__ = ["FeatureCache", "ProbeError", "build_probe_config", "extract_features", "fit_logistic", "knn_predict",
           "linear_probe", "pre_logits", "run_probe"]

log = logging.getLogger(__name__)
FEATURES_VERSION = 1  # bump when what a cached feature file holds changes: older files are then not used
_HASH_FREE = ("cache",)  # where the cache lives does not change a result: left out of the config hash


class ProbeError(ValueError):
    """Input the probe cannot work with (data, checkpoint features, cache folder); the message names the fix."""


# ------------------------------------------------------------------------------------------------------------ recipe
def build_probe_config(job: Job) -> Config:
    """The resolved probe config: recipe, then the job, then its overrides."""
    if job.dataset not in CLS_DATASETS:
        raise ValueError(f"unknown --dataset {job.dataset!r}; choose one of: {', '.join(CLS_DATASETS)}")
    paper_model(job.model)  # validates the name
    if job.checkpoint is None:
        raise ValueError("the probe needs a --checkpoint: it evaluates a pretrained model's frozen features")
    cfg = load_config(resolve_config(get_task("probe").stage, job.config))
    cfg.merge_from_dict({"model.name": job.model, "model.checkpoint": str(job.checkpoint),
                         "model.use_ema": bool(job.use_ema), "data.dataset": job.dataset, "data.root": job.data})
    if job.seed is not None:
        cfg.merge_from_dict({"runtime.seed": int(job.seed)})
    if job.cfg_options:
        cfg.merge_from_dict(dict(job.cfg_options))
    if cfg.data.dataset != job.dataset:
        raise ValueError(f"data.dataset is {cfg.data.dataset!r} but --dataset is {job.dataset!r}")
    ks = [int(cfg.knn.k), *map(int, cfg.knn.extra_k)]
    if min(ks) < 1 or float(cfg.knn.temperature) <= 0:
        raise ValueError(f"knn: k must be >= 1 and temperature > 0, got k {ks}, T {cfg.knn.temperature}")
    if not cfg.linear.l2_sweep or min(float(x) for x in cfg.linear.l2_sweep) <= 0:
        raise ValueError(f"linear.l2_sweep must list positive L2 strengths, got {cfg.linear.l2_sweep!r}")
    if not 0 < float(cfg.linear.holdout) < 1:
        raise ValueError(f"linear.holdout must be a fraction in (0, 1), got {cfg.linear.holdout!r}")
    return cfg


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def eval_transform(cfg: Config, model: nn.Module) -> Callable:
    """timm's eval transform (resize, center crop, normalise) at the recipe's size; mean / std from the model's cfg."""
    d = cfg.data
    size = int(d.input_size)
    base = resolve_data_config({"input_size": (3, size, size)}, model=model)
    return create_transform(input_size=size, is_training=False, interpolation=d.interpolation,
                            crop_pct=d.crop_pct or base["crop_pct"], mean=tuple(d.mean or base["mean"]),
                            std=tuple(d.std or base["std"]))


# ---------------------------------------------------------------------------------------------------------- features
def pre_logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The model's pre-logits features: ``forward_head(forward_features(x), pre_logits=True)``."""
    return model.forward_head(model.forward_features(images), pre_logits=True)


@torch.no_grad()
def extract_features(model: nn.Module, dataset: Dataset, transform: Callable, batch_size: int, num_workers: int,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (n, d) float32 on the CPU and labels (n,) of every image of ``dataset``, in index order."""
    model.eval()
    loader = eval_loader(SeededDataset(dataset, transform, 0), batch_size, 0, 1, num_workers)
    feats, labels = [], []
    for images, targets in loader:
        f = pre_logits(model, images.to(device, non_blocking=True))
        feats.append(f.float().flatten(1).cpu())
        labels.append(torch.as_tensor(targets, dtype=torch.int64))
    return torch.cat(feats), torch.cat(labels)


@dataclass
class FeatureCache:
    """Cached feature files under ``root``: one ``.npz`` per (checkpoint, model, data set, split, transform).

    A file holds ``features`` (n, d) float32, ``labels`` (n,) and ``key`` (the JSON of what it was computed from);
    it is used only when its key, its image count and its labels match, and is rebuilt when it cannot be read
    (truncated, damaged).
    """

    root: Path

    @classmethod
    def at(cls, folder: str | os.PathLike | None) -> FeatureCache:
        """The cache in ``folder``, or by default ``$DROPBENCH_CACHE/features`` (``~/.cache/dropbench/features``),
        after checking that it can be written."""
        if folder:
            root = Path(folder).expanduser()
        else:
            base = os.environ.get("DROPBENCH_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or
                                                             Path.home() / ".cache") / "dropbench"
            root = Path(base) / "features"
        try:
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=root):
                pass
        except OSError as e:
            raise ProbeError(f"the feature cache folder {root} cannot be written ({e.strerror or e}); give a writable "
                             f"one with --cfg-options cache.dir=DIR (or set DROPBENCH_CACHE)") from None
        return cls(root.resolve())

    def path(self, key: dict) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return self.root / key["checkpoint_sha256"][:16] / f"{key['dataset']}_{key['split']}_{digest}.npz"

    def load(self, key: dict, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The cached features of ``key`` or None (absent, or damaged: then logged and left to be rebuilt)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                stored, feats, got = json.loads(str(z["key"])), z["features"], z["labels"]
            if stored != key:
                raise ValueError("it was computed from other inputs")
            if feats.ndim != 2 or len(feats) != len(labels) or not np.array_equal(got, labels):
                raise ValueError(f"it holds {feats.shape} features for {len(labels)} images")
            if not np.isfinite(feats).all():
                raise ValueError("it holds non-finite features")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            log.warning("feature cache file %s is damaged or stale (%s): rebuilding it", path, e)
            return None
        return torch.from_numpy(np.ascontiguousarray(feats)), torch.from_numpy(got.astype(np.int64))

    def save(self, key: dict, feats: torch.Tensor, labels: torch.Tensor) -> Path:
        """Write the features of ``key`` atomically (temp file + rename)."""
        arrays = {"features": feats.numpy(), "labels": labels.numpy(), "key": np.asarray(json.dumps(key,
                                                                                                 sort_keys=True))}
        return atomic_write(self.path(key), lambda f: np.savez(f, **arrays), binary=True, label="features")


def _data_identity(dataset: Dataset, folder: Path) -> tuple[dict, np.ndarray]:
    labels = np.asarray(split_labels(dataset), dtype=np.int64)
    return {"folder": str(Path(folder).resolve()), "images": len(labels),
            "labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest()[:16]}, labels


def split_features(model: nn.Module, dataset: Dataset, split: str, cfg: Config, report: LoadReport, data: ClsData,
                   transform: Callable, cache: FeatureCache, device: torch.device) -> tuple[torch.Tensor, torch.Tensor,
                                                                                            dict]:
    """One split's features: from the cache when it holds them, else extracted, checked and cached."""
    identity, labels = _data_identity(dataset, data.folder)
    key = {"version": FEATURES_VERSION, "checkpoint_sha256": report.sha256, "weights": report.weights,
           "model": cfg.model.name, "dataset": cfg.data.dataset, "split": split, "data": identity,
           "transform": repr(transform), "features": "forward_features + forward_head(pre_logits=True), eval mode"}
    t0 = time.perf_counter()
    hit = cache.load(key, labels)
    if hit is not None:
        feats, got = hit
        log.info("%s %s features from the cache (%s)", cfg.data.dataset, split, cache.path(key))
    else:
        feats, got = extract_features(model, dataset, transform, int(cfg.data.batch_size), int(cfg.data.num_workers),
                                      device)
        bad = int((~torch.isfinite(feats)).any(dim=1).sum())
        if bad:
            raise ProbeError(f"checkpoint {report.path} gives non-finite features for {bad} of {len(feats)} "
                             f"{cfg.data.dataset} {split} images: its weights hold NaN / Inf or the model "
                             f"diverged; probe another checkpoint (nothing was cached)")
        if not np.array_equal(got.numpy(), labels):
            raise RuntimeError(f"{cfg.data.dataset} {split}: the loader's labels differ from the split's")
        cache.save(key, feats, got)
    info = {"cache_hit": hit is not None, "cache_file": str(cache.path(key)), "images": len(got),
            "seconds": round(time.perf_counter() - t0, 3)}
    return feats, got, info


# --------------------------------------------------------------------------------------------------------------- kNN
def knn_predict(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, num_classes: int,
                ks: Sequence[int], temperature: float, chunk_elements: int = 1 << 26, topk: int = 5
                ) -> dict[int, torch.Tensor]:
    """DINO's weighted kNN classifier (``eval_knn.py``'s ``knn_classifier``) for several k at once.

    Features are L2-normalised; each test image's k most similar training images vote for their class with weight
    ``exp(cosine / temperature)``. Test images are taken in chunks of ``chunk_elements // n_train`` rows (one matrix
    product and one top-k each).

    Returns:
        k -> (n_test, min(topk, classes)) predicted classes, best first (k capped at the training set's size).
    """
    train = F.normalize(train.float(), dim=1)
    test = F.normalize(test.float(), dim=1)
    n_train = len(train)
    kmax = min(max(ks), n_train)
    rows = max(1, chunk_elements // max(n_train, 1))
    k_out = min(topk, num_classes)
    out: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    train_t = train.t().contiguous()
    buffer = test.new_empty(min(rows, len(test)), n_train)  # one similarity block, reused (no fresh pages per chunk)
    for start in range(0, len(test), rows):
        block = test[start:start + rows]
        sim = torch.mm(block, train_t, out=buffer[:len(block)])
        dist, idx = sim.topk(kmax, dim=1, largest=True, sorted=True)
        neighbours = train_labels[idx]
        weights = (dist / temperature).exp()
        for k in ks:
            kk = min(k, kmax)
            votes = torch.zeros(len(sim), num_classes, dtype=weights.dtype, device=weights.device)
            votes.scatter_add_(1, neighbours[:, :kk], weights[:, :kk])
            out[k].append(votes.topk(k_out, dim=1).indices)
    return {k: torch.cat(v) for k, v in out.items()}


# ------------------------------------------------------------------------------------------------------------ linear
def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float, max_iter: int,
                 init: tuple[torch.Tensor, torch.Tensor] | None = None, tolerance: float = 1e-5
                 ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Multinomial logistic regression by full-batch L-BFGS: minimise mean cross-entropy + ``l2 / 2 * ||W||^2``.

    The bias is not regularised. The gradient is written out (softmax minus one-hot), two matrix products per
    evaluation and no autograd graph over the data. ``init``: a warm start (W, b).

    Returns:
        W (classes, d), b (classes,) and the number of L-BFGS iterations; logits are ``x @ W.T + b``.
    """
    n = len(x)
    w = (init[0].clone() if init else x.new_zeros(num_classes, x.shape[1])).requires_grad_()
    b = (init[1].clone() if init else x.new_zeros(num_classes)).requires_grad_()
    rows = torch.arange(n, device=x.device)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=10, tolerance_grad=tolerance,
                            tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        with torch.no_grad():
            log_p = torch.addmm(b, x, w.t()).log_softmax(1)
            loss = -log_p[rows, y].mean() + 0.5 * l2 * w.pow(2).sum()
            g = log_p.exp_()  # softmax
            g[rows, y] -= 1.0
            g /= n
            w.grad = torch.addmm(w, g.t(), x, beta=l2)  # g^T x + l2 W
            b.grad = g.sum(0)
        return loss

    opt.step(closure)
    iters = int(opt.state[opt.param_groups[0]["params"][0]].get("n_iter", 0))
    return w.detach(), b.detach(), iters


@contextlib.contextmanager
def _threads(threads: int | None):
    """torch's intra-op CPU threads for the run (None: the process's setting), restored afterwards."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _standardise(fit: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    mean, std = fit.mean(0), fit.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return [(t - mean) / std for t in (fit, *others)]


def _holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A stratified held-out mask: ``fraction`` of each class (rounded, at least one image of classes with two or
    more, never a class's last training image)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        if len(where) < 2:
            continue
        take = min(len(where) - 1, max(1, int(round(fraction * len(where)))))
        mask[rng.choice(where, take, replace=False)] = True
    return mask


def linear_probe(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, num_classes: int,
                 l2_sweep: Sequence[float], holdout: float, seed: int, sweep_max_iter: int, max_iter: int,
                 tolerance: float = 1e-4, patience: int | None = None, topk: int = 5) -> tuple[torch.Tensor, dict]:
    """Choose the L2 strength on a held-out part of the training split, refit on all of it, predict the test split.

    The sweep runs from the strongest L2 to the weakest, each fit warm-started from the previous one; the strength
    with the highest held-out top-1 wins (ties: the stronger). With ``patience`` the sweep stops once that many
    strengths in a row scored below the best so far (past the peak, weaker L2 only over-fits more). Standardisation
    statistics come from the images each fit trains on.

    Returns:
        (n_test, min(topk, classes)) predicted classes, best first; and what was done (sweep, scores, choice).
    """
    y_np = train_labels.cpu().numpy()
    mask_np = _holdout(y_np, holdout, seed)
    if not mask_np.any():
        raise ProbeError("the training split has no class with two or more images: nothing can be held out to "
                         "choose the L2 strength; give a training split with several images per class")
    mask = torch.from_numpy(mask_np).to(train.device)
    fit_x, held_x = _standardise(train[~mask], train[mask])
    fit_y, held_y = train_labels[~mask], train_labels[mask]
    grid = sorted((float(v) for v in l2_sweep), reverse=True)
    scores, iters, init = [], [], None
    solutions = {}
    for l2 in grid:
        w, b, n = fit_logistic(fit_x, fit_y, num_classes, l2, sweep_max_iter, init, tolerance)
        init = (w, b)
        solutions[l2] = init
        pred = torch.addmm(b, held_x, w.t()).argmax(1)
        scores.append(100.0 * int((pred == held_y).sum()) / len(held_y))
        iters.append(n)
        below = len(scores) - 1 - int(np.argmax(scores))  # strengths since the best (argmax: the first best)
        if patience and below >= patience:
            break
    best = grid[int(np.argmax(scores))]  # argmax: the first of equal scores, i.e. the strongest L2
    all_x, test_x = _standardise(train, test)
    w, b, n = fit_logistic(all_x, train_labels, num_classes, best, max_iter, solutions[best], tolerance)
    pred = torch.addmm(b, test_x, w.t()).topk(min(topk, num_classes), dim=1).indices
    rule = "highest held-out top-1 (ties: the stronger L2)" + (f"; the sweep stops after {patience} strengths in a "
                                                               f"row below the best" if patience else "")
    info = {"l2": best, "rule": rule, "l2_sweep": grid[:len(scores)], "l2_grid": grid,
            "heldout_top1": scores, "sweep_iterations": iters, "refit_iterations": n, "holdout": holdout,
            "fit_images": int((~mask_np).sum()), "heldout_images": int(mask_np.sum()), "objective":
            "mean cross-entropy + l2 / 2 * ||W||^2 (bias not regularised), standardised features"}
    return pred, info


# ------------------------------------------------------------------------------------------------------------- entry
def _check_training_split(data: ClsData, train_labels: np.ndarray, dataset: str) -> None:
    classes = np.unique(train_labels)
    if len(classes) < 2:
        raise ProbeError(f"{dataset}: the training split ({data.splits['train']}) in {data.folder} has "
                         f"{len(classes)} class(es): a probe needs a training split with two or more classes")
    counts = np.bincount(train_labels)
    if counts.max() < 2:
        raise ProbeError(f"{dataset}: the training split ({data.splits['train']}) in {data.folder} has one image per "
                         f"class: the L2 strength cannot be chosen on held-out images; give several per class")


def run_probe(job: Job) -> Outcome:
    """Probe ``job.checkpoint`` (paper model ``job.model``) with kNN and linear classifiers on a classification set.

    Args:
        job: ``dataset`` one of :data:`~finetune.datasets.cls.CLS_DATASETS`, its root ``data``; ``out`` the run
            directory (``samples.npz``; ``result.json`` by the caller); ``config`` a recipe under ``configs/probe/``
            (``smoke``, ``standard``) or a file; ``cfg_options`` e.g. ``{"cache.dir": "/scratch/features"}``.

    Raises:
        ProbeError: an unwritable cache folder, a training split the probe cannot use, non-finite features.
        DataLayoutError: the data root does not hold the data set; CheckpointError: the checkpoint does not fit.
    """
    cfg = build_probe_config(job)
    cache = FeatureCache.at(cfg.cache.dir)  # first: an unwritable cache fails before any work
    with _threads(cfg.runtime.threads):
        return _probe(job, cfg, cache)


def _probe(job: Job, cfg: Config, cache: FeatureCache) -> Outcome:
    seed = int(cfg.runtime.seed)
    device = _device(cfg.runtime.device)
    cpu0 = time.process_time()
    data = load_cls_data(cfg.data.dataset, cfg.data.root)
    train_split_labels = np.asarray(split_labels(data.train), dtype=np.int64)
    _check_training_split(data, train_split_labels, cfg.data.dataset)
    model = create_paper_model(cfg.model.name, num_classes=0, img_size=int(cfg.data.input_size),
                               **checkpoint_model_args(cfg.model.checkpoint))
    try:
        report = load_pretrained(model, cfg.model.checkpoint, cfg.model.name, bool(cfg.model.use_ema))
    except CheckpointError as e:
        if paper_model(cfg.model.name).family == "mixer" and "another shape" in str(e):
            raise CheckpointError(f"{e} Mixer's token mixing is tied to the input size: probe at the resolution of "
                                  f"pretraining (--cfg-options data.input_size=N).") from None
        raise
    model.to(device).eval()
    transform = eval_transform(cfg, model)
    timings: dict[str, float] = {}
    train_x, train_y, train_info = split_features(model, data.train, data.splits["train"], cfg, report, data,
                                                  transform, cache, device)
    test_x, test_y, test_info = split_features(model, data.test, data.splits["test"], cfg, report, data, transform,
                                               cache, device)
    del model
    num_classes = data.num_classes
    work = device if device.type == "cuda" else torch.device("cpu")
    train_x, train_y, test_x = train_x.to(work), train_y.to(work), test_x.to(work)

    ks = list(dict.fromkeys([int(cfg.knn.k), *map(int, cfg.knn.extra_k)]))
    lin = cfg.linear
    t0 = time.perf_counter()
    knn = knn_predict(train_x, train_y, test_x, num_classes, ks, float(cfg.knn.temperature),
                      int(cfg.knn.chunk_elements))
    timings["knn_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    linear_pred, linear_info = linear_probe(train_x, train_y, test_x, num_classes, list(lin.l2_sweep),
                                            float(lin.holdout), seed, int(lin.sweep_max_iter), int(lin.max_iter),
                                            float(lin.tolerance), lin.get("patience"))
    timings["linear_s"] = round(time.perf_counter() - t0, 3)
    timings["cpu_s"] = round(time.process_time() - cpu0, 3)  # this process, all threads (loader workers not counted)

    ids, labels = np.arange(len(test_y)), test_y.cpu().numpy()
    states = {"linear": ClassificationState(ids, labels, linear_pred.cpu().numpy(), num_classes, prefix="linear_")}
    suffix = {k: "" if k == int(cfg.knn.k) else f"_k{k}" for k in ks}  # knn_top1 is k = 20, knn_top1_k10 k = 10
    for k in ks:
        states[f"knn{suffix[k]}"] = ClassificationState(ids, labels, knn[k].cpu().numpy(), num_classes,
                                                        prefix="knn_", suffix=suffix[k])
    summary = {m: v for s in states.values() for m, v in s.summary().items()}
    metrics = {**{f"knn_top1{suffix[k]}": summary[f"knn_top1{suffix[k]}"] for k in ks},
               "linear_top1": summary["linear_top1"], "linear_top5": summary["linear_top5"],
               "linear_l2": float(linear_info["l2"]), "feature_dim": float(train_x.shape[1]),
               "cache_hit": float(train_info["cache_hit"] and test_info["cache_hit"])}
    name = write_samples(job.out, states, metrics)
    return Outcome(
        metrics=metrics, config=plain(cfg), config_hash=config_hash(cfg, exclude=_HASH_FREE), seed=seed,
        checkpoint=job.checkpoint, load_report=report, log_path=None,
        extra={
            "recipe": job.config,
            "features": {"train": train_info, "test": test_info, "dim": int(train_x.shape[1]),
                         "transform": repr(transform), "device": str(device)},
            "knn": {"k": ks, "k_used": {str(k): min(k, len(train_y)) for k in ks},
                    "temperature": float(cfg.knn.temperature), "similarity": "cosine",
                    "votes": "sum of exp(similarity / T) per class (DINO eval_knn.py)",
                    "top5": {str(k): summary[f"knn_top5{suffix[k]}"] for k in ks}},
            "linear": linear_info,
            "timings": timings,
            "classes": data.classes,
            "num_classes": num_classes,
            "splits": data.splits,
            "train_images": len(train_y),
            "test_images": len(test_y),
            "generated_data": data.generated,
            **({"samples": name} if name else {}),
        },
    )

