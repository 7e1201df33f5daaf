# The common transfer recipe for classification fine-tuning at 224 px (dropbench's defaults, after the AdamW
# fine-tuning recipes of DeiT / ConvNeXt as timm implements them): AdamW with layer-wise lr decay, cosine schedule with
# linear warm-up, RandAugment, mixup / cutmix, label smoothing, random erasing and a FIXED stochastic-depth rate (no drop
# schedule in fine-tuning). These are not figures taken from the paper: its text does not list them.
# Read by pretrain.train.run, like configs/pretrain/basic.py; `dropbench finetune cls` fills model.name,
# model.checkpoint, data.dataset and data.root, then applies per_dataset[<dataset>] (_base_/datasets.py).

model = dict(
    name='vit_tiny',
    num_classes=None,  # None: the data set's number of classes (the pretrained head is dropped)
    img_size=None,  # None: data.input_size (Mixer must be fine-tuned at the resolution it was pretrained at)
    checkpoint=None,  # the pretrained checkpoint (any layout `dropbench convert` reads)
    use_ema=False,  # start from the checkpoint's EMA weights
)

# Fixed rates: mode 'standard' means no scheduling, the rate is set when the model is built.
drop = dict(kind='drop_path', rate=0.1, mode='standard', schedule='constant', cutoff_epoch=0)

data = dict(
    dataset=None,  # cifar100 | flowers102 | pets | stl10 | food101 | imagefolder
    root=None,  # the data set's root as its distribution ships it (finetune/datasets/cls.py)
    input_size=224,
    batch_size=64,  # per process
    update_freq=1,
    eval_batch_size=128,
    num_workers=8,
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
    lr=5e-4,  # at a total batch of lr_batch_size, scaled linearly to batch_size * update_freq * world_size
    lr_batch_size=512,
    weight_decay=0.05,
    opt_eps=1e-8,
    opt_betas=None,
    clip_grad=None,
    layer_decay=0.75,  # timm's layer-wise decay over the model's group_matcher: layer i of L gets lr * 0.75**(L-i)
)

schedule = dict(epochs=100, warmup_epochs=5, min_lr=1e-6, warmup_lr=1e-6)

ema = dict(enabled=False, decay=0.9999)

runtime = dict(
    seed=0,
    device='auto',
    amp=True,
    eval_every=10,  # epochs; the last epoch is always evaluated and is the one reported (never the best)
    save_every_iters=0,
    keep_checkpoints=1,
    progress=True,
    per_class_accuracy=True,
)
