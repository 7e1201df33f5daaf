"""Mask R-CNN train-step time with dropbench's timm-built Swin-F backbone beside mmdet's own ``SwinTransformer``.

    .venv/bin/python tools/bench_det_backbone.py [--height 224] [--width 448] [--batch-size 2] [--steps 8]

Both detectors are the recipes' Mask R-CNN + FPN (configs/det/_base_/models/mask-rcnn_timm_fpn.py, 256-channel FPN
and heads) and differ only in the backbone: :class:`finetune.backbone.TimmPyramidBackbone` (``swin_femto``) or
mmdet's ``SwinTransformer`` at the same widths and depths (embed 40, depths 2-2-6-2, heads 2-4-8-16, window 7, drop
path 0.1). mmdet's gets our backbone's weights (``bench_common.share_weights``) and the detectors share neck and head
weights, so at sides that are multiples of 224 (every stage a whole number of windows) both compute the same function
and the heads do the same work (at other sides the two Swins differ at the padded borders: timm shifts the windows
before padding, mmdet after). They train on the same generated batch, one step each in turn (the order alternating),
so drift in machine load hits both alike; the medians, their ratio (target <= 1.05) and the same for the backbones
alone (forward + backward) are printed.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import dropbench.finetune.det  # noqa: F401  (registers TimmPyramidBackbone)
import numpy as np
import torch
from dropbench.finetune.backbone import pyramid_channels
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import compare, print_comparison, share_weights  # noqa: E402

MODEL_CFG = Path(__file__).resolve().parents[1] / "configs" / "det" / "_base_" / "models" / "mask-rcnn_timm_fpn.py"
MMDET_SWIN_F = dict(type="SwinTransformer", embed_dims=40, depths=[2, 2, 6, 2], num_heads=[2, 4, 8, 16], window_size=7,
                    mlp_ratio=4, qkv_bias=True, drop_path_rate=0.1, out_indices=(0, 1, 2, 3), convert_weights=False)


def build(backbone: str) -> torch.nn.Module:
    """The recipes' Mask R-CNN with ``backbone`` ``timm`` (ours) or ``mmdet`` (mmdet's SwinTransformer)."""
    cfg = Config.fromfile(str(MODEL_CFG)).model
    if backbone == "timm":
        cfg.backbone.update(model_name="swin_femto", drop_path_rate=0.1)
    else:
        cfg.backbone = copy.deepcopy(MMDET_SWIN_F)
    cfg.neck.in_channels = list(pyramid_channels("swin_femto"))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.train()


def batch(n: int, h: int, w: int, seed: int = 0) -> dict:
    """``n`` random images with three boxes and masks each, as mmdet's data loader hands them to the model."""
    g = np.random.default_rng(seed)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.from_numpy(g.integers(0, 255, (3, h, w), dtype=np.uint8)))
        boxes, masks = [], np.zeros((3, h, w), np.uint8)
        for k in range(3):
            x0, y0 = g.uniform(0, w * 0.6), g.uniform(0, h * 0.6)
            x1, y1 = x0 + g.uniform(24, w * 0.4), y0 + g.uniform(24, h * 0.4)
            boxes.append([x0, y0, x1, y1])
            masks[k, int(y0):int(y1), int(x0):int(x1)] = 1
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), scale_factor=(1.0, 1.0)))
        s.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32), labels=torch.tensor([0, 1, 2]),
                                      masks=BitmapMasks(masks, h, w))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--height", type=int, default=224)
    p.add_argument("--width", type=int, default=448)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--steps", type=int, default=8, help="timed steps per detector (after one warm-up step each)")
    args = p.parse_args()
    init_default_scope("mmdet")
    from mmdet.models.backbones.swin import swin_converter

    models = {name: build(name) for name in ("timm", "mmdet")}
    share_weights(models, "timm", "mmdet", swin_converter)
    step, bb = compare(models, batch(args.batch_size, args.height, args.width),
                       torch.randn(args.batch_size, 3, args.height, args.width), args.steps)
    labels = {"timm": "dropbench TimmPyramidBackbone (Swin-F)", "mmdet": "mmdet SwinTransformer (Swin-F)"}
    print_comparison(models, labels, step, bb, f"Mask R-CNN + FPN train steps on {args.batch_size} x "
                     f"{args.height}x{args.width}, {args.steps} interleaved steps each (medians)")

if __name__ == "__main__":
    main()
