# Table 4 recipe, ConvNeXt-F (convnext_femto): Mask R-CNN + FPN on COCO, the ConvNeXt 3x downstream recipe the paper's
# authors built on (facebookresearch/ConvNeXt object_detection/configs/convnext/
# mask_rcnn_convnext_tiny_patch4_window7_mstrain_480-800_adamw_3x_coco_in1k.py): 36 epochs (lr x0.1 at 27 and 33),
# multi-scale 480-800 training with DETR-style crops, 16 images per step (8 GPUs x 2), AdamW lr 1e-4, wd 0.05, AMP
# (sources in the _base_ files);
# layer-wise lr decay: ConvNeXt 3x's rule (layer_wise, 0.95, num_layers 6; the schedule file).
# Backbone: the four stage outputs.
# drop path 0.1: dropbench's choice, no source for the femto / tiny models (the ConvNeXt-T reference
# uses drop_path_rate=0.4, Swin-T 1x 0.1); a suite preset's `drop_path` key changes it.
_base_ = [
    './_base_/models/mask-rcnn_timm_fpn.py', './_base_/datasets/coco_instance_ms-crop.py',
    './_base_/schedules/adamw_layer-decay_3x.py', './_base_/default_runtime.py'
]
model = dict(backbone=dict(model_name='convnext_femto', drop_path_rate=0.1), neck=dict(in_channels=[48, 96, 192, 384]))
