"""COCO detection: data checks, synth-coco, recipes, the backbone adapter in mmdet, layer decay, and a real Mask R-CNN
fine-tune through the CLI that is killed, resumed and evaluated."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")

from dropbench.benchmarks import cli  # noqa: E402
from dropbench.finetune.backbone import TimmPyramidBackbone, pyramid_channels  # noqa: E402
from dropbench.finetune.convert import CheckpointError  # noqa: E402
from dropbench.finetune.datasets.coco import (  # noqa: E402
    SYNTH_CATEGORIES,
    CocoFormatError,
    check_coco,
    write_synth_coco,
)
from dropbench.finetune.det import COCO_METRICS, configure_coco, run_coco  # noqa: E402
from dropbench.finetune.mm import adapt_to_device, install_safe_checkpoint_loading, prepare_runner_config  # noqa: E402
from dropbench.finetune.samples import load_states  # noqa: E402
from dropbench.finetune.tasks import Job  # noqa: E402
from dropbench.pretrain.config import resolve_config  # noqa: E402
from dropbench.pretrain.models import create_paper_model  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.registry import HOOKS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "dropbench.benchmarks.cli"]  # the `dropbench` command, run from this checkout
DENSE = ("vit_tiny", "vit_base", "swin_femto", "convnext_femto")
TINY_RUN = ["train_cfg.max_epochs=2", "default_hooks.logger.interval=1"]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    """A tiny generated COCO root: 8 train / 4 val images."""
    return write_synth_coco(tmp_path_factory.mktemp("coco"), seed=1, num_train=8, num_val=4)


@pytest.fixture(scope="module")
def swin_ckpt(paper_checkpoint) -> Path:
    """A dropbench-layout checkpoint of swin_femto with a 10-class head."""
    return paper_checkpoint("swin_femto", drop_kind="drop_path", drop_rate=0.1, drop_mode="early")


def _detector(model_name: str, checkpoint: Path | None = None):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope("mmdet")
    cfg = prepare_runner_config("det", Job(model=model_name, checkpoint=checkpoint, data="", out="/tmp/unused"))
    cfg.model.neck.in_channels = list(pyramid_channels(model_name))
    return MODELS.build(cfg.model), cfg


# ---------------------------------------------------------------- backbone adapter


@pytest.mark.parametrize("name", DENSE)
def test_backbone_pyramid_strides_and_channels(name):
    bb = TimmPyramidBackbone(name, img_size=64)
    bb.init_weights()
    bb.eval()
    with torch.no_grad():
        outs = bb(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, c, 64 // s, 96 // s)
                                              for c, s in zip(pyramid_channels(name), (4, 8, 16, 32))]
    assert bb.out_channels == list(pyramid_channels(name))


@pytest.mark.parametrize("name", DENSE)
def test_backbone_takes_any_input_size(name):
    """Test-time scales and sliding-window crops reach the backbone at any size: padded inside, maps of
    ceil(size / stride), as mmdet's / mmseg's backbones return (timm's Swin and ViT alone assert divisibility)."""
    import math

    bb = TimmPyramidBackbone(name, img_size=64).eval()
    with torch.no_grad():
        for h, w in ((67, 93), (90, 121), (33, 35)):
            outs = bb(torch.randn(1, 3, h, w))
            assert [tuple(o.shape) for o in outs] == [(1, c, math.ceil(h / s), math.ceil(w / s))
                                                      for c, s in zip(pyramid_channels(name), (4, 8, 16, 32))]
            assert all(o.is_contiguous() for o in outs)


@pytest.mark.parametrize("name", ["vit_tiny", "swin_femto", "convnext_femto"])
def test_every_trainable_backbone_parameter_gets_a_gradient(name):
    """DDP (find_unused_parameters=False) needs it: the classifier-side norms are frozen, not left dangling."""
    bb = TimmPyramidBackbone(name, img_size=64)
    sum(o.sum() for o in bb(torch.randn(1, 3, 64, 64))).backward()
    assert [n for n, p in bb.named_parameters() if p.requires_grad and p.grad is None] == []
    assert not bb.model.get_submodule("head.norm" if name == "convnext_femto" else "norm").weight.requires_grad


def test_swin_backbone_matches_mmdet_swin_transformer():
    """Given the same weights, our timm-built Swin-F pyramid and mmdet's SwinTransformer compute the same maps."""
    import importlib.util

    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    spec = importlib.util.spec_from_file_location("bench_det_backbone", REPO / "tools" / "bench_det_backbone.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from bench_common import openmmlab_swin_state_dict  # tools/, put on the path by the benchmark script
    from mmdet.models.backbones.swin import swin_converter

    init_default_scope("mmdet")
    torch.manual_seed(0)
    ours = TimmPyramidBackbone("swin_femto").eval()
    theirs = MODELS.build(dict(bench.MMDET_SWIN_F, drop_path_rate=0.0))
    theirs.eval()
    missing, unexpected = theirs.load_state_dict(openmmlab_swin_state_dict(ours, swin_converter), strict=False)
    assert unexpected == [] and all(k.endswith("relative_position_index") for k in missing)
    # 224x448: every stage a whole number of 7x7 windows, shifted ones in stage 4 too; 67x93 and 90x121: sizes that
    # are no multiple of the patch, of the windows or of the merging strides (both pad: the maps must still agree)
    for size in ((224, 448), (67, 93), (90, 121)):
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            for a, b in zip(ours(x), theirs(x), strict=True):
                torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_mixer_is_refused(coco, tmp_path):
    with pytest.raises(ValueError, match="classification only"):
        TimmPyramidBackbone("mixer_s32")
    with pytest.raises(ValueError, match="classification only"):
        run_coco(Job(model="mixer_b16", checkpoint=None, data=coco, out=tmp_path / "run"))


def test_init_weights_loads_the_checkpoint(swin_ckpt):
    det, _ = _detector("swin_femto", swin_ckpt)
    fresh = {k: v.clone() for k, v in det.backbone.model.state_dict().items()}
    det.init_weights()
    stored = torch.load(swin_ckpt, weights_only=True)["model"]
    loaded = det.backbone.model.state_dict()
    assert det.backbone.load_report.loaded == len(loaded)
    for k, v in loaded.items():
        torch.testing.assert_close(v, stored[k], msg=k)
    assert any(not torch.equal(fresh[k], loaded[k]) for k in loaded)  # it really changed the weights


def test_misfit_checkpoint_fails_the_build(tmp_path):
    path = tmp_path / "convnext.pth"
    torch.save({"model": create_paper_model("convnext_femto", num_classes=10).state_dict()}, path)
    det, _ = _detector("swin_femto", path)
    with pytest.raises(CheckpointError, match="does not fit"):
        det.init_weights()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(path.read_bytes()[:5000])
    det, _ = _detector("swin_femto", cut)
    with pytest.raises(CheckpointError, match="truncated"):
        det.init_weights()


def test_misfit_checkpoint_fails_the_run(coco, tmp_path, capsys):
    path = tmp_path / "vit.pth"
    torch.save({"model": create_paper_model("vit_tiny", num_classes=10).state_dict()}, path)
    out = tmp_path / "run"
    rc = cli.main(["finetune", "coco", "--checkpoint", str(path), "--model", "swin_femto", "--data", str(coco),
                   "--out", str(out)])
    assert rc == 2 and "does not fit swin_femto" in capsys.readouterr().err
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "failed" and "CheckpointError" in result["error"]
    assert not list(out.glob("epoch_*.pth"))  # refused before any training


# ---------------------------------------------------------------- layer decay


@pytest.mark.parametrize("name", ["swin_femto", "vit_tiny"])
def test_layer_decay_groups(name):
    from mmengine.optim import build_optim_wrapper

    det, cfg = _detector(name)
    det.backbone.model.patch_embed.proj.weight.requires_grad = False  # frozen parameters stay out
    adapt_to_device(cfg)
    wrapper = build_optim_wrapper(det, cfg.optim_wrapper)
    groups = wrapper.optimizer.param_groups
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = {id(p): n for n, p in det.named_parameters() if p.requires_grad}
    assert len(ids) == len(set(ids)) and set(ids) == set(trainable)  # each trainable parameter exactly once
    base_lr = cfg.optim_wrapper.optimizer.lr
    scale = {trainable[id(p)]: g["lr"] / base_lr for g in groups for p in g["params"]}
    wd = {trainable[id(p)]: g["weight_decay"] for g in groups for p in g["params"]}
    assert all(s == 1.0 for n, s in scale.items() if not n.startswith("backbone.model."))  # neck, heads: full lr
    layer = {trainable[id(p)]: g["layer_id"] for g in groups for p in g["params"]}
    backbone = [n for n in scale if n.startswith("backbone.model.")]
    deepest = max(layer[n] for n in backbone)
    rate = cfg.optim_wrapper.paramwise_cfg.layer_decay_rate  # the smoke recipe's 0.65
    assert rate == 0.65 and all(scale[n] == pytest.approx(rate ** (deepest + 1 - layer[n])) for n in backbone)
    lrs = [s for _, s in sorted({(layer[n], scale[n]) for n in backbone})]
    assert len(lrs) >= 12 and lrs == sorted(lrs) and len(set(lrs)) == len(lrs)  # deeper -> larger, never equal
    assert lrs[-1] == pytest.approx(rate) and lrs[0] == pytest.approx(rate ** 13)  # BEiT: last block r, stem r^13
    assert all(wd[n] == 0.0 for n, p in det.named_parameters() if p.requires_grad and p.ndim == 1)
    assert wd["neck.fpn_convs.0.conv.weight"] == pytest.approx(0.05)


# ---------------------------------------------------------------- recipes


@pytest.mark.parametrize("name", DENSE)
@pytest.mark.parametrize("recipe", ["paper-1x", "paper-3x"])
def test_paper_recipes(name, recipe):
    from mmengine.config import Config

    path = resolve_config("det", recipe, name)
    assert path.name == f"mask-rcnn_{name.replace('_', '-')}_fpn_{recipe}_coco.py"
    cfg = Config.fromfile(str(path))
    assert cfg.model.backbone.model_name == name and cfg.model.backbone.drop_path_rate == 0.1
    assert list(cfg.model.neck.in_channels) == list(pyramid_channels(name))
    assert cfg.optim_wrapper.type == "AmpOptimWrapper"
    if name.startswith("vit"):
        assert cfg.optim_wrapper.constructor == "TimmLayerDecayOptimizerConstructor"
    else:  # the ConvNeXt 3x reference's rule (tests/finetune/test_layer_decay.py checks every parameter)
        assert cfg.optim_wrapper.constructor == "ConvNeXtLayerDecayOptimizerConstructor"
        assert dict(cfg.optim_wrapper.paramwise_cfg) == dict(decay_type="layer_wise", decay_rate=0.95, num_layers=6,
                                                             backbone="backbone.model")
    assert (cfg.optim_wrapper.optimizer.type, cfg.optim_wrapper.optimizer.lr,
            cfg.optim_wrapper.optimizer.weight_decay) == ("AdamW", 1e-4, 0.05)
    epochs, steps = (36, [27, 33]) if recipe == "paper-3x" else (12, [8, 11])
    assert cfg.train_cfg.max_epochs == epochs and cfg.param_scheduler[-1].milestones == steps
    assert cfg.randomness.seed == 0 and cfg.custom_imports.imports == ["dropbench.finetune.det"]
    pipeline = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    # both multi-scale 480-800 with DETR-style crops (ConvNeXt 3x, Swin 1x)
    assert pipeline == ["LoadImageFromFile", "LoadAnnotations", "RandomFlip", "RandomChoice", "PackDetInputs"]
    choice = cfg.train_dataloader.dataset.pipeline[3]
    assert choice.type == "RandomChoice" and choice.transforms[1][1].type == "RandomCrop"
    assert choice.transforms[0][0].scales[0] == (480, 1333) and choice.transforms[0][0].scales[-1] == (800, 1333)
    assert cfg.param_scheduler[0].end == 500  # warm-up iterations of the reference schedule_1x
    if not torch.cuda.is_available():  # no AMP without a GPU
        assert adapt_to_device(cfg)[0].startswith("AmpOptimWrapper -> OptimWrapper")
        assert cfg.optim_wrapper.type == "OptimWrapper"


def test_smoke_recipe_and_configs_are_data(coco):
    cfg = prepare_runner_config("det", Job(model="convnext_femto", checkpoint=None, data=coco, out="/tmp/unused"))
    configure_coco(cfg, coco, check_coco(coco))
    assert cfg.optim_wrapper.type == "OptimWrapper"  # never AMP on the CPU path
    assert cfg.model.backbone.model_name == "convnext_femto"
    assert list(cfg.model.neck.in_channels) == list(pyramid_channels("convnext_femto"))
    assert cfg.model.roi_head.bbox_head.num_classes == cfg.model.roi_head.mask_head.num_classes == 6  # textures
    assert cfg.train_dataloader.dataset.metainfo.classes == SYNTH_CATEGORIES
    assert cfg.val_evaluator.ann_file == str((coco / "annotations" / "instances_val2017.json").resolve())
    for path in (REPO / "configs" / "det").rglob("*.py"):
        text = re.sub(r"#.*", "", path.read_text())
        assert not re.search(r"^\s*(import|from)\s|lambda|\bfor\b.*\bin\b", text, re.M), path


# ---------------------------------------------------------------- data: generator and checks

def test_synth_coco_refuses_objects_that_cannot_fit(tmp_path):
    """A radius of half the short side or more would write scenes without objects; it is refused, nothing written."""
    with pytest.raises(ValueError, match=r"radius must be .* got \(0.6, 0.8\)"):
        write_synth_coco(tmp_path / "c", num_train=2, num_val=2, radius=(0.6, 0.8))
    assert not (tmp_path / "c").exists()


def test_synth_coco_is_a_valid_coco_root(tmp_path):
    rc = cli.main(["data", "synth-coco", "--out", str(tmp_path / "c"), "--seed", "3"])
    assert rc == 0
    splits = check_coco(tmp_path / "c")
    train, val = splits["train2017"], splits["val2017"]
    assert train.classes == val.classes and len(train.classes) == 6
    assert 40 <= train.num_images <= 80 and 16 <= val.num_images <= 24
    assert train.num_annotations >= 2 * train.num_images  # several objects per image
    data = json.loads(train.ann_file.read_text())
    for a in data["annotations"]:
        assert a["iscrowd"] == 0 and a["area"] > 0 and len(a["segmentation"][0]) >= 6


def _broken(root: Path, split: str, edit) -> Path:
    path = root / "annotations" / f"instances_{split}.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


def _set(container: str, key: str, value):
    return lambda d: d[container][0].__setitem__(key, value)


CASES = {
    "missing key": (lambda d: d["annotations"][0].pop("bbox"), r"annotation 1 \(image 1\) lacks \['bbox'\]"),
    "box outside": (_set("annotations", "bbox", [100.0, 100.0, 500.0, 20.0]), "annotation 1 .* outside the"),
    "unknown category": (_set("annotations", "category_id", 99), "annotation 1 .* unknown category id 99"),
    "unknown image": (_set("annotations", "image_id", 12345), "annotation 1 refers to unknown image id 12345"),
    "missing image file": (_set("images", "file_name", "nope.jpg"), "image 1: file .*nope.jpg does not exist"),
    "bad polygon": (_set("annotations", "segmentation", [[1, 2, 3]]), "annotation 1 .* segmentation is a polygon"),
    "duplicate image id": (lambda d: d["images"].append(dict(d["images"][0])), "image id 1 is listed twice"),
    "no images list": (lambda d: d.pop("images"), r"lacks the list\(s\) \['images'\]"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_annotations_are_refused(tmp_path, case):
    root = write_synth_coco(tmp_path / "c", num_train=2, num_val=1)
    edit, pattern = CASES[case]
    path = _broken(root, "train2017", edit)
    with pytest.raises(CocoFormatError, match=pattern) as e:
        check_coco(root)
    assert str(path) in str(e.value)
    assert "Fix:" in str(e.value) or case == "no images list"


def test_bad_roots_are_refused(tmp_path):
    root = write_synth_coco(tmp_path / "c", num_train=2, num_val=1)
    with pytest.raises(CocoFormatError, match="does not exist"):
        check_coco(tmp_path / "nowhere")
    _broken(root, "val2017", lambda d: d["categories"][3].update(name="moon"))
    with pytest.raises(CocoFormatError, match="list different categories"):
        check_coco(root)
    (root / "annotations" / "instances_val2017.json").write_text("{not json")
    with pytest.raises(CocoFormatError, match="instances_val2017.json is not valid JSON"):
        check_coco(root)
    (root / "annotations" / "instances_val2017.json").unlink()
    with pytest.raises(CocoFormatError, match="instances_val2017.json does not exist"):
        check_coco(root)


# ---------------------------------------------------------------- checkpoints through mmengine


def test_mmengine_loads_through_the_safe_loader(tmp_path):
    import numpy as np
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import CheckpointLoader

    install_safe_checkpoint_loading()
    ok = tmp_path / "ok.pth"
    hb = HistoryBuffer()
    hb.update(np.float64(1.5))
    torch.save({"meta": {"seed": 0, "dataset_meta": {"classes": ("a",), "palette": [(1, 2, 3)]}, "hub": hb,
                         "x": np.int64(3), "arr": np.zeros(2)}, "state_dict": {"w": torch.ones(1)}}, ok)
    assert CheckpointLoader.load_checkpoint(str(ok))["meta"]["hub"].current() == 1.5
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "extra": Fraction(1, 3)}, bad)  # needs code to rebuild
    with pytest.raises(CheckpointError, match="needs arbitrary code to load"):
        CheckpointLoader.load_checkpoint(str(bad))


# ---------------------------------------------------------------- end to end


def _log_text(run: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(run.glob("*/*.log")))


@pytest.mark.slow
def test_finetune_coco_killed_resumed_and_evaluated(coco, swin_ckpt, tmp_path):
    """Mask R-CNN on generated COCO through the CLI: killed after epoch 1, resumed, evaluated, result.json written."""
    out = tmp_path / "run"
    argv = ["finetune", "coco", "--checkpoint", str(swin_ckpt), "--model", "swin_femto", "--data", str(coco),
            "--out", str(out), "--config", "smoke", "--cfg-options", *TINY_RUN]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([*CLI, *argv], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while not (out / "last_checkpoint").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        assert proc.poll() is None, "the first run ended before it could be killed"
        assert (out / "last_checkpoint").exists(), "no epoch checkpoint within the deadline"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (out / "epoch_1.pth").exists() and not (out / "result.json").exists()

    assert cli.main([*argv, "--resume", "auto"]) == 0
    log = _log_text(out)
    assert "resumed epoch: 1, iter: 4" in log  # continued after epoch 1 (4 iterations of 2 images), not restarted
    assert "Epoch(train) [1][4/4]" in log and log.count("Epoch(train) [2][4/4]") == 1
    ckpt = torch.load(out / "epoch_2.pth", weights_only=False, map_location="cpu")  # our own file: trusted
    assert (ckpt["meta"]["epoch"], ckpt["meta"]["iter"]) == (2, 8)

    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "ok" and result["task"] == "coco" and result["model"] == "swin_femto"
    assert {"metrics", "config", "config_hash", "seed", "checkpoint", "checkpoint_sha256", "pretrain", "versions",
            "wall_time_s"} <= set(result)
    assert set(COCO_METRICS) <= set(result["metrics"])
    assert 0.0 <= result["metrics"]["coco/bbox_mAP"] <= 1.0
    assert result["pretrain"]["drop_mode"] == "early" and result["seed"] == 0
    assert result["extra"]["epochs"] == 2 and result["extra"]["iterations"] == 8
    assert result["extra"]["resumed_from"].endswith("epoch_1.pth")
    assert result["config"]["model"]["backbone"]["drop_path_rate"] == 0.1
    assert Path(result["log_path"]).is_file()
    # per-sample outputs: COCOeval's matches give back box and mask AP; mmdet's detections JSON is kept, gzipped
    states = load_states(out / result["extra"]["samples"])
    assert set(states) == {"bbox", "segm"} and states["bbox"].n_images == 4
    for state in states.values():
        for k, v in state.summary().items():
            assert v == pytest.approx(result["metrics"][k], abs=1e-4)
    for iou_type, name in result["extra"]["detections"].items():
        dets = json.loads(gzip.decompress((out / name).read_bytes()))
        assert name == f"detections.{iou_type}.json.gz" and dets
        assert {"image_id", "category_id", "score"} <= set(dets[0])


def test_a_total_batch_other_than_the_recipes_is_warned_about(caplog):
    from dropbench.finetune.mm import _check_total_batch
    from mmengine.config import Config

    cfg = Config(dict(auto_scale_lr=dict(enable=False, base_batch_size=16), train_dataloader=dict(batch_size=2)))
    with caplog.at_level("WARNING", logger="dropbench.finetune.mm"):
        _check_total_batch(cfg, 8)  # 8 x 2 = 16: as the recipe
        assert not caplog.records
        _check_total_batch(cfg, 1)
    assert "set for 16 images per step; this run has 2" in caplog.text and "auto_scale_lr.enable=true" in caplog.text


@pytest.mark.slow
def test_a_diverging_run_fails_naming_the_iteration(coco, swin_ckpt, tmp_path, capsys):
    """The issue's case (lr 1e6): NaN losses used to train to the end and record `ok` with empty metrics."""
    out = tmp_path / "run"
    argv = ["finetune", "coco", "--checkpoint", str(swin_ckpt), "--model", "swin_femto", "--data", str(coco),
            "--out", str(out), "--config", "smoke", "--cfg-options", *TINY_RUN, "optim_wrapper.optimizer.lr=1e6"]
    assert cli.main(argv) == 1
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "failed" and result["metrics"] == {}
    assert re.fullmatch(r"FloatingPointError: diverged: loss is nan at iteration \d", result["error"]), result["error"]
    n = int(result["error"][-1])
    assert not (out / f"iter_{n}.pth").exists() and not (out / "epoch_2.pth").exists()  # stopped there
    assert "diverged: loss is nan at iteration" in capsys.readouterr().err


@HOOKS.register_module(name="_DropbenchTestSigterm", force=True)
class _SigtermAt(Hook):
    """Sends this process SIGTERM (as `timeout` or SLURM would) during iteration ``at`` (counted from 1)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.slow
def test_sigterm_stops_a_detection_run_at_the_iteration(coco, swin_ckpt, tmp_path):
    """Epoch-based: it stops within the iteration (resuming from the last epoch checkpoint) and records nothing."""
    from dropbench.pretrain.stop import Preempted

    out = tmp_path / "run"
    with pytest.raises(Preempted, match="stopped by SIGTERM at iteration 2; no checkpoint"):
        run_coco(Job(model="swin_femto", checkpoint=swin_ckpt, data=coco, out=out, resume="auto",
                     cfg_options={"train_cfg.max_epochs": 1,
                                  "custom_hooks": [dict(type="_DropbenchTestSigterm", at=2)]}))
    assert not list(out.glob("*.pth")) and not (out / "result.json").exists()


def test_resume_skips_a_truncated_newest_checkpoint(tmp_path, caplog):
    from dropbench.finetune.mm import resume_checkpoint

    for n in (1, 2):
        torch.save({"meta": {"epoch": n}}, tmp_path / f"epoch_{n}.pth")
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "epoch_2.pth"))
    data = (tmp_path / "epoch_2.pth").read_bytes()
    (tmp_path / "epoch_2.pth").write_bytes(data[: len(data) // 2])  # the machine died while mmengine wrote it
    with caplog.at_level("WARNING"):
        assert resume_checkpoint(tmp_path) == str(tmp_path / "epoch_1.pth")
    assert f"skipped checkpoint {tmp_path / 'epoch_2.pth'}: checkpoint {tmp_path / 'epoch_2.pth'} is truncated" \
        in caplog.text
    assert (tmp_path / "epoch_2.pth.unreadable").read_bytes() == data[: len(data) // 2]  # kept, not deleted
    (tmp_path / "epoch_1.pth").write_bytes(b"")
    assert resume_checkpoint(tmp_path) is None  # none loads: the run starts afresh, said in the log
    assert f"no checkpoint in {tmp_path} loads" in caplog.text and (tmp_path / "epoch_1.pth.unreadable").exists()
    assert resume_checkpoint(tmp_path / "fresh") is None
