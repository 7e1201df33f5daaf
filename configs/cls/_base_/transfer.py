# The common transfer recipe for classification fine-tuning at 224 px. The paper does not list its fine-tuning
# settings and its authors' code has no classification-transfer recipe: every value below is dropbench's choice, no
# source (after the AdamW fine-tuning recipes of DeiT / ConvNeXt as timm implements them), except where a line names
# one. The training pipeline and its keys are the pretraining recipe's (read by the same loop, pretrain.train.run):
# its augmentation (RandAugment rand-m9-mstd0.5-inc1, erasing 0.25, mixup 0.8 / cutmix 1.0, smoothing 0.1: the
# official main.py defaults, cited in configs/pretrain/basic.py) is kept as is; what fine-tuning changes is below.
# `dropbench finetune cls` fills model.name, model.checkpoint, data.dataset and data.root, then applies
# per_dataset[<dataset>] (_base_/datasets.py). result.json records every value used (extra.hparams).
_base_ = ['../../pretrain/basic.py']

model = dict(
    name='vit_tiny',
    num_classes=None,  # None: the data set's number of classes (the pretrained head is dropped)
    img_size=None,  # None: data.input_size (Mixer must be fine-tuned at the resolution it was pretrained at)
    checkpoint=None,  # the pretrained checkpoint (any layout `dropbench convert` reads)
    use_ema=False,  # start from the checkpoint's EMA weights
)

# Fixed rates: mode 'standard' means no scheduling, the rate is set when the model is built.
# drop path 0.1: dropbench's choice, no source (a suite preset's `drop_path` key changes it)
drop = dict(kind='drop_path', rate=0.1, mode='standard', schedule='constant', cutoff_epoch=0)

data = dict(
    dataset=None,  # cifar100 | flowers102 | pets | stl10 | food101 | imagefolder
    root=None,  # the data set's root as its distribution ships it (finetune/datasets/cls.py)
    batch_size=64,  # per process (dropbench's choice: no source)
    eval_batch_size=128,
    num_workers=8,
)

optim = dict(
    # lr 5e-4 at a total batch of 512, scaled linearly to batch_size * update_freq * world_size: dropbench's choice,
    # no source
    lr=5e-4,
    lr_batch_size=512,
    # timm's layer-wise decay over the model's group_matcher (layer i of L gets lr * 0.75**(L-i)): dropbench's
    # choice, no source
    layer_decay=0.75,
)

# cosine with linear warm-up; epochs, warm-up and lr per data set in _base_/datasets.py: dropbench's choice, no source
schedule = dict(epochs=100, warmup_epochs=5, min_lr=1e-6, warmup_lr=1e-6)

runtime = dict(
    # float16 autocast with a grad scaler on GPUs (dropbench's choice, no source: what the recipe always used);
    # --cfg-options runtime.amp=null trains in float32
    amp='fp16',
    eval_every=10,  # epochs; the last epoch is always evaluated and is the one reported (never the best)
    keep_checkpoints=1,
    per_class_accuracy=True,
)
