# CPU-sized recipe for the embedded default (`dropbench data synth-coco`) and the tests, for any paper model (--model
# sets the backbone; finetune.det sets the FPN in_channels): the Mask R-CNN + FPN of the paper recipes at half width
# (FPN and heads 128 channels, 2 mask convs, fewer proposals and sampled RoIs: the heads dominate a CPU step), images
# resized to at most 96 px, 2 images per step, 4 epochs (128 steps), AdamW lr 5e-4, no AMP, drop path 0.1, evaluated
# once at the end. Layer decay 0.65 (BEiT's ADE20K ViT recipe; ConvNeXt's detection recipes use 0.7-0.8): the
# pretrained backbone moves little and the new heads learn on its features; with 0.9 the 128 steps overwrote what
# pretraining gave and a random-init ViT-T matched a pretrained one on the smoke COCO set (box AP 12 vs 12; 0.65:
# 17 vs 10, measured on the 2-core machine). The backbone's output LayerNorms are off (out_norm=False): on a barely
# pretrained backbone Mask R-CNN stays near AP 0 with them in 128 steps. Not a benchmark figure: it shows the whole
# path runs and learns on a CPU, and (smoke preset) whether pretraining helps.
_base_ = [
    './_base_/models/mask-rcnn_timm_fpn.py', './_base_/datasets/coco_instance.py',
    './_base_/schedules/adamw_layer-decay_1x.py', './_base_/default_runtime.py'
]
_width = 128
model = dict(
    backbone=dict(model_name=None, drop_path_rate=0.1, out_norm=False),
    neck=dict(out_channels=_width),
    rpn_head=dict(in_channels=_width, feat_channels=_width),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=_width),
        bbox_head=dict(in_channels=_width, fc_out_channels=512),
        mask_roi_extractor=dict(out_channels=_width),
        mask_head=dict(num_convs=2, in_channels=_width, conv_out_channels=_width)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=150), rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(96, 96), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(96, 96), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(filter_cfg=dict(filter_empty_gt=True, min_size=8), pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 4
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[3], gamma=0.1)
]
# BEiT-style per-block layer decay 0.65 for any model (the paper recipes use the ConvNeXt rule for ConvNeXt-F / Swin-F)
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=5e-4), clip_grad=dict(max_norm=10.0),
                     constructor='TimmLayerDecayOptimizerConstructor',
                     paramwise_cfg=dict(_delete_=True, layer_decay_rate=0.65, backbone='backbone.model'))
default_hooks = dict(logger=dict(interval=4), checkpoint=dict(max_keep_ckpts=2))
log_processor = dict(window_size=4)
auto_scale_lr = dict(enable=False, base_batch_size=2)  # lr 5e-4 is for these 2 images per step
