"""What evaluating a timm architecture costs: one detection and one segmentation train step through dropbench's
backbone beside the engines' own backbones.

    .venv/bin/python tools/bench_any_model.py [--steps 4] [--batch-size 2] [--only det|seg]

Two pairs per task, each timed as ``tools/bench_det_backbone.py`` / ``tools/bench_seg_backbone.py`` time the paper's
Swin-F (same recipes' Mask R-CNN + FPN and UperNet + FCN, one generated batch, one step of each model in turn, the
order alternating, medians; ``bench_common``):

* ``swin_tiny_patch4_window7_224`` (timm, read through :func:`finetune.backbone.pyramid_layout`) beside mmdet's /
  mmseg's own ``SwinTransformer`` at Swin-T's widths and depths, sharing weights (same function, same head work): the
  ratio is dropbench's overhead for a non-paper model of the same size (target <= 1.05);
* ``convnext_tiny`` (timm) beside the engines' ResNet-50 (mmdet and mmseg ship no ConvNeXt; mmpretrain's is not
  installed): architectures of about the same size (28 M vs 25 M parameters, 4.5 vs 4.1 GFLOPs at 224 px), so the
  ratio is the architecture's, not the adapter's.

Backbones are randomly initialised (no checkpoint is read: loading is not part of a step).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_det_backbone as det  # noqa: E402  (registers TimmPyramidBackbone in mmdet)
import bench_seg_backbone as seg  # noqa: E402  (and in mmseg)
from bench_common import compare, print_comparison, share_weights  # noqa: E402
from dropbench.finetune.backbone import pyramid_channels  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

SWIN_T = dict(type="SwinTransformer", embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
              mlp_ratio=4, qkv_bias=True, drop_path_rate=0.1, out_indices=(0, 1, 2, 3))
RESNET50 = dict(type="ResNet", depth=50, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                norm_cfg=dict(type="BN", requires_grad=True), norm_eval=False, style="pytorch")
PAIRS = {"swin": ("swin_tiny_patch4_window7_224", SWIN_T, "Swin-T"), "convnext": ("convnext_tiny", RESNET50, "R-50")}


def build_det(model_name: str | None, theirs: dict | None) -> torch.nn.Module:
    """The recipes' Mask R-CNN with dropbench's backbone for ``model_name``, or the engine's backbone ``theirs``."""
    cfg = Config.fromfile(str(det.MODEL_CFG)).model
    if model_name is not None:
        cfg.backbone.update(model_name=model_name, drop_path_rate=0.1)
        cfg.neck.in_channels = list(pyramid_channels(model_name))
    else:
        cfg.backbone = copy.deepcopy(theirs)
        cfg.backbone.pop("convert_weights", None)
        cfg.neck.in_channels = ([96, 192, 384, 768] if theirs["type"] == "SwinTransformer" else
                                [256, 512, 1024, 2048])
    torch.manual_seed(0)
    model = det.MODELS.build(cfg)
    model.init_weights()
    return model.train()


def build_seg(model_name: str | None, theirs: dict | None, size: int, channels: int) -> torch.nn.Module:
    """The recipes' UperNet likewise (``bench_seg_backbone.build_upernet``: heads ``channels`` / half wide, BN)."""
    if model_name is not None:
        return seg.build_upernet(size, channels, list(pyramid_channels(model_name)), timm_model=model_name)
    swin = theirs["type"] == "SwinTransformer"
    theirs = {**theirs, **(dict(patch_norm=True, use_abs_pos_embed=False) if swin else {})}
    return seg.build_upernet(size, channels, [96, 192, 384, 768] if swin else [256, 512, 1024, 2048], theirs=theirs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=4, help="timed steps per model (after one warm-up step each)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--height", type=int, default=224, help="detection images (default 224 x 448)")
    p.add_argument("--width", type=int, default=448)
    p.add_argument("--size", type=int, default=256, help="segmentation crops (square)")
    p.add_argument("--channels", type=int, default=128, help="UperNet channels (auxiliary head: half)")
    p.add_argument("--only", choices=("det", "seg"), help="one task only")
    p.add_argument("--pairs", nargs="+", choices=tuple(PAIRS), default=list(PAIRS))
    args = p.parse_args()
    from mmdet.models.backbones.swin import swin_converter

    for task in ("det", "seg"):
        if args.only and task != args.only:
            continue
        init_default_scope("mmdet" if task == "det" else "mmseg")
        for pair in args.pairs:
            name, theirs, label = PAIRS[pair]
            engine = "mmdet" if task == "det" else "mmseg"
            if task == "det":
                models = {"dropbench": build_det(name, None), engine: build_det(None, theirs)}
                data = det.batch(args.batch_size, args.height, args.width)
                x = torch.randn(args.batch_size, 3, args.height, args.width)
                header = (f"Mask R-CNN + FPN train steps on {args.batch_size} x {args.height}x{args.width}, "
                          f"{args.steps} interleaved steps each (medians)")
            else:
                models = {"dropbench": build_seg(name, None, args.size, args.channels),
                          engine: build_seg(None, theirs, args.size, args.channels)}
                data = seg.batch(args.batch_size, args.size)
                x = torch.randn(args.batch_size, 3, args.size, args.size)
                header = (f"UperNet ({args.channels} channels) + FCN train steps on {args.batch_size} x "
                          f"{args.size}x{args.size}, {args.steps} interleaved steps each (medians)")
            if pair == "swin":  # the same function: the engine's Swin gets ours' weights, the heads the same
                share_weights(models, "dropbench", engine, swin_converter)
            step, bb = compare(models, data, x, args.steps)
            labels = {"dropbench": f"dropbench TimmPyramidBackbone ({name})", engine: f"{engine} {theirs['type']} "
                      f"({label})"}
            print_comparison(models, labels, step, bb, header)
            print()


if __name__ == "__main__":
    main()
