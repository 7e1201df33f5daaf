import numpy as np
import pytest
import torch
import torch.nn as nn
from dropbench.pretrain import PAPER_MODELS, create_paper_model
from dropbench.pretrain.schedules import DropRateApplier, drop_schedule, residual_blocks
from timm.layers import DropPath

HEAD_DROPOUTS = ("head_drop", "head.drop")  # timm's classifier dropouts (ViT, Mixer; Swin)


def test_standard_is_constant():
    s = drop_schedule(0.1, epochs=3, iters_per_epoch=4, mode="standard")
    assert s.shape == (12,) and np.all(s == 0.1)


def test_early_constant():
    s = drop_schedule(0.2, epochs=5, iters_per_epoch=3, cutoff_epoch=2, mode="early", schedule="constant")
    assert s.shape == (15,)
    np.testing.assert_array_equal(s[:6], 0.2)
    np.testing.assert_array_equal(s[6:], 0.0)


def test_early_linear_falls_to_exactly_zero():
    s = drop_schedule(0.1, epochs=4, iters_per_epoch=5, cutoff_epoch=2, mode="early", schedule="linear")
    assert s[0] == 0.1 and s[9] == 0.0
    assert np.all(np.diff(s[:10]) < 0)
    np.testing.assert_allclose(s[:10], np.linspace(0.1, 0, 10))
    np.testing.assert_array_equal(s[10:], 0.0)


def test_late_constant():
    s = drop_schedule(0.4, epochs=4, iters_per_epoch=2, cutoff_epoch=1, mode="late")
    np.testing.assert_array_equal(s, [0, 0, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4])


def test_cutoff_edges():
    np.testing.assert_array_equal(drop_schedule(0.3, 2, 2, 0, "early"), 0.0)
    np.testing.assert_array_equal(drop_schedule(0.3, 2, 2, 2, "early"), 0.3)
    np.testing.assert_array_equal(drop_schedule(0.3, 2, 2, 2, "late"), 0.0)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(drop_rate=1.0), "drop_rate"),
        (dict(drop_rate=-0.1), "drop_rate"),
        (dict(cutoff_epoch=11, mode="early"), "cutoff_epoch"),
        (dict(cutoff_epoch=-1, mode="early"), "cutoff_epoch"),
        (dict(mode="middle"), "mode"),
        (dict(schedule="cosine"), "schedule"),
        (dict(mode="late", schedule="linear", cutoff_epoch=2), "linear"),
        (dict(cutoff_epoch=2.5, mode="early"), "cutoff_epoch"),
        (dict(epochs=None), "epochs"),
    ],
)
def test_invalid_input_names_the_argument(kwargs, word):
    args = dict(drop_rate=0.1, epochs=10, iters_per_epoch=2) | kwargs
    with pytest.raises(ValueError, match=word):
        drop_schedule(**args)


EXPECTED_DEPTH = {"vit_tiny": 12, "vit_base": 12, "swin_femto": 12, "convnext_femto": 12, "mixer_s32": 8,
                  "mixer_b16": 12}


@pytest.mark.parametrize("name", list(PAPER_MODELS))
def test_drop_path_reaches_every_block_linearly_over_depth(name):
    model = create_paper_model(name, num_classes=5, drop_path=0.5, img_size=64)
    blocks = residual_blocks(model)
    assert len(blocks) == EXPECTED_DEPTH[name]
    apply = DropRateApplier(model, "drop_path", 0.5)
    for rate in (0.3, 0.0, 0.45):
        apply(rate)
        d = len(blocks)
        for i, block in enumerate(blocks):
            slots = [getattr(block, a) for a in ("drop_path", "drop_path1", "drop_path2") if hasattr(block, a)]
            for slot in slots:
                if i == 0:
                    assert isinstance(slot, nn.Identity) or slot.drop_prob == 0
                else:
                    assert isinstance(slot, DropPath)
                    assert slot.drop_prob == pytest.approx(rate * i / (d - 1))
    # every DropPath module of the model is driven by the applier
    all_dp = [m for m in model.modules() if isinstance(m, DropPath)]
    assert {id(m) for m in all_dp} == {id(m) for m, _ in apply._drop_paths}


@pytest.mark.parametrize("name", list(PAPER_MODELS))
def test_standard_rates_at_build_match_the_scheduled_ones(name):
    """Standard mode schedules nothing: the rates the model is built with must already be the paper's (every
    dropout at the rate, Mixer's and ViT's position dropouts included; block i at rate*i/(D-1), Mixer included)."""
    dropout = 0.1 if PAPER_MODELS[name].supports_dropout else 0.0
    built = create_paper_model(name, num_classes=5, dropout=dropout, drop_path=0.4, img_size=64)
    if dropout:  # every dropout but the classifier's, which the official models do not have
        rates = {n: m.p for n, m in built.named_modules() if isinstance(m, nn.modules.dropout._DropoutNd)}
        assert {p for n, p in rates.items() if n not in HEAD_DROPOUTS} == {0.1}
        assert [rates[n] for n in HEAD_DROPOUTS if n in rates] == [0.0]
    blocks = residual_blocks(built)
    for i, block in enumerate(blocks):
        for slot in (getattr(block, a) for a in ("drop_path", "drop_path1", "drop_path2") if hasattr(block, a)):
            assert (0.0 if isinstance(slot, nn.Identity) else slot.drop_prob) == pytest.approx(
                0.4 * i / (len(blocks) - 1))


@pytest.mark.parametrize("name", [n for n, m in PAPER_MODELS.items() if m.supports_dropout])
def test_dropout_reaches_every_dropout_module_but_the_heads(name):
    model = create_paper_model(name, num_classes=5, dropout=0.1, img_size=64)
    apply = DropRateApplier(model, "dropout", 0.1)
    apply(0.07)
    dropouts = {n: m for n, m in model.named_modules() if isinstance(m, nn.Dropout)}
    assert len(dropouts) > 10
    assert all(m.p == (0.0 if n in HEAD_DROPOUTS else 0.07) for n, m in dropouts.items())
    apply(0.0)
    assert all(m.p == 0.0 for m in dropouts.values())


def _official_dropouts(name: str) -> list[str]:
    """The modules facebookresearch/dropout's ``update_dropout`` sets, under timm's names, written out per family
    (models/vision_transformer.py, swin_transformer.py, mlp_mixer.py of that repository)."""
    if name in ("vit_tiny", "vit_base"):  # pos_drop; per block attention, projection, the MLP's dropout (twice)
        return ["pos_drop"] + [f"blocks.{b}.{m}" for b in range(12)
                               for m in ("attn.attn_drop", "attn.proj_drop", "mlp.drop1", "mlp.drop2")]
    if name == "swin_femto":  # pos_drop after the patch embedding; per block attention, projection, MLP
        depths = (2, 2, 6, 2)
        return ["patch_embed.pos_drop"] + [f"layers.{s}.blocks.{b}.{m}" for s in range(4) for b in range(depths[s])
                                           for m in ("attn.attn_drop", "attn.proj_drop", "mlp.drop1", "mlp.drop2")]
    blocks = {"mixer_s32": 8, "mixer_b16": 12}[name]  # token and channel MLPs
    return [f"blocks.{b}.{mlp}.{d}" for b in range(blocks) for mlp in ("mlp_tokens", "mlp_channels")
            for d in ("drop1", "drop2")]


@pytest.mark.parametrize("name", list(PAPER_MODELS))
def test_the_schedule_controls_exactly_the_official_modules(name):
    """Build each paper model at rate 0.1 and list every module whose rate the schedule controls, by name."""
    if not PAPER_MODELS[name].supports_dropout:  # ConvNeXt-F: stochastic depth only; every block but the first
        model = create_paper_model(name, num_classes=5, drop_path=0.1)
        depths = (2, 2, 6, 2)
        expected = [f"stages.{s}.blocks.{b}.drop_path" for s in range(4) for b in range(depths[s])][1:]
        assert DropRateApplier(model, "drop_path", 0.1).names == expected
        with pytest.raises(ValueError, match="no dropout"):
            create_paper_model(name, dropout=0.1)
        return
    model = create_paper_model(name, num_classes=5, dropout=0.1, img_size=64 if "mixer" not in name else 224)
    apply = DropRateApplier(model, "dropout", 0.1)
    assert apply.names == _official_dropouts(name)
    apply(0.3)
    live = sorted(n for n, m in model.named_modules() if isinstance(m, nn.Dropout) and m.p > 0)
    assert live == sorted(_official_dropouts(name))  # nothing else drops: the heads' dropouts stay at 0


def test_fused_attention_dropout_follows_the_module_rate():
    """timm's fused attention reads attn_drop.p at call time: rate 0 must make training forward deterministic."""
    model = create_paper_model("vit_tiny", num_classes=3, dropout=0.5, img_size=32).train()
    x = torch.randn(2, 3, 32, 32)
    DropRateApplier(model, "dropout", 0.5)(0.0)
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    b = model(x)
    torch.testing.assert_close(a, b)
    DropRateApplier(model, "dropout", 0.5)(0.5)
    assert not torch.allclose(model(x), model(x))


def test_convnext_refuses_dropout():
    with pytest.raises(ValueError, match="no dropout"):
        create_paper_model("convnext_femto", dropout=0.1)


def test_model_built_without_drop_path_is_refused():
    model = create_paper_model("vit_tiny", num_classes=3, drop_path=0.0, img_size=32)
    with pytest.raises(ValueError, match="drop_path_rate=0.3"):
        DropRateApplier(model, "drop_path", 0.3)
