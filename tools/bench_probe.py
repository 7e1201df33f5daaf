"""Speed of the frozen-feature probes (issue 14's three figures), on this machine's CPU (or a GPU if one is seen).

    nice -n 10 .venv/bin/python tools/bench_probe.py [--model vit_base] [--images 64] [--rounds 2] \
        [--only extract linear knn]

- extract: :func:`finetune.probe.extract_features` (the probe's path: the data set's reader, decoding, timm's eval
  transform in ``num_workers`` loader processes, the forward) against timm's bare batched forward of the same model
  on the same images, already decoded and transformed in memory (``forward_features`` + ``forward_head(pre_logits=
  True)``, eval mode, no grad, the same batch size). Both run in one process, in alternating rounds over the same
  generated JPEGs of photo size (500 x 375, the image-folder generator's ``realistic`` option), so machine load hits
  both alike; the ratio is the probe's images/s over the bare forward's (target >= 0.9).
- linear: :func:`finetune.probe.linear_probe` with the ``standard`` recipe's sweep on cached-feature-sized data: 50,000
  training x 768 features, 100 classes (overlapping Gaussian classes in a 32-dimensional subspace, so the sweep has
  something to choose), 10,000 test; sweep and refit included (target < 60 s on 2 cores).
- knn: :func:`finetune.probe.knn_predict` of 10,000 test against 50,000 training features of 768 dimensions, k = 20,
  1 and 10 (target < 10 s).

Wall clock and this process's CPU time (user + system, all threads) are printed: on a loaded machine the CPU time
over the thread count is the better guide to what an idle one takes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
from dropbench.finetune.datasets.cls import load_cls_data, write_synth_cls
from dropbench.finetune.probe import extract_features, knn_predict, linear_probe, pre_logits
from dropbench.pretrain.config import load_config, resolve_config
from dropbench.pretrain.models import create_paper_model
from timm.data import create_transform, resolve_data_config

TARGETS = {"extract": "ratio >= 0.9", "linear": "< 60 s", "knn": "< 10 s"}


def bench_extract(model_name: str, images: int, rounds: int, batch_size: int, workers: int) -> dict:
    """Probe extraction vs the bare batched forward, alternating rounds; images/s of each and their ratio."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        per_class = max(2, images // 10)
        write_synth_cls(tmp, dataset="imagefolder", train_per_class=per_class, test_per_class=1, realistic=True)
        data = load_cls_data("imagefolder", tmp)
        dataset = data.train
        model = create_paper_model(model_name, num_classes=0, img_size=224).to(device).eval()
        cfg = resolve_data_config({"input_size": (3, 224, 224)}, model=model)
        transform = create_transform(input_size=224, is_training=False, interpolation="bicubic",
                                     crop_pct=cfg["crop_pct"], mean=cfg["mean"], std=cfg["std"])
        tensors = torch.stack([transform(dataset[i][0]) for i in range(len(dataset))])  # bare: decoded beforehand
        n = len(tensors)
        with torch.no_grad():
            pre_logits(model, tensors[:batch_size].to(device))  # warm-up
        times = {"probe": 0.0, "bare": 0.0}
        for r in range(rounds):
            for which in (("probe", "bare") if r % 2 == 0 else ("bare", "probe")):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                if which == "probe":
                    feats, _ = extract_features(model, dataset, transform, batch_size, workers, device)
                else:
                    with torch.no_grad():
                        feats = torch.cat([pre_logits(model, tensors[i:i + batch_size].to(device)).cpu()
                                           for i in range(0, n, batch_size)])
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[which] += time.perf_counter() - t
        probe_ips, bare_ips = rounds * n / times["probe"], rounds * n / times["bare"]
        return {"model": model_name, "device": str(device), "images": n, "feature_dim": feats.shape[1],
                "probe_img_s": probe_ips, "bare_img_s": bare_ips, "ratio": probe_ips / bare_ips,
                "workers": workers, "batch_size": batch_size}


def features(n_train: int = 50_000, n_test: int = 10_000, dim: int = 768, classes: int = 100, latent: int = 32
             ) -> tuple[torch.Tensor, ...]:
    """Feature-like data: overlapping Gaussian classes in a ``latent``-dimensional subspace, embedded in ``dim``
    dimensions with a little isotropic noise (real features are far from isotropic: kNN and linear both work)."""
    g = torch.Generator().manual_seed(0)
    centres, embed = torch.randn(classes, latent, generator=g), torch.randn(latent, dim, generator=g)
    out = []
    for n in (n_train, n_test):
        y = torch.randint(0, classes, (n,), generator=g)
        out += [(centres[y] + 1.5 * torch.randn(n, latent, generator=g)) @ embed + torch.randn(n, dim, generator=g), y]
    return tuple(out)


def _timed(fn, *args) -> tuple[object, float, float]:
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - t, time.process_time() - c


def bench_linear(data: tuple[torch.Tensor, ...]) -> dict:
    x, y, xt, yt = data
    cfg = load_config(resolve_config("probe", "standard")).linear
    (pred, info), wall, cpu = _timed(linear_probe, x, y, xt, int(y.max()) + 1, list(cfg.l2_sweep), float(cfg.holdout),
                                     0, int(cfg.sweep_max_iter), int(cfg.max_iter), float(cfg.tolerance),
                                     cfg.get("patience"))
    return {"seconds": wall, "cpu": cpu, "top1": 100.0 * float((pred[:, 0] == yt).float().mean()), "l2": info["l2"],
            "sweep": len(info["l2_sweep"]), "grid": len(info["l2_grid"]), "sweep_iterations": info["sweep_iterations"],
            "refit_iterations": info["refit_iterations"]}


def bench_knn(data: tuple[torch.Tensor, ...]) -> dict:
    x, y, xt, yt = data
    pred, wall, cpu = _timed(knn_predict, x, y, xt, int(y.max()) + 1, [20, 1, 10], 0.07)
    return {"seconds": wall, "cpu": cpu, "top1": 100.0 * float((pred[20][:, 0] == yt).float().mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="vit_base", help="paper model for the extraction figure")
    p.add_argument("--images", type=int, default=64, help="images per extraction round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=1, help="loader processes of the probe's extraction")
    p.add_argument("--only", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    args = p.parse_args()
    print(f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}, "
          f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    if "extract" in args.only:
        r = bench_extract(args.model, args.images, args.rounds, args.batch_size, args.workers)
        print(f"extract  {r['model']} on {r['device']}, {r['images']} images x {args.rounds} rounds, batch "
              f"{r['batch_size']}, {r['workers']} loader process(es): probe {r['probe_img_s']:.1f} img/s (decoding "
              f"included), bare timm forward {r['bare_img_s']:.1f} img/s: ratio {r['ratio']:.3f} "
              f"(target {TARGETS['extract']})")
    data = features() if {"linear", "knn"} & set(args.only) else ()
    if "linear" in args.only:
        r = bench_linear(data)
        print(f"linear   50000 x 768, 100 classes, sweep of {r['sweep']} of {r['grid']} strengths (L-BFGS iterations "
              f"{r['sweep_iterations']}) "
              f"+ refit ({r['refit_iterations']}): {r['seconds']:.1f} s wall, {r['cpu']:.1f} s CPU (target "
              f"{TARGETS['linear']}); chosen L2 {r['l2']:g}, test top-1 {r['top1']:.1f} %")
    if "knn" in args.only:
        r = bench_knn(data)
        print(f"knn      10000 x 50000 x 768, k = 20, 1, 10: {r['seconds']:.2f} s wall, {r['cpu']:.1f} s CPU (target "
              f"{TARGETS['knn']}); top-1 {r['top1']:.1f} %")


if __name__ == "__main__":
    main()
