# ViT-T (vit_tiny) Mask R-CNN + FPN, 1x: the Swin 1x recipe
# (SwinTransformer/Swin-Transformer-Object-Detection configs/swin/
# mask_rcnn_swin_tiny_patch4_window7_mstrain_480-800_adamw_1x_coco.py):
# 12 epochs (lr x0.1 at 8 and 11), multi-scale 480-800 training with DETR-style crops (that file's
# train_pipeline), AdamW lr 1e-4, wd 0.05, AMP;
# layer-wise lr decay: BEiT-style per block, 0.9 (TimmLayerDecayOptimizerConstructor; dropbench's choice:
# no source, the ConvNeXt rule knows no ViT).
# Backbone: intermediate blocks 3/6/9/12 through the simple pyramid.
# drop path 0.1: dropbench's choice, no source for the femto / tiny models (the ConvNeXt-T reference
# uses drop_path_rate=0.4, Swin-T 1x 0.1); a suite preset's `drop_path` key changes it.
_base_ = [
    './_base_/models/mask-rcnn_timm_fpn.py', './_base_/datasets/coco_instance_ms-crop.py',
    './_base_/schedules/adamw_layer-decay_1x.py', './_base_/default_runtime.py'
]
model = dict(backbone=dict(model_name='vit_tiny', drop_path_rate=0.1), neck=dict(in_channels=[192, 192, 192, 192]))
optim_wrapper = dict(
    constructor='TimmLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(_delete_=True, layer_decay_rate=0.9, backbone='backbone.model'))
