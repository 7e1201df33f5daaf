# A CPU-sized version of the basic recipe for the embedded default (dropbench data synth-imagenet): same pipeline,
# small images, few epochs, light augmentation so that a few epochs learn the generated classes.
_base_ = ['./basic.py']

data = dict(input_size=64, batch_size=32, eval_batch_size=64, num_workers=2, pin_memory=False, crop_pct=1.0)
augment = dict(auto_augment='rand-m5-mstd0.5-inc1', re_prob=0.0, mixup=0.0, cutmix=0.0, smoothing=0.1,
               color_jitter=0.0)
optim = dict(lr=1e-3, lr_batch_size=32, weight_decay=0.05)
schedule = dict(epochs=6, warmup_epochs=1, min_lr=1e-5)
runtime = dict(amp=False, save_every_iters=0)
