import pytest
import timm
import torch
from dropbench.pretrain import PAPER_MODELS, create_paper_model, paper_model


@pytest.mark.parametrize("name", list(PAPER_MODELS))
def test_timm_finds_paper_models(name):
    assert timm.is_model(name)
    model = create_paper_model(name, num_classes=7, img_size=64)
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 7)


def test_architectures_match_the_paper():
    swin = timm.create_model("swin_femto")
    assert swin.embed_dim == 40 and [len(s.blocks) for s in swin.layers] == [2, 2, 6, 2]
    assert [s.blocks[0].attn.num_heads for s in swin.layers] == [2, 4, 8, 16]
    assert swin.layers[0].blocks[0].window_size == (7, 7)
    vit = timm.create_model("vit_tiny")
    assert vit.embed_dim == 192 and len(vit.blocks) == 12 and vit.blocks[0].attn.num_heads == 3
    assert vit.patch_embed.patch_size == (16, 16)
    vitb = timm.create_model("vit_base")
    assert vitb.embed_dim == 768 and vitb.blocks[0].attn.num_heads == 12
    cnx = timm.create_model("convnext_femto")
    assert [s.blocks[0].conv_dw.in_channels for s in cnx.stages] == [48, 96, 192, 384]
    assert [len(s.blocks) for s in cnx.stages] == [2, 2, 6, 2]
    assert timm.create_model("mixer_s32").stem.patch_size == (32, 32)
    assert len(timm.create_model("mixer_b16").blocks) == 12


def test_defaults_have_no_drop():
    from timm.layers import DropPath

    for name in PAPER_MODELS:
        model = timm.create_model(name)
        assert not any(isinstance(m, DropPath) for m in model.modules()), name


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="vit_tiny"):
        paper_model("resnet50")


def test_reregistering_a_timm_name_is_an_error():
    from dropbench.pretrain.models import _unique
    from timm.models import register_model  # noqa: F401

    def vit_tiny_patch16_224(pretrained=False, **kwargs):  # a name timm already has
        return None

    with pytest.raises(RuntimeError, match="already has"):
        _unique(vit_tiny_patch16_224)
