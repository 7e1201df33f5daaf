"""ADE20K semantic segmentation: data checks, synth-ade20k, recipes, and real UperNet fine-tunes on generated scenes
(through the CLI for a hierarchical and a plain-ViT backbone; a stopped run resumed)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("mmseg")

from dropbench.benchmarks import cli  # noqa: E402
from dropbench.benchmarks.results import read_result  # noqa: E402
from dropbench.finetune.backbone import pyramid_channels  # noqa: E402
from dropbench.finetune.convert import file_sha256  # noqa: E402
from dropbench.finetune.datasets.ade20k import ADE20KDataError, check_ade20k, write_synth_ade20k  # noqa: E402
from dropbench.finetune.samples import load_states  # noqa: E402
from dropbench.finetune.seg import SEG_METRICS, prepare_seg_config, run_ade20k  # noqa: E402
from dropbench.finetune.tasks import Job  # noqa: E402
from dropbench.pretrain.config import resolve_config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.registry import HOOKS  # noqa: E402

DENSE = ("vit_tiny", "vit_base", "swin_femto", "convnext_femto")
# a few iterations of the smoke recipe, on a handful of images
TINY = {"train_cfg.max_iters": 4, "train_dataloader.batch_size": 2, "default_hooks.logger.interval": 1,
        "default_hooks.checkpoint.interval": 2}


@pytest.fixture(scope="module")
def ade(tmp_path_factory) -> Path:
    """A tiny generated ADE20K root: 6 training / 2 validation scenes."""
    return write_synth_ade20k(tmp_path_factory.mktemp("ade"), seed=1, train_images=6, val_images=2)


@pytest.fixture(scope="module")
def checkpoint(paper_checkpoint):
    """``checkpoint(model)``: a dropbench-layout checkpoint of ``model`` with a 10-class head."""
    return lambda model: paper_checkpoint(model, drop_kind="dropout", drop_rate=0.1, drop_mode="early")


def _copy(src: Path, dst: Path) -> Path:
    for f in src.rglob("*"):
        if f.is_file():
            (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (dst / f.relative_to(src)).write_bytes(f.read_bytes())
    return dst


def test_synth_ade20k_layout_and_labels(ade):
    counts = check_ade20k(ade, max_check=None)
    assert counts == {"training": 6, "validation": 2}
    values = set()
    for png in (ade / "annotations").rglob("*.png"):
        lab = Image.open(png)
        assert lab.mode == "L"
        assert lab.size == Image.open(ade / "images" / png.parent.name / f"{png.stem}.jpg").size
        values |= set(np.unique(np.asarray(lab)).tolist())
    assert 0 in values and max(values) <= 150 and len(values - {0}) >= 5
    marker = json.loads((ade / "DROPBENCH_GENERATED.json").read_text())
    assert marker["kind"] == "ade20k"


def _break_label_value(root: Path) -> Path:
    path = root / "annotations" / "training" / "ADE_train_00000002.png"
    lab = np.asarray(Image.open(path)).copy()
    lab[:4, :4] = 200
    Image.fromarray(lab).save(path)
    return path


def _missing_annotation(root: Path) -> Path:
    (root / "annotations" / "validation" / "ADE_val_00000001.png").unlink()
    return root / "images" / "validation" / "ADE_val_00000001.jpg"


def _unreadable_png(root: Path) -> Path:
    path = root / "annotations" / "training" / "ADE_train_00000003.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 10)
    return path


def _colour_png(root: Path) -> Path:
    path = root / "annotations" / "training" / "ADE_train_00000004.png"
    Image.open(path).convert("RGB").save(path)
    return path


def _orphan_annotation(root: Path) -> Path:
    (root / "images" / "training" / "ADE_train_00000005.jpg").unlink()
    return root / "annotations" / "training" / "ADE_train_00000005.png"


def _size_mismatch(root: Path) -> Path:
    path = root / "annotations" / "training" / "ADE_train_00000001.png"
    Image.open(path).resize((50, 40)).save(path)
    return path


@pytest.mark.parametrize("damage, words", [
    (_break_label_value, "label value(s) [200] outside 0..150"),
    (_missing_annotation, "have no annotation"),
    (_unreadable_png, "not a readable image"),
    (_colour_png, "single-channel"),
    (_orphan_annotation, "have no image"),
    (_size_mismatch, "must match"),
])
def test_broken_annotations_are_refused_before_training(ade, tmp_path, damage, words):
    root = _copy(ade, tmp_path / "ade")
    bad = damage(root)
    with pytest.raises(ADE20KDataError) as err:
        check_ade20k(root)
    assert words in str(err.value) and bad.name in str(err.value)
    out = tmp_path / "run"
    with pytest.raises(ADE20KDataError):  # refused before any config is resolved or model built
        run_ade20k(Job(model="swin_femto", checkpoint=None, data=root, out=out))
    assert not out.exists()


def test_missing_split_folder_names_the_layout(tmp_path):
    (tmp_path / "images" / "training").mkdir(parents=True)
    with pytest.raises(ADE20KDataError, match="annotations/training"):
        check_ade20k(tmp_path)
    with pytest.raises(ADE20KDataError, match="does not exist"):
        check_ade20k(tmp_path / "nope")


@pytest.mark.parametrize("model", DENSE)
def test_paper_recipes_resolve_and_fit_the_model(model):
    cfg = prepare_seg_config(Job(model=model, checkpoint=None, data="/data/ade", out="/tmp/unused",
                                 config="paper-160k"))
    assert resolve_config("seg", "paper-160k", model).name == f"upernet_{model.replace('_', '-')}_paper-160k_ade20k.py"
    channels = list(pyramid_channels(model))
    assert cfg.model.backbone.model_name == model and cfg.model.decode_head.in_channels == channels
    assert cfg.model.auxiliary_head.in_channels == channels[2]
    assert cfg.train_cfg.max_iters == 160000 and cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.model.test_cfg.mode == "slide" and cfg.test_multi_scale
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    if model.startswith("vit"):
        assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.9
    else:  # the ConvNeXt 160k reference's rule
        assert cfg.optim_wrapper.constructor == "ConvNeXtLayerDecayOptimizerConstructor"
        assert (cfg.optim_wrapper.paramwise_cfg.decay_type, cfg.optim_wrapper.paramwise_cfg.decay_rate,
                cfg.optim_wrapper.paramwise_cfg.num_layers) == ("stage_wise", 0.9, 6)
    assert cfg.param_scheduler[0].end == 1500 and cfg.train_dataloader.dataset.data_root == "/data/ade"


def test_smoke_recipe_takes_the_model_from_the_command_line():
    cfg = prepare_seg_config(Job(model="convnext_femto", checkpoint=None, data="/data/ade", out="/tmp/unused"))
    assert cfg.model.backbone.model_name == "convnext_femto"
    assert cfg.model.decode_head.in_channels == [48, 96, 192, 384] and cfg.model.auxiliary_head.in_channels == 192


def test_head_channels_that_do_not_fit_the_model_are_refused():
    with pytest.raises(ValueError, match="does not fit vit_tiny"):
        prepare_seg_config(Job(model="vit_tiny", checkpoint=None, data="/data/ade", out="/tmp/unused",
                               cfg_options={"model.decode_head.in_channels": [40, 80, 160, 320]}))


@pytest.mark.slow
@pytest.mark.parametrize("model, extra", [("swin_femto", []), ("vit_tiny", ["test_multi_scale=true"])])
def test_finetune_ade20k_cli_trains_and_evaluates(ade, checkpoint, tmp_path, model, extra):
    """A few UperNet iterations on generated scenes through the CLI, then mmseg's IoUMetric; result.json written."""
    ckpt = checkpoint(model)
    out = tmp_path / "run"
    argv = ["finetune", "ade20k", "--checkpoint", str(ckpt), "--model", model, "--data", str(ade), "--out", str(out),
            "--cfg-options", *[f"{k}={v}" for k, v in TINY.items()], *extra]
    assert cli.main(argv) == 0
    result = read_result(out)
    assert result.task == "ade20k" and result.status == "ok" and result.model == model
    for k in SEG_METRICS:
        assert 0.0 <= result.metrics[k] <= 100.0
    assert result.metrics["aAcc"] > 0
    assert result.checkpoint_sha256 == file_sha256(ckpt) and result.pretrain["drop_mode"] == "early"
    assert "0 missing, 0 unexpected" in result.extra["load_report"]["summary"] and result.extra["iterations"] == 4
    assert result.extra["load_report"]["missing"] == [] and result.extra["load_report"]["loaded"] > 0
    assert result.config["model"]["backbone"]["model_name"] == model
    hp = result.extra["hparams"]  # every setting, so a row traces to its recipe without the config file
    assert result.extra["recipe"] == "smoke" and (hp["drop_path"], hp["lr"], hp["iterations"]) == (0.1, 4e-3, 4)
    assert hp["layer_decay_constructor"] == "TimmLayerDecayOptimizerConstructor" and hp["total_batch"] == 2
    if extra:
        assert {"mIoU_ms", "mAcc_ms", "aAcc_ms"} <= set(result.metrics)
    # the per-image areas kept beside result.json give back its metrics (and the multi-scale ones)
    states = load_states(out / result.extra["samples"])
    assert set(states) == ({"seg", "seg_ms"} if extra else {"seg"})
    for state in states.values():
        assert state.n_images == 2 and state.intersect.shape[1] == 150
        for k, v in state.summary().items():
            assert v == pytest.approx(result.metrics[k], abs=1e-6)
    assert (out / "config.py").is_file() and (out / "iter_4.pth").is_file()
    assert sorted(p.name for p in out.glob("iter_*.pth")) == ["iter_4.pth"]  # the smoke recipe's max_keep_ckpts=1
    # its own visualizer: the scalars go to its own folder, not to an earlier run's of this process
    assert len(list(out.glob("*/vis_data/scalars.json"))) == 1


class _Stop(RuntimeError):
    pass


@HOOKS.register_module(name="_DropbenchTestStopAfter", force=True)
class _StopAfter(Hook):
    """Stops training (as a kill would) after ``iters`` iterations."""

    def __init__(self, iters: int) -> None:
        self.iters = iters

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter >= self.iters:
            raise _Stop(f"stopped after iteration {runner.iter}")


SEEN: list[int] = []


@HOOKS.register_module(name="_DropbenchTestCountIters", force=True)
class _CountIters(Hook):
    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        SEEN.append(runner.iter)


@pytest.mark.slow
def test_stopped_run_resumes_where_it_stopped(ade, checkpoint, tmp_path):
    ckpt = checkpoint("swin_femto")
    out = tmp_path / "run"
    with pytest.raises(_Stop):
        run_ade20k(Job(model="swin_femto", checkpoint=ckpt, data=ade, out=out, resume="auto",
                       cfg_options={**TINY, "custom_hooks": [dict(type="_DropbenchTestStopAfter", iters=3)]}))
    assert (out / "iter_2.pth").is_file() and not (out / "iter_4.pth").exists()
    with pytest.raises(FileExistsError, match="--resume auto"):  # never silently start the run over
        run_ade20k(Job(model="swin_femto", checkpoint=ckpt, data=ade, out=out, cfg_options=TINY))
    SEEN.clear()
    outcome = run_ade20k(Job(model="swin_femto", checkpoint=ckpt, data=ade, out=out, resume="auto",
                             cfg_options={**TINY, "custom_hooks": [dict(type="_DropbenchTestCountIters")]}))
    assert outcome.extra["resumed_from"].endswith("iter_2.pth")
    assert SEEN == [2, 3], "the resumed run must continue at iteration 3 of 4, not restart"
    assert outcome.extra["iterations"] == 4 and set(SEG_METRICS) <= set(outcome.metrics)
    assert outcome.load_report is not None and outcome.checkpoint_sha256 == file_sha256(ckpt)


@HOOKS.register_module(name="_DropbenchTestSigtermSeg", force=True)
class _SigtermAt(Hook):
    """Sends this process SIGTERM (as `timeout` or SLURM would) during iteration ``at`` (counted from 1)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.slow
def test_sigterm_checkpoints_a_segmentation_run_and_it_resumes_there(ade, checkpoint, tmp_path):
    """Iteration-based: the iteration just finished is saved (off the checkpoint interval), resume goes on from it."""
    from dropbench.pretrain.stop import Preempted

    ckpt = checkpoint("swin_femto")
    out = tmp_path / "run"
    tiny = {**TINY, "train_cfg.max_iters": 2}
    with pytest.raises(Preempted, match="stopped by SIGTERM at iteration 1; checkpoint of iteration 1 saved"):
        run_ade20k(Job(model="swin_femto", checkpoint=ckpt, data=ade, out=out, resume="auto",
                       cfg_options={**tiny, "custom_hooks": [dict(type="_DropbenchTestSigtermSeg", at=1)]}))
    assert (out / "iter_1.pth").is_file() and (out / "last_checkpoint").read_text().strip().endswith("iter_1.pth")
    SEEN.clear()
    outcome = run_ade20k(Job(model="swin_femto", checkpoint=ckpt, data=ade, out=out, resume="auto",
                             cfg_options={**tiny, "custom_hooks": [dict(type="_DropbenchTestCountIters")]}))
    assert outcome.extra["resumed_from"].endswith("iter_1.pth") and SEEN == [1]
    assert outcome.extra["iterations"] == 2 and set(SEG_METRICS) <= set(outcome.metrics)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["swin_femto", "convnext_femto", "vit_tiny"])
def test_paper_multi_scale_evaluation_takes_any_size(tmp_path, model):
    """The paper-160k multi-scale + flip evaluation (its TestTimeAug views, SegTTAModel, slide inference) feeds the
    backbone views of any size; it must evaluate. To stay cheap on a CPU, the recipe's test scales and sliding window
    are divided by 8 (views of 32..112 px on the short side instead of 256..896, crops of 64 px) and the heads
    narrowed; the real sizes run in the rehearsal (``dropbench suite rehearse``)."""
    from dropbench.finetune.mm import StrictRunner
    from dropbench.finetune.seg import evaluate_multi_scale

    root = write_synth_ade20k(tmp_path / "ade", seed=3, train_images=1, val_images=1, sizes=((93, 67),))
    options = {"model.decode_head.channels": 16, "model.auxiliary_head.channels": 16, "test_dataloader.num_workers": 0,
               "test_dataloader.persistent_workers": False, "model.test_cfg.crop_size": (64, 64),
               "model.test_cfg.stride": (43, 43)}
    cfg = prepare_seg_config(Job(model=model, checkpoint=None, data=root, out=tmp_path / "run", config="paper-160k",
                                 cfg_options=options))
    resizes = cfg.tta_pipeline[1].transforms[0]
    assert [r.scale for r in resizes] == [(int(2048 * f), int(512 * f)) for f in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)]
    for r in resizes:
        r.scale = (r.scale[0] // 8, r.scale[1] // 8)
    runner = StrictRunner.from_cfg(cfg)
    seen: list[tuple[int, int]] = []
    runner.model.backbone.register_forward_pre_hook(lambda _, args: seen.append(tuple(args[0].shape[-2:])))
    metrics = evaluate_multi_scale(cfg, runner)
    assert set(metrics) == {"mIoU_ms", "mAcc_ms", "aAcc_ms"} and all(0 <= v <= 100 for v in metrics.values())
    assert (32, 44) in seen and (48, 64) in seen  # the 0.5 view of a 93x67 image whole, the 0.75 view's crops
    assert len(seen) == 2 * (1 + 2 + 2 + 6 + 6 + 12)  # the slide crops of the six views, two flips each
