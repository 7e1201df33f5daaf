# The paper's basic ImageNet recipe (Liu et al., ICML 2023, Sec. 4; official code defaults, facebookresearch/dropout):
# 300 epochs, AdamW, lr 4e-3 at total batch 4096, weight decay 0.05, 50 warm-up epochs, cosine to 1e-6,
# label smoothing 0.1, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25, mixup 0.8, cutmix 1.0.
# The model and the drop schedule come from the command line (--model, --dropout/--drop-path, --drop-mode, ...)
# or from a variant (variants.py).

model = dict(
    name=None,  # --model: vit_tiny | vit_base | swin_femto | convnext_femto | mixer_s32 | mixer_b16
    num_classes=None,  # None: the number of class folders in the data set
    img_size=None,  # None: data.input_size
)

# Drop schedule. kind: none | dropout | drop_path (at most one is scheduled; ConvNeXt has no dropout).
# mode: standard | early | late; schedule: constant | linear (linear: early only); cutoff_epoch: where early ends /
# late starts. Rates are set every iteration; stochastic depth is spread linearly over depth (block i: rate*i/(D-1)).
drop = dict(kind='none', rate=0.0, mode='standard', schedule='constant', cutoff_epoch=0)

data = dict(
    root=None,  # ImageNet layout: root/train/<class>/*, root/val/<class>/*
    input_size=224,
    batch_size=128,  # per process, as in the official code
    update_freq=1,  # gradient accumulation steps
    eval_batch_size=256,
    num_workers=10,
    pin_memory=True,
    interpolation='bicubic',
    crop_pct=None,  # None: the model's default (0.875)
)

augment = dict(
    auto_augment='rand-m9-mstd0.5-inc1',
    color_jitter=0.4,
    re_prob=0.25,
    re_mode='pixel',
    re_count=1,
    mixup=0.8,
    cutmix=1.0,
    cutmix_minmax=None,
    mixup_prob=1.0,
    mixup_switch_prob=0.5,
    mixup_mode='batch',
    smoothing=0.1,
)

optim = dict(
    opt='adamw',
    lr=4e-3,  # at a total batch of lr_batch_size; scaled linearly to batch_size * update_freq * world_size
    lr_batch_size=4096,
    weight_decay=0.05,
    opt_eps=1e-8,
    opt_betas=None,
    clip_grad=None,
    layer_decay=None,
)

schedule = dict(epochs=300, warmup_epochs=50, min_lr=1e-6, warmup_lr=0.0)

ema = dict(enabled=False, decay=0.9999)

runtime = dict(
    seed=0,
    device='auto',  # auto | cpu | cuda
    amp=True,  # mixed precision on GPU (float16 with a grad scaler, as the paper's code); ignored on CPU
    eval_every=1,  # epochs
    save_every_iters=0,  # extra mid-epoch checkpoints (0: only at epoch ends); SIGTERM also saves one
    keep_checkpoints=3,  # per-epoch checkpoint-<epoch>.pth files kept besides checkpoint.pth
    progress=True,
    sync_every=50,  # optimizer steps between host reads of the loss (its non-finite check stops the run within them)
    channels_last='auto',  # true | false | auto: on for ConvNeXt on CUDA
    fused_optimizer='auto',  # true | false | auto: torch's fused AdamW/Adam kernel on CUDA
    compile=False,  # torch.compile the model (--compile): false | true | a backend name ('eager', 'aot_eager', ...)
)
