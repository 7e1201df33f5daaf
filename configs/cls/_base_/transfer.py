# The common transfer recipe for classification fine-tuning at 224 px (dropbench's defaults, after the AdamW
# fine-tuning recipes of DeiT / ConvNeXt as timm implements them): AdamW with layer-wise lr decay, cosine schedule with
# linear warm-up, RandAugment, mixup / cutmix, label smoothing, random erasing and a FIXED stochastic-depth rate (no drop
# schedule in fine-tuning). These are not figures taken from the paper: its text does not list them.
# The training pipeline and its keys are the pretraining recipe's (read by the same loop, pretrain.train.run): its
# augmentation (RandAugment rand-m9-mstd0.5-inc1, erasing 0.25, mixup 0.8 / cutmix 1.0, smoothing 0.1) is kept as is;
# what fine-tuning changes is below. `dropbench finetune cls` fills model.name, model.checkpoint, data.dataset and
# data.root, then applies per_dataset[<dataset>] (_base_/datasets.py).
_base_ = ['../../pretrain/basic.py']

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
    batch_size=64,  # per process
    eval_batch_size=128,
    num_workers=8,
)

optim = dict(
    lr=5e-4,  # at a total batch of lr_batch_size, scaled linearly to batch_size * update_freq * world_size
    lr_batch_size=512,
    layer_decay=0.75,  # timm's layer-wise decay over the model's group_matcher: layer i of L gets lr * 0.75**(L-i)
)

schedule = dict(epochs=100, warmup_epochs=5, min_lr=1e-6, warmup_lr=1e-6)

runtime = dict(
    eval_every=10,  # epochs; the last epoch is always evaluated and is the one reported (never the best)
    keep_checkpoints=1,
    per_class_accuracy=True,
)
