# 1x schedule of the paper recipes. Sources: facebookresearch/ConvNeXt object_detection/configs/convnext/
# mask_rcnn_convnext_tiny_patch4_window7_mstrain_480-800_adamw_3x_coco_in1k.py ("ConvNeXt 3x" below) and
# SwinTransformer/Swin-Transformer-Object-Detection configs/swin/mask_rcnn_swin_tiny_patch4_window7_mstrain_480-800_
# adamw_1x_coco.py ("Swin 1x"), whose _base_/schedules/schedule_1x.py both build on ("mmdet schedule_1x").
max_epochs = 12  # Swin 1x: runner max_epochs=12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    # mmdet schedule_1x: linear warm-up over 500 iterations from 0.001 x lr
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    # Swin 1x: lr_config step=[8, 11] (x0.1)
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
optim_wrapper = dict(
    # ConvNeXt 3x / Swin 1x: fp16 (DistOptimizerHook use_fp16=True); finetune.mm turns AMP off without a GPU
    type='AmpOptimWrapper',
    # ConvNeXt 3x: LearningRateDecayOptimizerConstructor, decay_type='layer_wise', decay_rate=0.95, num_layers=6
    # (finetune.layer_decay re-implements it on timm names; a Swin backbone gets scale 1 everywhere, as there).
    # The ViT recipes and smoke override it with the BEiT-style TimmLayerDecayOptimizerConstructor.
    constructor='ConvNeXtLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_type='layer_wise', decay_rate=0.95, num_layers=6, backbone='backbone.model'),
    # ConvNeXt 3x / Swin 1x: AdamW lr 1e-4, betas (0.9, 0.999), weight_decay 0.05 (at 16 images per step)
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
auto_scale_lr = dict(enable=False, base_batch_size=16)  # ConvNeXt 3x / Swin 1x: 8 GPUs x 2 images
