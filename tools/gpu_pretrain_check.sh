#!/usr/bin/env bash
# GPU check (figures, not a test), after `make setup` on a CUDA machine (mmcv's CUDA wheel built or cached):
#   1. `dropbench doctor`: the stack, and mmcv's roi_align / nms on the GPU;
#   2. the smoke preset's stages on CUDA end to end, each timed: one pretraining variant (Swin-F, early dropout), then
#      from its checkpoint one COCO (Mask R-CNN), one ADE20K (UperNet) and one classification (CIFAR-100 layout) run;
#   3. pretraining throughput of ViT-T, Swin-F and ConvNeXt-F at 224 px with the basic recipe's pipeline (RandAugment,
#      mixup / cutmix, scheduled drop rates) on generated data: images/s and the share of the step time spent
#      waiting for data, from the last epoch (the first carries the warm-up: cuDNN autotuning, worker start-up).
# Designed for < 10 minutes on one H100. A summary table is printed at the end.
#
#   bash tools/gpu_pretrain_check.sh [OUT]                 # on a GPU
#   bash tools/gpu_pretrain_check.sh --cpu-dry-run [OUT]   # the same steps at toy sizes on the CPU (plumbing only)
#
# Environment knobs: EPOCHS (2), BATCH (128), PER_CLASS (640: 10 classes x 640 = 50 iterations of 128 per epoch),
# WORKERS (number of cores - 2), INPUT (224), MODELS ("vit_tiny swin_femto convnext_femto"), COMPILE=1 (--compile),
# SMOKE=0 (skip step 2). The loop options in force (channels_last, fused AdamW, compile, sync_every) are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=0
if [ "${1:-}" = "--cpu-dry-run" ]; then dry=1; shift; fi
out=${1:-/tmp/dropbench-gpu-check}
py=${PYTHON:-.venv/bin/python}
db=("$py" -m dropbench.benchmarks.cli)
models=${MODELS:-vit_tiny swin_femto convnext_femto}
if [ "$dry" = 1 ]; then
  device=cpu epochs=${EPOCHS:-2} batch=${BATCH:-8} per_class=${PER_CLASS:-8} workers=${WORKERS:-0} input=${INPUT:-32}
  classes=4 smoke_pt=(--epochs 2 --batch-size 8 --cfg-options data.input_size=32 data.num_workers=0)
  smoke_ft=(--cfg-options train_cfg.max_epochs=1) smoke_seg=(--cfg-options train_cfg.max_iters=4)
  smoke_cls=(--cfg-options schedule.epochs=1 data.input_size=32)
else
  device=cuda epochs=${EPOCHS:-2} batch=${BATCH:-128} per_class=${PER_CLASS:-640} input=${INPUT:-224} classes=10
  workers=${WORKERS:-$(( $(nproc) > 4 ? $(nproc) - 2 : 2 ))}
  smoke_pt=(--device cuda) smoke_ft=() smoke_seg=() smoke_cls=()
fi
compile=(); [ "${COMPILE:-0}" = 1 ] && compile=(--compile)
rm -rf "$out"
mkdir -p "$out"
summary="$out/summary.txt"
: > "$summary"
stamp() { date +%s.%N; }
timed() {  # timed LABEL CMD...: run, log to OUT/LABEL.log, append "LABEL seconds" to the summary
  local label=$1 t0 rc=0
  shift
  t0=$(stamp)
  "$@" > "$out/$label.log" 2>&1 || rc=$?
  printf '%-28s %6.1f s  %s\n' "$label" "$(awk -v a="$t0" -v b="$(stamp)" 'BEGIN { print b - a }')" \
    "$([ $rc = 0 ] && echo ok || echo "FAILED (rc $rc, see $out/$label.log)")" | tee -a "$summary"
  return $rc
}

echo "== 1. dropbench doctor"
"${db[@]}" doctor | tee "$out/doctor.log"

echo "== 2. smoke stages on $device"
if [ "${SMOKE:-1}" = 1 ]; then
  "${db[@]}" data synth-imagenet --out "$out/data/imagenet" --classes "$classes" --train-per-class 60 \
    --val-per-class 20 --size 64 > /dev/null
  "${db[@]}" data synth-coco --out "$out/data/coco" > /dev/null
  "${db[@]}" data synth-ade20k --out "$out/data/ade20k" > /dev/null
  "${db[@]}" data synth-cls --dataset cifar100 --out "$out/data/cifar100" > /dev/null
  ck="$out/smoke/pretrain/checkpoint.pth"
  timed smoke-pretrain-swin_femto "${db[@]}" pretrain --config smoke --model swin_femto --variant early-dropout \
    --cutoff-epoch 1 --data "$out/data/imagenet" --out "$out/smoke/pretrain" --no-progress "${smoke_pt[@]}" || true
  if [ -f "$ck" ]; then
    timed smoke-coco "${db[@]}" finetune coco --checkpoint "$ck" --model swin_femto --data "$out/data/coco" \
      --config smoke --out "$out/smoke/coco" "${smoke_ft[@]}" || true
    timed smoke-ade20k "${db[@]}" finetune ade20k --checkpoint "$ck" --model swin_femto --data "$out/data/ade20k" \
      --config smoke --out "$out/smoke/ade20k" "${smoke_seg[@]}" || true
    timed smoke-cls-cifar100 "${db[@]}" finetune cls --dataset cifar100 --checkpoint "$ck" --model swin_femto \
      --data "$out/data/cifar100" --config smoke --out "$out/smoke/cls" "${smoke_cls[@]}" || true
  fi
fi

echo "== 3. pretraining throughput on $device: batch $batch, $input px, $epochs epochs, $workers data workers"
"${db[@]}" data synth-imagenet --out "$out/data/throughput" --classes "$classes" --train-per-class "$per_class" \
  --val-per-class 4 --size 64 > /dev/null
for m in $models; do
  variant=early-dropout; [ "$m" = convnext_femto ] && variant=early-sd  # ConvNeXt has no dropout
  timed "throughput-$m" "${db[@]}" pretrain --config basic --model "$m" --variant "$variant" --cutoff-epoch 1 \
    --epochs "$epochs" --warmup-epochs 1 --batch-size "$batch" --data "$out/data/throughput" \
    --out "$out/throughput/$m" --device "$device" --no-progress "${compile[@]}" \
    --cfg-options "data.num_workers=$workers" "data.input_size=$input" "data.eval_batch_size=$batch" \
    runtime.eval_every=1000 || true
done

"$py" - "$out" "$device" "$batch" "$input" "$models" <<'EOF'
import json
import sys
from pathlib import Path

import torch

out, device, batch, size, models = sys.argv[1:]
name = torch.cuda.get_device_name() if device == "cuda" else "CPU (dry run: toy sizes, not a figure)"
print(f"\n== summary: {name}, torch {torch.__version__}")
print(Path(out, "summary.txt").read_text(), end="")
print(f"\npretraining throughput, {size} px, batch {batch}, last epoch (the first is warm-up):")
print(f"{'model':<16}{'img/s':>9}{'data wait':>11}  {'train loss':>10}  loop options")
for m in models.split():
    run = Path(out, "throughput", m)
    try:
        records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        loop = json.loads((run / "result.json").read_text())["extra"]["loop"]
    except (OSError, KeyError, ValueError) as e:
        print(f"{m:<16}{'failed':>9}  ({type(e).__name__}: {e}; see {out}/throughput-{m}.log)")
        continue
    r = records[-1]
    print(f"{m:<16}{r['images_per_sec']:>9.0f}{100 * r['data_wait_share']:>10.1f}%  {r['train_loss']:>10.3f}  {loop}")
EOF
! grep -q FAILED "$summary"
