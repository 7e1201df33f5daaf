"""Any timm architecture, from a safetensors file or a timm hub folder: convert, one COCO step, one ADE20K step, the
classification smoke recipe; ``dropbench evaluate`` with the model read from the folder; the refusals.

The architectures are the issue's (ResNet, ConvNeXt, Swin, ViT, DeiT, EfficientNet) at test sizes: timm's own
``test_*`` models, and Swin-T / DeiT-T reduced through the ``model_args`` their hub ``config.json`` records (which the
loaders must honour). Weights are random (seed 0), saved by timm's ``save_for_hf``.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch

pytest.importorskip("mmdet")
pytest.importorskip("mmseg")

from dropbench.benchmarks import cli  # noqa: E402
from dropbench.finetune.backbone import PyramidError, TimmPyramidBackbone, pyramid_layout  # noqa: E402
from dropbench.finetune.cls import run_cls  # noqa: E402
from dropbench.finetune.convert import CheckpointError, convert_checkpoint, resolve_model  # noqa: E402
from dropbench.finetune.det import run_coco  # noqa: E402
from dropbench.finetune.seg import run_ade20k  # noqa: E402
from dropbench.finetune.tasks import Job  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

ARCHS = {  # the architectures, as small as timm makes them
    "resnet": ("test_resnet", {}),
    "convnext": ("test_convnext", {}),
    "efficientnet": ("test_efficientnet", {}),
    "vit": ("test_vit", {}),
    "swin": ("swin_tiny_patch4_window7_224", dict(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))),
    "deit": ("deit_tiny_patch16_224", dict(depth=4, embed_dim=32, num_heads=2)),
}
COCO_STEP = {"train_cfg.max_epochs": 1, "default_hooks.logger.interval": 1}
ADE_STEP = {"train_cfg.max_iters": 1, "train_dataloader.batch_size": 2, "default_hooks.logger.interval": 1,
            "default_hooks.checkpoint.interval": 1}
CLS_SMOKE = {"schedule.epochs": 1, "schedule.warmup_epochs": 0, "data.batch_size": 4, "optim.lr_batch_size": 4,
             "runtime.progress": False}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_any_architecture_converts_and_fine_tunes_on_every_task(arch, timm_hub, tiny_coco, tiny_ade, tiny_flowers,
                                                                 tmp_path):
    name, model_args = ARCHS[arch]
    hub = timm_hub(name, **model_args)
    saved = load_file(hub / "model.safetensors")

    # convert: the architecture (and its reduced width) read from the folder, every tensor carried over
    report = convert_checkpoint(hub, None, tmp_path / "converted.pth")
    converted = torch.load(tmp_path / "converted.pth", weights_only=True)
    assert report.architecture == name and report.layout == "timm-hub" and report.missing == []
    assert report.loaded == len(saved) and set(converted["model"]) == set(saved)
    for k, v in saved.items():
        torch.testing.assert_close(converted["model"][k], v, msg=k)

    # one COCO step, one ADE20K step: the pyramid from timm's feature API, the weights loaded strictly
    det = run_coco(Job(model=name, checkpoint=hub, data=tiny_coco, out=tmp_path / "coco", cfg_options=COCO_STEP))
    assert "coco/bbox_mAP" in det.metrics and det.load_report.loaded > 0
    layout = pyramid_layout(name, json.dumps(json.loads((hub / "config.json").read_text())["model_args"],
                                             sort_keys=True))
    assert det.config["model"]["neck"]["in_channels"] == list(layout.channels)
    assert det.extra["data_config"]["source"] == "checkpoint pretrained_cfg"
    assert det.extra["hparams"]["layer_decay_in_force"]["applied"] is True  # every architecture here has a matcher
    seg = run_ade20k(Job(model=name, checkpoint=hub, data=tiny_ade, out=tmp_path / "ade", cfg_options=ADE_STEP))
    assert {"mIoU", "mAcc", "aAcc"} <= set(seg.metrics)
    assert seg.config["model"]["decode_head"]["in_channels"] == list(layout.channels)

    # the classification smoke recipe, at the checkpoint's pretraining size and normalisation
    cls = run_cls(Job(model=name, checkpoint=hub, data=tiny_flowers, out=tmp_path / "cls", dataset="flowers102",
                      config="smoke", cfg_options=CLS_SMOKE))
    hp = cls.extra["hparams"]
    assert 0 <= cls.metrics["top1"] <= 100 and hp["input_size"] == 64
    assert hp["normalisation"]["source"] == "checkpoint pretrained_cfg"
    assert hp["layer_decay"] == 0.75 and hp["layer_decay_grouping"] == "timm group_matcher"
    assert cls.load_report.dropped_head  # the 10-class head is replaced by the 2-class one


def test_bare_safetensors_needs_the_model_and_loads_it(timm_hub, tmp_path):
    hub = timm_hub("test_convnext")
    bare = tmp_path / "weights.safetensors"
    shutil.copy(hub / "model.safetensors", bare)
    with pytest.raises(ValueError, match="does not name its architecture.*--model"):
        resolve_model(bare, None)
    report = convert_checkpoint(bare, "test_convnext", tmp_path / "out.pth")
    assert report.layout == "safetensors" and report.architecture is None and report.loaded == len(load_file(bare))
    bb = TimmPyramidBackbone("test_convnext", checkpoint=str(bare))
    bb.init_weights()
    assert bb.load_report.loaded == len(bb.model.state_dict())


def test_hub_folder_with_pytorch_model_bin(timm_hub, tmp_path):
    """timm's legacy hub layout (``pytorch_model.bin``, read weights-only) names its architecture as well."""
    hub = timm_hub("test_resnet")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    torch.save(load_file(hub / "model.safetensors"), legacy / "pytorch_model.bin")
    shutil.copy(hub / "config.json", legacy / "config.json")
    assert resolve_model(legacy, None) == "test_resnet"
    report = convert_checkpoint(legacy, None, tmp_path / "out.pth")
    assert report.layout == "timm-hub" and report.loaded == len(load_file(hub / "model.safetensors"))
    assert report.data_config["input_size"] == [3, 64, 64] and len(report.data_config["mean"]) == 3


def test_checkpoint_of_another_architecture_is_refused(timm_hub, tmp_path):
    hub = timm_hub("test_convnext")
    with pytest.raises(CheckpointError, match="holds a test_convnext checkpoint, not test_resnet"):
        resolve_model(hub, "test_resnet")
    code = cli.main(["convert", "--checkpoint", str(hub), "--model", "test_resnet", "--out", str(tmp_path / "x.pth")])
    assert code == 2
    bare = tmp_path / "weights.safetensors"  # no name in the file: the strict loader refuses with names and shapes
    shutil.copy(hub / "model.safetensors", bare)
    with pytest.raises(CheckpointError, match=r"does not fit test_resnet: \d+ model tensors missing"):
        convert_checkpoint(bare, "test_resnet", tmp_path / "y.pth")


def test_model_without_usable_features_is_refused_before_training(timm_hub, tmp_path, capsys):
    with pytest.raises(PyramidError, match="other sizes than its pretraining size.*e.g. vit_tiny"):
        pyramid_layout("mixer_b16_224")
    bare = tmp_path / "weights.safetensors"  # any file: the model is refused before it is loaded
    shutil.copy(timm_hub("test_convnext") / "model.safetensors", bare)
    for task in ("coco", "ade20k"):  # and before the data is even looked at
        code = cli.main(["finetune", task, "--model", "mixer_b16_224", "--checkpoint", str(bare),
                         "--data", str(tmp_path / "no_data"), "--out", str(tmp_path / "run")])
        err = capsys.readouterr().err
        assert code == 2 and "mixer_b16_224 cannot be a detection / segmentation backbone" in err
        assert "e.g. vit_tiny" in err
    assert not (tmp_path / "run").exists()


def test_evaluate_reads_the_model_from_a_hub_folder(timm_hub, tmp_path, capsys):
    """``dropbench evaluate`` with no --model: the folder's architecture fills Table 6's row beside the others."""
    hub = timm_hub("test_convnext")
    preset = tmp_path / "preset.py"
    preset.write_text("preset = 'any'\nseeds = [0]\ndata = dict()\ndata_policy = dict(flowers102='generated')\n"
                      "synth = dict(flowers102=dict(num_classes=2, train_per_class=4, test_per_class=2))\n"
                      "finetune = dict(cls=dict(config='smoke', models=[], datasets=['flowers102'], cfg_options="
                      + repr(CLS_SMOKE) + "))\n")
    out = tmp_path / "suite"
    code = cli.main(["evaluate", "--checkpoint", str(hub), "--label", "mine", "--preset", str(preset),
                     "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    result = json.loads(next(out.glob("runs/cls/flowers102/test_convnext/mine/seed0/result.json")).read_text())
    assert result["status"] == "ok" and result["model"] == "test_convnext" and result["variant"] == "mine"
    table6 = pd.read_csv(out / "tables" / "table6.csv")
    row = table6[(table6["model"] == "test_convnext") & (table6["variant"] == "mine")]
    assert len(row) == 1 and row["Flowers"].iloc[0] == pytest.approx(result["metrics"]["top1"])
    assert "test_convnext" in printed


@pytest.mark.parametrize(("stage", "config", "name", "template", "decay"), [
    ("det", "paper-3x", "convnext_tiny", "convnext_femto", True),  # the ConvNeXt rule knows ConvNeXt's names
    ("det", "paper-1x", "deit_tiny_patch16_224", "vit_base", True),  # BEiT-style over timm's group_matcher
    ("seg", "paper-160k", "resnet50", "convnext_femto", False),  # the ConvNeXt rule knows no ResNet: scale 1
    ("seg", "paper-160k", "swin_tiny_patch4_window7_224", "swin_femto", False),  # as for Swin-F in the reference
])
def test_paper_recipes_apply_to_any_architecture(stage, config, name, template, decay):
    """A paper recipe exists per paper model; another architecture takes the one of its kind, with its own channels
    and the layer decay recorded as in force or not."""
    from dropbench.finetune.backbone import pyramid_channels, resolve_recipe
    from dropbench.finetune.layer_decay import layer_decay_in_force
    from dropbench.finetune.mm import prepare_runner_config
    from dropbench.finetune.seg import prepare_seg_config

    path, used = resolve_recipe(stage, config, name)
    assert used == template and template.replace("_", "-") in path.name
    job = Job(model=name, checkpoint=None, data="/data", out="/tmp/unused-any-model", config=config)
    cfg = prepare_seg_config(job) if stage == "seg" else prepare_runner_config(stage, job)
    assert cfg.model.backbone.model_name == name
    if stage == "seg":
        assert cfg.model.decode_head.in_channels == list(pyramid_channels(name))
    else:
        assert cfg.model.neck.in_channels is None  # filled from the model by configure_coco
    assert layer_decay_in_force(cfg.optim_wrapper, name)["applied"] is decay


def test_a_model_without_group_matcher_trains_without_layer_decay_and_says_so():
    """PiT has no ``group_matcher``: classification drops the layer decay, the dense constructor gives every
    parameter the full rate, and both runs record it."""
    import torch.nn as nn
    from dropbench.finetune.cls import build_cls_config, hyperparameters
    from dropbench.finetune.layer_decay import TimmLayerDecayOptimizerConstructor, layer_decay_in_force

    cfg = build_cls_config(Job(model="pit_ti_224", checkpoint=None, data="/d", out="/tmp/unused", dataset="pets"))
    assert cfg.optim.layer_decay is None
    assert hyperparameters(cfg, 1)["layer_decay_grouping"].startswith("none: the model has no group_matcher")
    assert build_cls_config(Job(model="test_vit", checkpoint=None, data="/d", out="/tmp/unused",
                                dataset="pets")).optim.layer_decay == 0.75
    ow = dict(constructor="TimmLayerDecayOptimizerConstructor", paramwise_cfg=dict(layer_decay_rate=0.9))
    assert layer_decay_in_force(ow, "pit_ti_224")["applied"] is False
    assert layer_decay_in_force(ow, "test_vit")["applied"] is True
    net = nn.Module()
    net.backbone = nn.Module()
    net.backbone.model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))  # no group_matcher
    net.neck = nn.Linear(2, 2)
    constructor = TimmLayerDecayOptimizerConstructor(dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=1e-3)),
                                                     dict(layer_decay_rate=0.5, backbone="backbone.model"))
    groups = constructor(net).optimizer.param_groups
    assert sum(len(g["params"]) for g in groups) == 6 and {g["lr_scale"] for g in groups} == {1.0}
