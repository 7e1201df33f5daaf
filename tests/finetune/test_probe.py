"""Frozen-feature probes: kNN and linear classifiers on known features, the feature cache (keyed by transform,
damaged files rebuilt), the task end to end through `evaluate --tasks probe` with its table, and refusals."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dropbench.benchmarks.cli import main
from dropbench.benchmarks.results import read_result
from dropbench.benchmarks.suite import plan
from dropbench.finetune.probe import ProbeError, knn_predict, linear_probe, run_probe
from dropbench.finetune.samples import load_states
from dropbench.finetune.tasks import Job
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {"data.input_size": 32}  # vit_tiny at 32 px: 4 patches, milliseconds per image
SWEEP = dict(l2_sweep=[1e-4, 1e-2, 1.0], holdout=0.2, seed=0, sweep_max_iter=30, max_iter=100)


def _blobs(classes: int, per_class: int, dim: int, spread: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(99)) * 4
    y = torch.arange(classes).repeat_interleave(per_class)
    return centres[y] + spread * torch.randn(len(y), dim, generator=g), y


def _top1(pred: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * float((pred[:, 0] == y).float().mean())


def test_separable_classes_are_classified_perfectly_and_random_labels_at_chance():
    train, ty = _blobs(10, 30, 24, 0.5, seed=0)
    test, sy = _blobs(10, 20, 24, 0.5, seed=1)
    knn = knn_predict(train, ty, test, 10, [20, 1, 10], 0.07)
    assert {k: _top1(p, sy) for k, p in knn.items()} == {20: 100.0, 1: 100.0, 10: 100.0}
    pred, info = linear_probe(train, ty, test, 10, **SWEEP)
    assert _top1(pred, sy) == 100.0 and pred.shape == (200, 5)
    assert info["l2"] in SWEEP["l2_sweep"] and len(info["heldout_top1"]) == 3 and info["heldout_images"] == 60

    g = torch.Generator().manual_seed(3)
    noise, labels = torch.randn(3000, 16, generator=g), torch.randint(0, 10, (3000,), generator=g)
    knn = knn_predict(noise[:2000], labels[:2000], noise[2000:], 10, [20], 0.07)
    pred, _ = linear_probe(noise[:2000], labels[:2000], noise[2000:], 10, **SWEEP)
    for top1 in (_top1(knn[20], labels[2000:]), _top1(pred, labels[2000:])):
        assert 5.0 < top1 < 15.0, f"random labels: top-1 {top1:.1f} % is not near chance (10 %)"


def test_knn_is_dinos_weighted_vote_in_any_chunking():
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(50, 8, generator=g), torch.randn(7, 8, generator=g)
    labels = torch.randint(0, 4, (50,), generator=g)
    got = knn_predict(train, labels, test, 4, [5], 0.07)[5]
    assert torch.equal(knn_predict(train, labels, test, 4, [5], 0.07, chunk_elements=100)[5], got)  # 2 rows a chunk
    sim = F.normalize(test, dim=1) @ F.normalize(train, dim=1).t()
    for i in range(7):  # eval_knn.py: the k most similar vote with exp(similarity / T)
        top = sim[i].topk(5)
        votes = torch.zeros(4).index_add_(0, labels[top.indices], (top.values / 0.07).exp())
        assert got[i, 0] == votes.argmax()


def _job(data: Path, ckpt: Path, out: Path, cache: Path, **options) -> Job:
    return Job(model="vit_tiny", checkpoint=ckpt, data=data, out=out, dataset="pets",
               cfg_options={**TINY, "cache.dir": str(cache), **options})


def test_features_are_cached_per_transform_and_a_damaged_file_is_rebuilt(paper_checkpoint, synth_cls, tmp_path,
                                                                         caplog):
    ckpt, data, cache = paper_checkpoint("vit_tiny"), synth_cls("pets", 4, 8, 4), tmp_path / "cache"
    first = run_probe(_job(data, ckpt, tmp_path / "a", cache))
    m = first.metrics
    assert m["cache_hit"] == 0.0 and m["feature_dim"] == 192.0 and m["linear_l2"] in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2,
                                                                                       1e-1, 1.0)
    assert {"knn_top1", "knn_top1_k1", "knn_top1_k10", "linear_top1", "linear_top5"} <= set(m)
    states = load_states(tmp_path / "a" / first.extra["samples"])  # per test image, recomputing every metric
    assert set(states) == {"linear", "knn", "knn_k1", "knn_k10"} and states["knn"].n_images == 16
    assert all(abs(s.summary()[k] - m[k]) < 1e-9 for s in states.values() for k in s.summary() if k in m)
    files = sorted(cache.rglob("*.npz"))
    assert len(files) == 2 and all(first.checkpoint_sha256[:16] == f.parent.name for f in files)

    again = run_probe(_job(data, ckpt, tmp_path / "b", cache))  # the same inputs: both splits from the cache
    assert again.metrics == {**m, "cache_hit": 1.0}
    other = run_probe(_job(data, ckpt, tmp_path / "c", cache, **{"data.crop_pct": 0.5}))  # another transform
    assert other.metrics["cache_hit"] == 0.0 and len(list(cache.rglob("*.npz"))) == 4

    train_file = Path(first.extra["features"]["train"]["cache_file"])
    whole = train_file.read_bytes()
    train_file.write_bytes(whole[: len(whole) // 2])  # truncated (a crash, a full disk)
    with caplog.at_level(logging.WARNING, logger="dropbench.finetune.probe"):
        rebuilt = run_probe(_job(data, ckpt, tmp_path / "d", cache))
    assert f"feature cache file {train_file} is damaged" in caplog.text
    f = rebuilt.extra["features"]
    assert (f["train"]["cache_hit"], f["test"]["cache_hit"]) == (False, True)
    assert rebuilt.metrics == m and len(train_file.read_bytes()) == len(whole)


PRESET = """
preset = 'probe-mini'
seeds = [0]
data = dict(imagenet=None, pets=None)
data_policy = dict(pets='generated')
synth = dict(pets=dict(num_classes=3, train_per_class=8, test_per_class=4))
pretrain = dict(config='smoke', variants={}, runs=[])
finetune = dict(cls=dict(config='smoke', models=['vit_tiny'], datasets=['pets'], cfg_options={}),
                probe=dict(config='smoke', models=['vit_tiny'], datasets=['pets'],
                           cfg_options={'data.input_size': 32}))
"""


def test_evaluate_tasks_probe_prints_the_probe_table_with_intervals(paper_checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DROPBENCH_CACHE", str(tmp_path / "cache"))
    preset = tmp_path / "preset.py"
    preset.write_text(PRESET)
    ckpt, out = paper_checkpoint("vit_tiny"), tmp_path / "suite"
    for label in ("mine", "again"):  # no --model: the checkpoint's metadata names it
        assert main(["evaluate", "--tasks", "probe", "--checkpoint", str(ckpt), "--label", label, "--preset",
                     str(preset), "--out", str(out), "--no-progress", "--baseline", "mine"]) == 0
    text = capsys.readouterr().out
    assert [p.parent.name for p in sorted((out / "runs").rglob("result.json"))] == ["seed0", "seed0"]
    first = read_result(out / "runs" / "probe/pets/vit_tiny/mine/seed0")
    second = read_result(out / "runs" / "probe/pets/vit_tiny/again/seed0")
    assert (first.metrics["cache_hit"], second.metrics["cache_hit"]) == (0.0, 1.0)  # the second reads the cache
    assert not (out / "runs" / "cls").exists()  # --tasks probe: only the probe ran
    table = (out / "tables" / "probe.md").read_text()
    assert "**Frozen-feature probes: kNN (k = 20) and linear top-1 (%) — probe smoke; seed 0**" in table
    head = table.splitlines()[2]
    for title in ("Pets kNN", "Pets linear", "Pets kNN delta", "Pets linear ci_low", "kNN mean", "linear mean"):
        assert f" {title} " in head  # (the means need all five data sets)
    row = next(line for line in table.splitlines() if "| again " in line)
    assert row.count(" +0.0 ") == 2 and row.count(" 0.0 ") == 4  # the same checkpoint: difference 0, interval [0, 0]
    assert "B = 1000" in table and "Frozen-feature probes" in text
    with pytest.raises(ValueError, match="--tasks coco: preset probe-mini has no 'coco' entry; its tasks: cls, probe"):
        plan(preset, out, checkpoint=str(ckpt), model="vit_tiny", tasks=["coco"])


def test_refusals_name_the_problem_and_write_nothing(paper_checkpoint, synth_cls, tmp_path, capsys):
    ckpt, data = paper_checkpoint("vit_tiny"), synth_cls("pets", 4, 8, 4)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(ProbeError, match=f"the feature cache folder {blocked}/sub cannot be written .*cache.dir=DIR"):
        run_probe(_job(data, ckpt, tmp_path / "r1", blocked / "sub"))
    assert not (tmp_path / "r1").exists()

    sd = torch.load(ckpt, weights_only=True)
    sd["model"]["norm.weight"][:5] = float("nan")
    broken = tmp_path / "nan.pth"
    torch.save(sd, broken)
    with pytest.raises(ProbeError, match=f"checkpoint {broken} gives non-finite features for 32 of 32 pets"):
        run_probe(_job(data, broken, tmp_path / "r2", tmp_path / "cache"))
    assert not list((tmp_path / "cache").rglob("*.npz"))  # nothing cached

    root = tmp_path / "one-per-class"  # an image folder whose training split has one image per class
    for split in ("train", "val"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            Image.fromarray(np.full((8, 8, 3), 40 if c == "a" else 200, np.uint8)).save(root / split / c / "0.jpg")
    code = main(["finetune", "probe", "--dataset", "imagefolder", "--checkpoint", str(ckpt), "--data", str(root),
                 "--out", str(tmp_path / "r3"), "--cfg-options", f"cache.dir={tmp_path / 'cache'}"])
    err = capsys.readouterr().err
    assert code == 2 and f"{root} has one image per class" in err and "give several per class" in err
    assert read_result(tmp_path / "r3").status == "failed" and not list((tmp_path / "cache").rglob("*.npz"))

    bare = tmp_path / "bare.pth"  # a plain state dict: no metadata names its model
    torch.save(sd["model"], bare)
    code = main(["finetune", "probe", "--dataset", "pets", "--checkpoint", str(bare), "--data", str(data), "--out",
                 str(tmp_path / "r4")])
    assert code == 2 and f"{bare} does not name its architecture" in (err := capsys.readouterr().err)
    assert "give --model" in err
