# The paper recipes' ADE20K schedule: facebookresearch/ConvNeXt semantic_segmentation/configs/convnext/
# upernet_convnext_tiny_512_160k_ade20k_ss.py ("ConvNeXt 160k") and its _base_/schedules/schedule_160k.py (mmseg's).
# lr 1e-4 is for 16 images per iteration (8 GPUs x 2); on other world sizes the run warns, and
# --cfg-options auto_scale_lr.enable=true scales it linearly (mmengine's auto_scale_lr).
optim_wrapper = dict(
    type='OptimWrapper',  # the paper-160k leaves set AmpOptimWrapper (ConvNeXt 160k: use_fp16=True)
    # ConvNeXt 160k: AdamW lr 1e-4, betas (0.9, 0.999), weight_decay 0.05
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    # ConvNeXt 160k: LearningRateDecayOptimizerConstructor, decay_type='stage_wise', decay_rate=0.9, num_layers=6
    # (finetune.layer_decay re-implements it on timm names; a Swin backbone gets scale 1 everywhere, as there).
    # The ViT recipes and smoke override it with the BEiT-style TimmLayerDecayOptimizerConstructor.
    constructor='ConvNeXtLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_type='stage_wise', decay_rate=0.9, num_layers=6, backbone='backbone.model'))
param_scheduler = [
    # ConvNeXt 160k: lr_config warmup='linear', warmup_iters=1500, warmup_ratio=1e-6
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    # ConvNeXt 160k: policy='poly', power=1.0, min_lr=0.0, by_epoch=False
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]
# mmseg schedule_160k: 160k iterations, evaluation every 16k
train_cfg = dict(type='IterBasedTrainLoop', max_iters=160000, val_interval=16000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # every 4000 iterations (dropbench's choice: no source; mmseg's schedule saves every 16k): a killed run resumes
    # from at most 4000 iterations back
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4000, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'))  # no SegVisualizationHook: it draws nothing unless draw=True
auto_scale_lr = dict(enable=False, base_batch_size=16)  # ConvNeXt 160k: data samples_per_gpu=2 on 8 GPUs
