# 3x schedule (facebookresearch/ConvNeXt object_detection/configs/convnext/
# mask_rcnn_convnext_tiny_patch4_window7_mstrain_480-800_adamw_3x_coco_in1k.py: runner max_epochs=36,
# lr_config step=[27, 33]); optimizer, layer decay, warm-up and AMP as the 1x schedule.
_base_ = './adamw_layer-decay_1x.py'

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),  # mmdet schedule_1x warm-up
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1)
]
