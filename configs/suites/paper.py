# The paper's transfer matrix: its models x pretraining variants (basic recipe, the settings of the official
# README: configs/pretrain/_base_/variants.py) x COCO (Mask R-CNN 3x), ADE20K (UperNet 160k) and the five
# classification sets. Real data roots come from --data-root NAME=PATH; nothing is generated.
_base_ = ['../pretrain/_base_/variants.py']

preset = 'paper'

seeds = [0, 1, 2]

data = dict(imagenet=None, coco=None, ade20k=None, cifar100=None, flowers102=None, pets=None, stl10=None,
            food101=None)
synth = dict()
# Every data set must be real (--data-root NAME=PATH; README: Getting the data), with the official split sizes: a run
# is refused before it starts when a root is missing or its sizes differ (a truncated copy must not become a table).
data_policy = dict(imagenet='required', coco='required', ade20k='required', cifar100='required',
                   flowers102='required', pets='required', stl10='required', food101='required')
official_counts = True

pretrain = dict(
    config='basic',
    cfg_options={},
    variants={{_base_.variants}},
    # 'random-init': the reference row of every table (the same fine-tuning from untrained weights; not in the paper;
    # no pretraining run, but its fine-tunes cost what the others do: remove it from a run to save them)
    runs=[
        dict(model='vit_tiny', variants=['random-init', 'baseline', 'early-dropout', 'early-sd']),
        dict(model='swin_femto', variants=['random-init', 'baseline', 'early-dropout', 'early-sd']),
        dict(model='convnext_femto', variants=['random-init', 'baseline', 'early-sd']),
        # late s.d.'s baseline: standard s.d. at late s.d.'s rate from the first epoch (the README gives no rate)
        dict(model='vit_base', variants=['random-init', 'standard-sd', 'late-sd'], drop={'standard-sd': dict(rate=0.4)}),
        dict(model='mixer_b16', variants=['random-init', 'standard-sd', 'late-sd'],
             drop={'standard-sd': dict(rate=0.4)}),
    ],
)

# drop_path: the fine-tuning runs' fixed stochastic-depth rate; None keeps the recipes' 0.1 (dropbench's choice: no
# source gives the femto models' rate; the ConvNeXt-T downstream configs use 0.4). Set it to sweep: a set value
# changes the runs' keys, None leaves them as they are.
finetune = dict(
    coco=dict(config='paper-3x', models=['swin_femto', 'convnext_femto'], cfg_options={}, drop_path=None),
    ade20k=dict(config='paper-160k', models=['swin_femto', 'convnext_femto'], cfg_options={}, drop_path=None),
    cls=dict(config='transfer', models=['vit_tiny', 'swin_femto', 'convnext_femto', 'vit_base', 'mixer_b16'],
             datasets=['cifar100', 'flowers102', 'pets', 'stl10', 'food101'], cfg_options={}, drop_path=None),
    # frozen-feature kNN and linear probes (configs/probe/standard.py) of every checkpoint: one seed (the features and
    # kNN do not depend on it; the linear probe's held-out draw does, little)
    probe=dict(config='standard', models=['vit_tiny', 'swin_femto', 'convnext_femto', 'vit_base', 'mixer_b16'],
               datasets=['cifar100', 'flowers102', 'pets', 'stl10', 'food101'], cfg_options={}, seeds=[0]),
)

# Pretraining: 4 nodes x 8 GPUs x batch 128 = total batch 4096, as the paper; fine-tuning: one node of 8 GPUs
# (COCO 8 x 2 images, ADE20K 8 x 2 = 16 per iteration).
slurm = dict(default=dict(nodes=1, gpus_per_node=8, timeout_min=72 * 60),
             pretrain=dict(nodes=4, gpus_per_node=8, timeout_min=72 * 60))
