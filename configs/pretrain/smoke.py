# A CPU-sized version of the basic recipe for the embedded default (dropbench data synth-imagenet): the same pipeline
# (AdamW, warm-up + cosine, label smoothing, random-resized crops, drop schedules, EMA optional), 48 px images, 6
# epochs, a learning rate for the small batch (2e-4 at 16 images: ViT-T learns the generated textures to ~87 % top-1 in
# these 6 epochs, 6 classes (4 epochs: ~76 %, and its COCO transfer was half as large); 5e-4 learns them slower, 2e-3
# not at all; measured on the 2-core machine). RandAugment is off: the generated classes are textures of 6-10 px
# periods, which its shears, posterize and very small crops destroy (set augment.auto_augment to turn it back on).
_base_ = ['./basic.py']

data = dict(input_size=48, batch_size=16, eval_batch_size=64, num_workers=2, pin_memory=False, crop_pct=1.0)
augment = dict(auto_augment=None, scale=(0.4, 1.0), re_prob=0.0, mixup=0.0, cutmix=0.0, smoothing=0.1,
               color_jitter=0.0)
optim = dict(lr=2e-4, lr_batch_size=16, weight_decay=0.05)
schedule = dict(epochs=6, warmup_epochs=1, min_lr=1e-5)
runtime = dict(amp=None, save_every_iters=0, keep_checkpoints=1)  # the newest epoch only: fine-tunes read checkpoint.pth
