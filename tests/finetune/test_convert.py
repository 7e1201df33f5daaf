"""The converter on every source layout, and each refusal."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from dropbench.finetune.convert import CheckpointError, convert_checkpoint, load_pretrained, read_checkpoint
from dropbench.pretrain import PAPER_MODELS, create_paper_model

PAPER_KEYS = json.loads((Path(__file__).parent / "data" / "paper_keys.json").read_text())


def paper_state_dict(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict in the paper's own key names and shapes (from its model classes), random values."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in PAPER_KEYS[name].items():
        if k.endswith("relative_position_index"):
            sd[k] = torch.randint(0, 169, shape, generator=g)
        else:
            sd[k] = torch.randn(shape, generator=g)
    return sd


def save_paper(path: Path, name: str, **args) -> Path:
    ns = argparse.Namespace(model=name, dropout=0.0, drop_path=0.5, drop_mode="early", drop_schedule="linear",
                            cutoff_epoch=50, epochs=300, **args)
    torch.save({"model": paper_state_dict(name), "optimizer": {}, "epoch": 299, "args": ns}, path)
    return path


@pytest.mark.parametrize("name", list(PAPER_MODELS))
def test_paper_layout_loads_strictly(tmp_path, name):
    path = save_paper(tmp_path / "paper.pth", name)
    model = create_paper_model(name, num_classes=1000)
    report = load_pretrained(model, path, name)
    assert report.layout == "paper"
    assert report.missing == [] and report.unexpected == [] and report.dropped_head == []
    assert report.pretrain["drop_kind"] == "drop_path" and report.pretrain["drop_mode"] == "early"
    # every parameter came from the file: none is left at its initial value
    n_params = len(model.state_dict())
    assert report.loaded == n_params


def test_swin_patch_merging_moves_to_the_next_stage(tmp_path):
    path = save_paper(tmp_path / "swin.pth", "swin_femto")
    model = create_paper_model("swin_femto", num_classes=1000)
    load_pretrained(model, path, "swin_femto")
    sd = paper_state_dict("swin_femto")
    for i in range(3):
        torch.testing.assert_close(model.layers[i + 1].downsample.reduction.weight,
                                   sd[f"layers.{i}.downsample.reduction.weight"])
    torch.testing.assert_close(model.head.fc.weight, sd["head.weight"])


def test_convnext_linear_weights_become_1x1_convs(tmp_path):
    path = save_paper(tmp_path / "cnx.pth", "convnext_femto")
    model = create_paper_model("convnext_femto", num_classes=1000)
    load_pretrained(model, path, "convnext_femto")
    sd = paper_state_dict("convnext_femto")
    w = model.stages[2].blocks[3].mlp.fc1.weight
    torch.testing.assert_close(w.flatten(1), sd["stages.2.3.pwconv1.weight"])
    torch.testing.assert_close(model.stem[0].weight, sd["downsample_layers.0.0.weight"])
    torch.testing.assert_close(model.stages[1].downsample[1].weight, sd["downsample_layers.1.1.weight"])


def test_timm_state_dict_with_module_prefix_and_new_head(tmp_path):
    src = create_paper_model("vit_tiny", num_classes=1000)
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "t.pth")
    model = create_paper_model("vit_tiny", num_classes=10)
    report = load_pretrained(model, tmp_path / "t.pth", "vit_tiny")
    assert report.layout == "timm"
    assert report.dropped_head == ["head.bias", "head.weight"]
    torch.testing.assert_close(model.blocks[5].mlp.fc2.weight, src.blocks[5].mlp.fc2.weight)


def test_headless_backbone_drops_the_head(tmp_path):
    path = save_paper(tmp_path / "p.pth", "swin_femto")
    model = create_paper_model("swin_femto", num_classes=0)
    report = load_pretrained(model, path, "swin_femto")
    assert report.dropped_head == ["head.fc.bias", "head.fc.weight"]


def test_vit_position_embedding_is_resampled_to_the_target_grid(tmp_path):
    src = create_paper_model("vit_tiny", num_classes=5, img_size=64)  # 4x4 grid
    torch.save({"model": src.state_dict(), "pretrain": {"model": "vit_tiny"}}, tmp_path / "small.pth")
    model = create_paper_model("vit_tiny", num_classes=5, img_size=224)  # 14x14 grid
    report = load_pretrained(model, tmp_path / "small.pth", "vit_tiny")
    assert report.layout == "dropbench" and model.pos_embed.shape == (1, 197, 192)


def test_ema_on_request(tmp_path):
    a = create_paper_model("mixer_s32", num_classes=3)
    b = create_paper_model("mixer_s32", num_classes=3)
    torch.save({"model": a.state_dict(), "model_ema": b.state_dict()}, tmp_path / "e.pth")
    m = create_paper_model("mixer_s32", num_classes=3)
    assert load_pretrained(m, tmp_path / "e.pth", "mixer_s32", use_ema=True).weights == "model_ema"
    torch.testing.assert_close(m.stem.proj.weight, b.stem.proj.weight)
    torch.save({"model": a.state_dict()}, tmp_path / "no_ema.pth")
    with pytest.raises(CheckpointError, match="no EMA weights"):
        load_pretrained(m, tmp_path / "no_ema.pth", "mixer_s32", use_ema=True)


def test_wrong_model_is_refused_with_the_shapes(tmp_path):
    torch.save({"model": create_paper_model("vit_base", num_classes=0).state_dict()}, tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match=r"does not fit vit_tiny.*another shape.*checkpoint \(1, 1, 768\)"):
        load_pretrained(create_paper_model("vit_tiny"), tmp_path / "b.pth", "vit_tiny")


def test_other_family_is_refused(tmp_path):
    path = save_paper(tmp_path / "swin.pth", "swin_femto")
    with pytest.raises(CheckpointError, match="vit_tiny|another model"):
        load_pretrained(create_paper_model("vit_tiny"), path, "vit_tiny")
    torch.save({"model": create_paper_model("convnext_femto").state_dict()}, tmp_path / "c.pth")
    with pytest.raises(CheckpointError):
        load_pretrained(create_paper_model("swin_femto"), tmp_path / "c.pth", "swin_femto")


def test_partial_backbone_is_refused(tmp_path):
    sd = create_paper_model("vit_tiny", num_classes=0).state_dict()
    del sd["blocks.11.mlp.fc2.weight"]
    torch.save(sd, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="missing from the checkpoint.*blocks.11.mlp.fc2.weight"):
        load_pretrained(create_paper_model("vit_tiny"), tmp_path / "partial.pth", "vit_tiny")


def test_only_the_classifier_may_be_missing(tmp_path):
    """ConvNeXt's final norm lives under head. but is backbone: a checkpoint without it does not fit."""
    sd = create_paper_model("convnext_femto", num_classes=0).state_dict()
    del sd["head.norm.weight"]
    torch.save(sd, tmp_path / "no_norm.pth")
    with pytest.raises(CheckpointError, match="head.norm.weight"):
        load_pretrained(create_paper_model("convnext_femto", num_classes=0), tmp_path / "no_norm.pth", "convnext_femto")


def test_pretrained_as_another_model_is_refused(tmp_path):
    torch.save({"model": create_paper_model("vit_tiny").state_dict(), "pretrain": {"model": "vit_base"}},
               tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="pretrained as vit_base"):
        load_pretrained(create_paper_model("vit_tiny"), tmp_path / "x.pth", "vit_tiny")


def test_truncated_empty_and_foreign_files_are_refused(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"model": create_paper_model("mixer_s32").state_dict()}, good)
    data = good.read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(tmp_path / "trunc.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_checkpoint(tmp_path / "empty.pth")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not"):
        read_checkpoint(tmp_path / "notes.txt")
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pth")
    torch.save({"optimizer": {"lr": torch.tensor(1.0)}, "epoch": 3}, tmp_path / "noweights.pth")
    with pytest.raises(CheckpointError, match="not a model checkpoint"):
        read_checkpoint(tmp_path / "noweights.pth")


class Payload:  # a pickled object the weights-only unpickler must refuse
    def __reduce__(self):
        return (print, ("this would have run",))


def test_a_checkpoint_needing_code_is_refused(tmp_path):
    torch.save({"model": {"w": torch.zeros(1)}, "extra": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="arbitrary code"):
        read_checkpoint(tmp_path / "evil.pth")


def test_convert_writes_a_timm_state_dict(tmp_path):
    path = save_paper(tmp_path / "p.pth", "swin_femto")
    report = convert_checkpoint(path, "swin_femto", tmp_path / "out.pth")
    assert report.loaded == 173
    import dropbench.pretrain  # noqa: F401  (registers swin_femto)
    import timm

    out = torch.load(tmp_path / "out.pth", weights_only=True)
    assert out["pretrain"]["drop_rate"] == 0.5 and out["converted_from"]["layout"] == "paper"
    model = timm.create_model("swin_femto", num_classes=1000)
    model.load_state_dict(out["model"])  # strict
