# 1x: 12 epochs, lr x0.1 at epochs 8 and 11, 1000 linear warm-up iterations. AdamW lr 1e-4 (total batch 16),
# weight decay 0.05 (none on 1-D parameters, position embeddings, relative-position tables), layer-wise lr decay over
# the timm backbone's blocks (finetune.layer_decay), mixed precision (finetune.mm turns AMP off without a GPU).
max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='TimmLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9, backbone='backbone.model'),
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
auto_scale_lr = dict(enable=False, base_batch_size=16)
