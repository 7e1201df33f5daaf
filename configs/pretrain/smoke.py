# A CPU-sized version of the basic recipe for the embedded default (dropbench data synth-imagenet): the same pipeline
# (AdamW, warm-up + cosine, label smoothing, random-resized crops, drop schedules, EMA optional), small images, few
# epochs, a learning rate for the small batch. RandAugment is off: the generated classes are told apart by colour and
# shape, which its colour operations and very small crops destroy (set augment.auto_augment to turn it back on).
_base_ = ['./basic.py']

data = dict(input_size=48, batch_size=16, eval_batch_size=64, num_workers=2, pin_memory=False, crop_pct=1.0)
augment = dict(auto_augment=None, scale=(0.4, 1.0), re_prob=0.0, mixup=0.0, cutmix=0.0, smoothing=0.1,
               color_jitter=0.0)
optim = dict(lr=5e-4, lr_batch_size=16, weight_decay=0.05)
schedule = dict(epochs=6, warmup_epochs=1, min_lr=1e-5)
runtime = dict(amp=None, save_every_iters=0, keep_checkpoints=1)  # the newest epoch only: fine-tunes read checkpoint.pth
