# UperNet + auxiliary FCN head on a paper model built by timm (finetune.backbone.TimmPyramidBackbone), as in
# facebookresearch/ConvNeXt semantic_segmentation/configs/_base_/models/upernet_convnext.py (channels 512 / 256, pool
# scales 1-6, dropout 0.1, SyncBN, auxiliary loss weight 0.4; sliding test 512 / 341 from its leaf configs). Leaves set
# backbone.model_name, drop_path_rate and the heads' in_channels (finetune.backbone.pyramid_channels); a
# model-independent recipe (smoke) leaves them None and finetune.seg.run_ade20k fills them from --model.
norm_cfg = dict(type='SyncBN', requires_grad=True)  # mmengine reverts SyncBN to BN when not distributed
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],  # ImageNet mean / std, as in pretraining
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(512, 512))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='TimmPyramidBackbone',
        model_name=None,
        checkpoint=None,  # set from --checkpoint; loaded (converted, strictly) in the backbone's init_weights
        drop_path_rate=0.1,  # fixed: no drop schedule downstream
        img_size=512,
        out_indices=(0, 1, 2, 3)),
    decode_head=dict(
        type='UPerHead',
        in_channels=None,
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=None,  # the stride-16 level
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))  # sliding-window inference
