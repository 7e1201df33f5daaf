# The embedded default: every stage of the pipeline on generated data, on a 2-core CPU, in minutes.
# Swin-F carries the early-dropout comparison (no dropout / early dropout / early s.d.) through every downstream task;
# ViT-T stands in for the paper's ViT-B in the late s.d. comparison (standard s.d. / late s.d., classification only),
# since ViT-B is too slow for a CPU smoke run. Cutoffs keep the paper's proportion: epoch 50 of 300 -> 1 of 6.
preset = 'smoke'

seeds = [0]  # fine-tuning seeds (--seeds K runs 0..K-1)

# Data roots; None = generate under <out>/data with `dropbench data synth-*` (kept between runs).
data = dict(imagenet=None, coco=None, ade20k=None, cifar100=None, flowers102=None, pets=None, stl10=None,
            food101=None)
synth = dict(imagenet=dict(num_classes=10, train_per_class=60, val_per_class=20, size=64))
# Per data set: 'generated' = a small stand-in is generated when no root is given (results and table captions say
# so); 'required' = a real root must be given (the default of any preset that does not say).
data_policy = dict(imagenet='generated', coco='generated', ade20k='generated', cifar100='generated',
                   flowers102='generated', pets='generated', stl10='generated', food101='generated')

pretrain = dict(
    config='smoke',
    cfg_options={},
    variants={
        'baseline': dict(kind='none', rate=0.0, mode='standard', schedule='constant', cutoff_epoch=0),
        'early-dropout': dict(kind='dropout', rate=0.1, mode='early', schedule='linear', cutoff_epoch=1),
        'early-sd': dict(kind='drop_path', rate=0.5, mode='early', schedule='linear', cutoff_epoch=1),
        'standard-sd': dict(kind='drop_path', rate=0.4, mode='standard', schedule='constant', cutoff_epoch=0),
        'late-sd': dict(kind='drop_path', rate=0.4, mode='late', schedule='constant', cutoff_epoch=1),
    },
    runs=[
        dict(model='swin_femto', variants=['baseline', 'early-dropout', 'early-sd']),
        dict(model='vit_tiny', variants=['standard-sd', 'late-sd']),
    ],
)

finetune = dict(
    coco=dict(config='smoke', models=['swin_femto'], cfg_options={}),
    ade20k=dict(config='smoke', models=['swin_femto'], cfg_options={}),
    cls=dict(config='smoke', models=['swin_femto', 'vit_tiny'],
             datasets=['cifar100', 'flowers102', 'pets', 'stl10', 'food101'], cfg_options={}),
    # frozen-feature kNN and linear probes of every checkpoint (configs/probe/smoke.py)
    probe=dict(config='smoke', models=['swin_femto', 'vit_tiny'],
               datasets=['cifar100', 'flowers102', 'pets', 'stl10', 'food101'], cfg_options={}),
)

# Resources per task for --executor slurm (one job per run; multi-GPU runs use torchrun-style launchers).
slurm = dict(default=dict(nodes=1, gpus_per_node=1, timeout_min=60))
