# Table 4 recipe, Swin-F (swin_femto): Mask R-CNN + FPN on COCO, the ConvNeXt / Swin 3x downstream recipe
# the paper's authors built on: 36 epochs (lr x0.1 at 27 and 33), multi-scale 480-800 training with DETR-style
# crops, 16 images per step (8 GPUs x 2), AdamW lr 1e-4, wd 0.05, layer decay 0.9, AMP.
# Backbone: the four stage outputs;
# fixed drop path 0.1 (dropbench's choice for these small models: the paper does not list it).
_base_ = [
    './_base_/models/mask-rcnn_timm_fpn.py', './_base_/datasets/coco_instance_ms-crop.py',
    './_base_/schedules/adamw_layer-decay_3x.py', './_base_/default_runtime.py'
]
model = dict(backbone=dict(model_name='swin_femto', drop_path_rate=0.1), neck=dict(in_channels=[40, 80, 160, 320]))
