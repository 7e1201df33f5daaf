#!/usr/bin/env bash
# GPU check (a figure, not a test): ViT-T pretraining with AMP for a few hundred iterations on generated data, the
# basic recipe's pipeline (RandAugment, mixup/cutmix, early dropout), then the images/s of each epoch.
#
#   bash tools/gpu_pretrain_check.sh [OUT]        # after `make setup`, on a machine with a CUDA GPU
#
# Defaults: 10 generated classes x 640 images (64 px, trained at 224 px), batch 128, 4 epochs = 200 iterations,
# 8 data workers. Environment knobs: DEVICE (cuda), EPOCHS, BATCH, PER_CLASS, WORKERS, INPUT (224). The figure is
# end to end (data loading included); the first epoch carries the warm-up (cuDNN autotuning, worker start-up).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/dropbench-gpu-check}
py=${PYTHON:-.venv/bin/python}
device=${DEVICE:-cuda} epochs=${EPOCHS:-4} batch=${BATCH:-128} per_class=${PER_CLASS:-640} workers=${WORKERS:-8}
input=${INPUT:-224}
rm -rf "$out"
"$py" -m dropbench.benchmarks.cli data synth-imagenet --out "$out/data" --classes 10 --train-per-class "$per_class" \
    --val-per-class 20 --size 64
"$py" -m dropbench.benchmarks.cli pretrain --config basic --model vit_tiny --variant early-dropout --cutoff-epoch 2 \
    --epochs "$epochs" --warmup-epochs 1 --batch-size "$batch" --data "$out/data" --out "$out/run" \
    --device "$device" --no-progress \
    --cfg-options runtime.amp=true "data.num_workers=$workers" "data.input_size=$input" "data.eval_batch_size=$batch"
"$py" - "$out/run/log.jsonl" "$device" "$batch" "$input" <<'EOF'
import json
import sys

import torch

path, device, batch, size = sys.argv[1:]
records = [json.loads(line) for line in open(path)]
for r in records:
    print(f"epoch {r['epoch']}: {r['images_per_sec']:8.0f} img/s  train loss {r['train_loss']:.3f}  "
          f"val top-1 {r.get('val_top1', float('nan')):5.1f}  dropout {r['dropout']:.3f}")
steady = records[1:] or records
name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
amp = "AMP fp16" if device == "cuda" else "no AMP (CPU)"
print(f"{name}: ViT-T pretraining, {amp}, batch {batch}, {size} px: "
      f"{sum(r['images_per_sec'] for r in steady) / len(steady):.0f} img/s (mean of epochs after the first), "
      f"{records[-1]['iteration']} iterations")
EOF
