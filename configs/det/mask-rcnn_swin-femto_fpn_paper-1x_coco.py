# Swin-F (swin_femto) Mask R-CNN + FPN, 1x: the Swin 1x recipe
# (SwinTransformer/Swin-Transformer-Object-Detection configs/swin/
# mask_rcnn_swin_tiny_patch4_window7_mstrain_480-800_adamw_1x_coco.py):
# 12 epochs (lr x0.1 at 8 and 11), multi-scale 480-800 training with DETR-style crops (that file's
# train_pipeline), AdamW lr 1e-4, wd 0.05, AMP;
# layer-wise lr decay: ConvNeXt 3x's rule (layer_wise, 0.95, num_layers 6; the schedule file).
# Backbone: the four stage outputs.
# drop path 0.1: dropbench's choice, no source for the femto / tiny models (the ConvNeXt-T reference
# uses drop_path_rate=0.4, Swin-T 1x 0.1); a suite preset's `drop_path` key changes it.
_base_ = [
    './_base_/models/mask-rcnn_timm_fpn.py', './_base_/datasets/coco_instance_ms-crop.py',
    './_base_/schedules/adamw_layer-decay_1x.py', './_base_/default_runtime.py'
]
model = dict(backbone=dict(model_name='swin_femto', drop_path_rate=0.1), neck=dict(in_channels=[40, 80, 160, 320]))
