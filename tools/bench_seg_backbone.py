"""UperNet train-step time with dropbench's timm-built Swin-F backbone beside mmseg's own ``SwinTransformer``.

    .venv/bin/python tools/bench_seg_backbone.py [--size 256] [--batch-size 2] [--steps 8] [--channels 128]

Both segmentors are the recipes' UperNet + auxiliary FCN head (configs/seg/_base_/models/upernet_timm.py, 150
classes) and differ only in the backbone: :class:`finetune.backbone.TimmPyramidBackbone` (``swin_femto``, built at the
input size as the recipes do) or mmseg's ``SwinTransformer`` at the same widths and depths (embed 40, depths 2-2-6-2,
heads 2-4-8-16, window 7, drop path 0.1). The heads default to 128 / 64 channels instead of the recipe's 512 / 256,
so that the backbone's share of a CPU step is larger (the test is stricter; ``--channels 512`` for the recipe's).
They share weights (``bench_common.share_weights``: mmseg's Swin gets ours through OpenMMLab's ``swin_converter``,
heads the same) and train on the same generated batch, one step each in turn (the order alternating), so drift in
machine load hits both alike; the medians, their ratio (target <= 1.05) and the same for the backbones alone
(forward + backward) are printed.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import dropbench.finetune.seg  # noqa: F401  (registers TimmPyramidBackbone)
import numpy as np
import torch
from dropbench.finetune.backbone import pyramid_channels
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import compare, print_comparison, share_weights  # noqa: E402

MODEL_CFG = Path(__file__).resolve().parents[1] / "configs" / "seg" / "_base_" / "models" / "upernet_timm.py"
MMSEG_SWIN_F = dict(type="SwinTransformer", embed_dims=40, depths=[2, 2, 6, 2], num_heads=[2, 4, 8, 16], window_size=7,
                    mlp_ratio=4, qkv_bias=True, drop_path_rate=0.1, patch_norm=True, use_abs_pos_embed=False,
                    out_indices=(0, 1, 2, 3))


def build_upernet(size: int, channels: int, in_channels: list[int], timm_model: str | None = None,
                  theirs: dict | None = None) -> torch.nn.Module:
    """The recipes' UperNet (heads ``channels`` / half wide, BN) on dropbench's backbone for ``timm_model``, or on the
    engine's backbone config ``theirs``; ``in_channels``: the backbone's four stage widths."""
    cfg = Config.fromfile(str(MODEL_CFG)).model
    if timm_model is not None:
        cfg.backbone.update(model_name=timm_model, drop_path_rate=0.1, img_size=size)
    else:
        cfg.backbone = copy.deepcopy(theirs)
    cfg.decode_head.update(in_channels=in_channels, channels=channels)
    cfg.auxiliary_head.update(in_channels=in_channels[2], channels=channels // 2)
    cfg.data_preprocessor.size = (size, size)
    for head in (cfg.decode_head, cfg.auxiliary_head):
        head.norm_cfg = dict(type="BN", requires_grad=True)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.train()


def build(backbone: str, size: int, channels: int) -> torch.nn.Module:
    """The recipes' UperNet with ``backbone`` ``timm`` (ours) or ``mmseg`` (mmseg's SwinTransformer)."""
    return build_upernet(size, channels, list(pyramid_channels("swin_femto")),
                         timm_model="swin_femto" if backbone == "timm" else None, theirs=MMSEG_SWIN_F)


def batch(n: int, size: int, seed: int = 0) -> dict:
    """``n`` random images with blocky 150-class label maps, as mmseg's data loader hands them to the model."""
    g = np.random.default_rng(seed)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.from_numpy(g.integers(0, 255, (3, size, size), dtype=np.uint8)))
        blocks = g.integers(0, 150, (size // 32, size // 32))
        label = torch.from_numpy(np.kron(blocks, np.ones((32, 32), np.int64)))[None]
        s = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size)))
        s.gt_sem_seg = PixelData(data=label)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256, help="square crop size (the recipes use 512)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--steps", type=int, default=8, help="timed steps per segmentor (after one warm-up step each)")
    p.add_argument("--channels", type=int, default=128, help="UperNet channels (auxiliary head: half)")
    args = p.parse_args()
    init_default_scope("mmseg")
    from mmdet.models.backbones.swin import swin_converter  # mmseg's Swin has the same layout; it ships no converter

    models = {name: build(name, args.size, args.channels) for name in ("timm", "mmseg")}
    share_weights(models, "timm", "mmseg", swin_converter)
    step, bb = compare(models, batch(args.batch_size, args.size), torch.randn(args.batch_size, 3, args.size, args.size),
                       args.steps)
    labels = {"timm": "dropbench TimmPyramidBackbone (Swin-F)", "mmseg": "mmseg SwinTransformer (Swin-F)"}
    print_comparison(models, labels, step, bb, f"UperNet ({args.channels} channels) + FCN train steps on "
                     f"{args.batch_size} x {args.size}x{args.size}, {args.steps} interleaved steps each (medians)")

if __name__ == "__main__":
    main()
