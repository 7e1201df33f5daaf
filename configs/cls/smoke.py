# A CPU-sized version of the transfer recipe for the generated sets (`dropbench data synth-cls`): same pipeline
# (layer decay, RandAugment, label smoothing, fixed drop path, cosine with warm-up), 64 px, a few epochs, no mixup /
# cutmix / colour jitter / erasing, evaluated once after the last epoch. lr 3e-4 at 16 images: on the smoke preset's
# sets (6 texture classes, 10 training images each) a pretrained ViT-T reaches ~53 % top-1 and a random-init one stays
# near chance; 1e-3 overwrote the pretrained features (~45 %). Measured on the 2-core machine.
_base_ = ['./transfer.py']

data = dict(input_size=64, batch_size=16, eval_batch_size=64, num_workers=0, pin_memory=False, crop_pct=1.0)
augment = dict(auto_augment='rand-m5-mstd0.5-inc1', color_jitter=0.0, re_prob=0.0, mixup=0.0, cutmix=0.0,
               scale=(0.35, 1.0))
optim = dict(lr=3e-4, lr_batch_size=16)
schedule = dict(epochs=5, warmup_epochs=1, min_lr=1e-5)
runtime = dict(amp=None, eval_every=1000)  # the last epoch is always evaluated
per_dataset = dict(_delete_=True)  # the same settings for every generated set
