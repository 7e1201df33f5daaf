# ViT-B (vit_base) Mask R-CNN + FPN, 1x variant: 12 epochs (lr x0.1 at 8 and 11), single-scale 1333x800
# training with flips; otherwise as paper-3x (AdamW lr 1e-4, wd 0.05, layer decay 0.9, AMP, drop path 0.1).
_base_ = [
    './_base_/models/mask-rcnn_timm_fpn.py', './_base_/datasets/coco_instance.py',
    './_base_/schedules/adamw_layer-decay_1x.py', './_base_/default_runtime.py'
]
model = dict(backbone=dict(model_name='vit_base', drop_path_rate=0.1), neck=dict(in_channels=[768, 768, 768, 768]))
