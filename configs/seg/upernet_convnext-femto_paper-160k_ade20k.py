# Table 5 recipe, ConvNeXt-F (convnext_femto): UperNet + FCN auxiliary head on ADE20K after facebookresearch/ConvNeXt
# semantic_segmentation/configs/convnext/upernet_convnext_tiny_512_160k_ade20k_ss.py (and its _ms twin for the
# multi-scale test): 512x512 crops, 160k iterations of 16 images (8 GPUs x 2), AdamW lr 1e-4, wd 0.05, 1500 warm-up
# iterations then poly, sliding-window test (512, stride 341), then multi-scale + flip (reported as mIoU_ms); sources
# in the _base_ files.
# layer decay: ConvNeXt 160k's rule (stage_wise, 0.9, num_layers 6; the schedule file).
# Drop path 0.1: dropbench's choice, no source for the femto / tiny models (the ConvNeXt-T reference uses
# drop_path_rate=0.4); a suite preset's `drop_path` key changes it.
_base_ = [
    './_base_/models/upernet_timm.py', './_base_/datasets/ade20k.py',
    './_base_/schedules/adamw_layer_decay_poly_160k.py', './_base_/default_runtime.py'
]
model = dict(
    backbone=dict(model_name='convnext_femto', drop_path_rate=0.1),
    decode_head=dict(in_channels=[48, 96, 192, 384]),
    auxiliary_head=dict(in_channels=192))
# ConvNeXt 160k: fp16 (optimizer_config use_fp16=True; AMP off without a GPU: finetune.mm.adapt_to_device)
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
test_multi_scale = True  # ConvNeXt upernet_convnext_tiny_512_160k_ade20k_ms.py: the multi-scale + flip test
