"""What the backbone benchmarks share: one train step, one backbone step, interleaved medians, the printed table.

Two models run side by side in one process, one step each in turn (the order alternating every step), so drift in
machine load hits both alike; medians are compared.
"""

from __future__ import annotations

import re
import statistics
import time

import torch


def swin_official_state_dict(backbone: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A :class:`~finetune.backbone.TimmPyramidBackbone` (Swin) state dict in the official Swin layout: patch merging
    back at the end of the previous stage, no index buffers, no classifier norm (OpenMMLab's ``swin_converter`` input).
    """
    official = {}
    for k, v in backbone.model.state_dict().items():
        if k.endswith(("relative_position_index", "attn_mask")) or k.startswith(("head", "norm.")):
            continue
        official[re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", k)] = v
    return official


def openmmlab_swin_state_dict(backbone: torch.nn.Module, swin_converter) -> dict[str, torch.Tensor]:
    """Our Swin backbone's weights in mmdet's / mmseg's ``SwinTransformer`` names (their ``swin_converter``), with our
    per-level output norms as their ``norm{i}``."""
    out = {k.removeprefix("backbone."): v for k, v in swin_converter(swin_official_state_dict(backbone)).items()}
    for i, norm in enumerate(backbone.norms):
        out.update({f"norm{i}.{k}": v for k, v in norm.state_dict().items()})
    return out


def share_weights(models: dict[str, torch.nn.Module], ours: str, theirs: str, swin_converter) -> None:
    """Give ``theirs`` our backbone's weights and both the same neck and head weights: the same function, the same
    work in the heads."""
    res = models[theirs].backbone.load_state_dict(openmmlab_swin_state_dict(models[ours].backbone, swin_converter),
                                                  strict=False)
    missing = [k for k in res.missing_keys if not k.endswith("relative_position_index")]
    if missing or res.unexpected_keys:
        raise RuntimeError(f"weights do not map: missing {missing[:5]}, unexpected {res.unexpected_keys[:5]}")
    heads = {k: v for k, v in models[ours].state_dict().items() if not k.startswith("backbone.")}
    res = models[theirs].load_state_dict(heads, strict=False)
    if res.unexpected_keys or any(not k.startswith("backbone.") for k in res.missing_keys):
        raise RuntimeError(f"neck / head weights do not map: {res.unexpected_keys[:5]} {res.missing_keys[:5]}")


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, data: dict) -> float:
    """Seconds of one OpenMMLab train step (preprocess, loss, backward, update); the same random draws each call."""
    t = time.perf_counter()
    torch.manual_seed(1)
    d = model.data_preprocessor(data, True)
    loss, _ = model.parse_losses(model.loss(d["inputs"], d["data_samples"]))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t


def backbone_step(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Seconds of the backbone alone, forward and backward."""
    t = time.perf_counter()
    torch.manual_seed(1)
    sum(o.float().mean() for o in model.backbone(x)).backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - t


def compare(models: dict[str, torch.nn.Module], data: dict, x: torch.Tensor, steps: int
            ) -> tuple[dict[str, float], dict[str, float]]:
    """Median train-step and backbone-step seconds of each model, interleaved, after one warm-up step each."""
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in models.items()}
    step_t: dict[str, list[float]] = {k: [] for k in models}
    bb_t: dict[str, list[float]] = {k: [] for k in models}
    for k in models:
        train_step(models[k], opts[k], data)
        backbone_step(models[k], x)
    for i in range(steps):
        order = list(models) if i % 2 == 0 else list(models)[::-1]
        for k in order:
            step_t[k].append(train_step(models[k], opts[k], data))
        for k in order:
            bb_t[k].append(backbone_step(models[k], x))
    return ({k: statistics.median(v) for k, v in step_t.items()}, {k: statistics.median(v) for k, v in bb_t.items()})


def print_comparison(models: dict[str, torch.nn.Module], labels: dict[str, str], step: dict[str, float],
                     bb: dict[str, float], header: str) -> None:
    """The table and the ratio ours / theirs (the first key is ours)."""
    ours, theirs = list(models)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; {header}")
    print(f"{'backbone':34} {'params':>8} {'step (s)':>9} {'backbone fwd+bwd (s)':>21}")
    for k in models:
        params = sum(q.numel() for q in models[k].backbone.parameters() if q.requires_grad)
        print(f"{labels[k]:34} {params / 1e6:7.2f}M {step[k]:9.3f} {bb[k]:21.3f}")
    print(f"ratio {ours} / {theirs}: train step {step[ours] / step[theirs]:.3f} (target <= 1.05), "
          f"backbone alone {bb[ours] / bb[theirs]:.3f}")
