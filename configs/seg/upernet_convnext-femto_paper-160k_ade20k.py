# Table 5 recipe, convnext_femto: UperNet + FCN auxiliary head on ADE20K, 512x512 crops, 160k iterations of 16 images
# (8 GPUs x 2), AdamW lr 1e-4, wd 0.05, layer decay 0.9, 1500 warm-up iterations then poly; fixed drop path 0.1
# (dropbench's choice: the paper does not list it); AMP (float32 without a GPU: finetune.mm.adapt_to_device);
# sliding-window single-scale evaluation, then multi-scale + flip (reported as mIoU_ms).
_base_ = [
    './_base_/models/upernet_timm.py', './_base_/datasets/ade20k.py',
    './_base_/schedules/adamw_layer_decay_poly_160k.py', './_base_/default_runtime.py'
]
model = dict(
    backbone=dict(model_name='convnext_femto', drop_path_rate=0.1),
    decode_head=dict(in_channels=[48, 96, 192, 384]),
    auxiliary_head=dict(in_channels=192))
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
test_multi_scale = True
