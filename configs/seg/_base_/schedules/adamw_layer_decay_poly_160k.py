# The ConvNeXt / BEiT downstream schedule: 160k iterations, AdamW lr 1e-4, weight decay 0.05, layer-wise lr decay
# (finetune.layer_decay, keyed on timm's parameter groups), 1500 linear warm-up iterations then poly decay to 0.
# lr 1e-4 is for 16 images per iteration (8 GPUs x 2); on other world sizes the run warns, and
# --cfg-options auto_scale_lr.enable=true scales it linearly (mmengine's auto_scale_lr).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='TimmLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9, backbone='backbone.model'))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=160000, val_interval=16000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # every 4000 iterations: a killed run resumes from at most 4000 iterations back
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4000, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'))  # no SegVisualizationHook: it draws nothing unless draw=True
auto_scale_lr = dict(enable=False, base_batch_size=16)
