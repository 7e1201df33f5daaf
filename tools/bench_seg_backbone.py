"""UperNet train-step time with dropbench's timm-built Swin-F backbone beside mmseg's own ``SwinTransformer``.

    .venv/bin/python tools/bench_seg_backbone.py [--size 256] [--batch-size 2] [--steps 8] [--channels 128]

Both segmentors are the recipes' UperNet + auxiliary FCN head (configs/seg/_base_/models/upernet_timm.py, 150
classes) and differ only in the backbone: :class:`finetune.backbone.TimmPyramidBackbone` (``swin_femto``, built at the
input size as the recipes do) or mmseg's ``SwinTransformer`` at the same widths and depths (embed 40, depths 2-2-6-2,
heads 2-4-8-16, window 7, drop path 0.1). The heads default to 128 / 64 channels instead of the recipe's 512 / 256,
so that the backbone's share of a CPU step is larger (the test is stricter; ``--channels 512`` for the recipe's).
They train on the same generated batch, one step each in turn (the order alternating), so drift in machine load hits
both alike; the medians, their ratio (target <= 1.05) and the same for the backbones alone (forward + backward) are
printed.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import finetune.seg  # noqa: F401  (registers TimmPyramidBackbone)
from finetune.backbone import pyramid_channels

MODEL_CFG = Path(__file__).resolve().parents[1] / "configs" / "seg" / "_base_" / "models" / "upernet_timm.py"
MMSEG_SWIN_F = dict(type="SwinTransformer", embed_dims=40, depths=[2, 2, 6, 2], num_heads=[2, 4, 8, 16], window_size=7,
                    mlp_ratio=4, qkv_bias=True, drop_path_rate=0.1, patch_norm=True, use_abs_pos_embed=False,
                    out_indices=(0, 1, 2, 3))


def build(backbone: str, size: int, channels: int) -> torch.nn.Module:
    """The recipes' UperNet with ``backbone`` ``timm`` (ours) or ``mmseg`` (mmseg's SwinTransformer)."""
    cfg = Config.fromfile(str(MODEL_CFG)).model
    if backbone == "timm":
        cfg.backbone.update(model_name="swin_femto", drop_path_rate=0.1, img_size=size)
    else:
        cfg.backbone = copy.deepcopy(MMSEG_SWIN_F)
    in_channels = list(pyramid_channels("swin_femto"))
    cfg.decode_head.update(in_channels=in_channels, channels=channels)
    cfg.auxiliary_head.update(in_channels=in_channels[2], channels=channels // 2)
    cfg.data_preprocessor.size = (size, size)
    for head in (cfg.decode_head, cfg.auxiliary_head):
        head.norm_cfg = dict(type="BN", requires_grad=True)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.train()


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


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, data: dict) -> float:
    t = time.perf_counter()
    torch.manual_seed(1)  # the same drop-path draws for both
    d = model.data_preprocessor(data, True)
    losses = model.loss(d["inputs"], d["data_samples"])
    loss, _ = model.parse_losses(losses)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t


def backbone_step(model: torch.nn.Module, x: torch.Tensor) -> float:
    t = time.perf_counter()
    torch.manual_seed(1)
    sum(o.float().mean() for o in model.backbone(x)).backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256, help="square crop size (the recipes use 512)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--steps", type=int, default=8, help="timed steps per segmentor (after one warm-up step each)")
    p.add_argument("--channels", type=int, default=128, help="UperNet channels (auxiliary head: half)")
    args = p.parse_args()
    init_default_scope("mmseg")
    models = {name: build(name, args.size, args.channels) for name in ("timm", "mmseg")}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in models.items()}
    params = {k: sum(q.numel() for q in m.backbone.parameters() if q.requires_grad) for k, m in models.items()}
    data = batch(args.batch_size, args.size)
    x = torch.randn(args.batch_size, 3, args.size, args.size)
    step_t: dict[str, list[float]] = {k: [] for k in models}
    bb_t: dict[str, list[float]] = {k: [] for k in models}
    for k in models:  # warm-up
        train_step(models[k], opts[k], data)
        backbone_step(models[k], x)
    for i in range(args.steps):
        order = list(models) if i % 2 == 0 else list(models)[::-1]
        for k in order:
            step_t[k].append(train_step(models[k], opts[k], data))
        for k in order:
            bb_t[k].append(backbone_step(models[k], x))
    med = {k: statistics.median(v) for k, v in step_t.items()}
    bb = {k: statistics.median(v) for k, v in bb_t.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; UperNet ({args.channels} channels) + "
          f"FCN train steps on {args.batch_size} x {args.size}x{args.size}, {args.steps} interleaved steps each "
          f"(medians)")
    print(f"{'backbone':34} {'params':>8} {'step (s)':>9} {'backbone fwd+bwd (s)':>21}")
    for k, label in (("timm", "dropbench TimmPyramidBackbone"), ("mmseg", "mmseg SwinTransformer")):
        print(f"{label + ' (Swin-F)':34} {params[k] / 1e6:7.2f}M {med[k]:9.3f} {bb[k]:21.3f}")
    print(f"ratio timm / mmseg: train step {med['timm'] / med['mmseg']:.3f} (target <= 1.05), "
          f"backbone alone {bb['timm'] / bb['mmseg']:.3f}")


if __name__ == "__main__":
    main()
