"""Cost of drop scheduling: training images/s with the per-iteration rate update on and off, per paper model.

    .venv/bin/python tools/bench_drop_schedule.py [--img-size 224] [--batch-size 16] [--steps 6] [--models ...]

Both settings run side by side in one process, interleaved step by step (same model, same data), so the ratio is
not skewed by drift in machine load. The update cost is also timed on its own: the applier is called with a new rate
every time (the worst case: early-linear schedules change the rate every iteration) and compared with a step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from dropbench.pretrain import PAPER_MODELS, create_paper_model
from dropbench.pretrain.schedules import DropRateApplier, drop_schedule


def bench(name: str, img_size: int, batch: int, steps: int) -> dict:
    kind = "dropout" if PAPER_MODELS[name].supports_dropout else "drop_path"
    kwargs = {"dropout": 0.1} if kind == "dropout" else {"drop_path": 0.5}
    model = create_paper_model(name, num_classes=100, img_size=img_size, **kwargs).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    apply = DropRateApplier(model, kind, 0.5 if kind == "drop_path" else 0.1)
    rates = drop_schedule(0.5 if kind == "drop_path" else 0.1, 1, 2 * steps + 2, 1, "early", "linear")
    x = torch.randn(batch, 3, img_size, img_size)
    y = torch.randint(0, 100, (batch,))

    def step(it: int | None) -> float:
        t = time.perf_counter()
        if it is not None:
            apply(rates[it])
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t

    step(0)  # warm-up
    on, off = [], []
    for i in range(steps):
        on.append(step(2 * i + 1))
        off.append(step(None))
    # the update alone, with a fresh rate each call
    n = 2000
    sweep = np.linspace(0.5, 0.0, n)
    t = time.perf_counter()
    for r in sweep:
        apply(r)
    update = (time.perf_counter() - t) / n
    t_on, t_off = statistics.median(on), statistics.median(off)
    return {
        "model": name,
        "kind": kind,
        "img/s on": batch / t_on,
        "img/s off": batch / t_off,
        "ratio on/off": t_off / t_on,
        "update us": update * 1e6,
        "update % of step": 100 * update / t_off,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(PAPER_MODELS))
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=6)
    args = p.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; input {args.img_size}px, batch "
          f"{args.batch_size}, {args.steps} interleaved steps per setting (medians)")
    header = f"{'model':16} {'kind':10} {'img/s on':>9} {'img/s off':>9} {'ratio':>7} {'update us':>10} {'% step':>8}"
    print(header)
    print("-" * len(header))
    for name in args.models:
        r = bench(name, args.img_size, args.batch_size, args.steps)
        print(f"{r['model']:16} {r['kind']:10} {r['img/s on']:9.1f} {r['img/s off']:9.1f} {r['ratio on/off']:7.3f} "
              f"{r['update us']:10.1f} {r['update % of step']:8.4f}")


if __name__ == "__main__":
    main()
