# The paper's basic ImageNet recipe (Liu et al., ICML 2023, Sec. 4). Sources: facebookresearch/dropout main.py (its
# argparse defaults, "main.py" below) and README.md (the "Basic Recipe" commands: --epochs 300 --batch_size 128
# --lr 4e-3 --update_freq 4 on 8 GPUs; "README" below). Settings with neither say "dropbench's choice: no source".
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
# main.py: --dropout 0, --drop_path 0, --drop_mode standard, --drop_schedule constant defaults; drop_scheduler.py
drop = dict(kind='none', rate=0.0, mode='standard', schedule='constant', cutoff_epoch=0)

data = dict(
    root=None,  # ImageNet layout: root/train/<class>/*, root/val/<class>/*
    input_size=224,  # main.py --input_size 224
    batch_size=128,  # per process: README --batch_size 128
    update_freq=1,  # gradient accumulation steps (README: 4 on one 8-GPU node, 1 on 4 nodes; total batch 4096)
    eval_batch_size=256,  # dropbench's choice: no source (main.py evaluates at 1.5 x batch_size)
    num_workers=10,  # main.py --num_workers 10
    pin_memory=True,  # main.py --pin_mem True
    interpolation='bicubic',  # main.py --train_interpolation bicubic
    crop_pct=None,  # main.py --crop_pct None (the model's default, 0.875)
)

augment = dict(
    auto_augment='rand-m9-mstd0.5-inc1',  # main.py --aa
    color_jitter=0.4,  # main.py --color_jitter
    re_prob=0.25,  # main.py --reprob
    re_mode='pixel',  # main.py --remode
    re_count=1,  # main.py --recount
    mixup=0.8,  # main.py --mixup
    cutmix=1.0,  # main.py --cutmix
    cutmix_minmax=None,  # main.py --cutmix_minmax
    mixup_prob=1.0,  # main.py --mixup_prob
    mixup_switch_prob=0.5,  # main.py --mixup_switch_prob
    mixup_mode='batch',  # main.py --mixup_mode
    smoothing=0.1,  # main.py --smoothing
)

optim = dict(
    opt='adamw',  # main.py --opt adamw
    # README --lr 4e-3 at its total batch 128 x 4 x 8 = 4096; the linear scaling to other total batches
    # (batch_size * update_freq * world_size) is dropbench's choice: no source (main.py takes the lr as given)
    lr=4e-3,
    lr_batch_size=4096,
    weight_decay=0.05,  # main.py --weight_decay 0.05 (--weight_decay_end None: constant)
    opt_eps=1e-8,  # main.py --opt_eps
    opt_betas=None,  # main.py --opt_betas None (AdamW's 0.9, 0.999)
    clip_grad=None,  # main.py --clip_grad None
    layer_decay=None,  # pretraining has none (main.py has no layer decay for pretraining)
)

# main.py --epochs 300 (README: 300), --warmup_epochs 50, --min_lr 1e-6, warm-up from 0 (cosine_scheduler)
schedule = dict(epochs=300, warmup_epochs=50, min_lr=1e-6, warmup_lr=0.0)

ema = dict(enabled=False, decay=0.9999)  # main.py --model_ema False, --model_ema_decay 0.9999

runtime = dict(
    seed=0,  # main.py --seed 0
    device='auto',  # auto | cpu | cuda
    # float32: main.py's --use_amp defaults to False and the README commands do not give it; --amp bf16 | fp16
    # trades fidelity for speed (recorded in checkpoints and result.json); autocast on CUDA only
    amp=None,
    # TF32 matmuls / convolutions on GPUs that have them: torch 1.8.0 (the paper's, facebookresearch/dropout
    # INSTALL.md) allowed both by default
    tf32=True,
    eval_every=1,  # epochs (main.py evaluates every epoch)
    save_every_iters=0,  # extra mid-epoch checkpoints (0: only at epoch ends); SIGTERM also saves one
    keep_checkpoints=3,  # per-epoch checkpoint-<epoch>.pth files kept besides checkpoint.pth (dropbench's choice)
    progress=True,
    sync_every=50,  # optimizer steps between host reads of the loss (its non-finite check stops the run within them)
    channels_last='auto',  # true | false | auto: on for ConvNeXt on CUDA
    fused_optimizer='auto',  # true | false | auto: torch's fused AdamW/Adam kernel on CUDA
    compile=False,  # torch.compile the model (--compile): false | true | a backend name ('eager', 'aot_eager', ...)
)
