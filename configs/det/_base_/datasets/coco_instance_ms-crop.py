# COCO instance segmentation with the DETR / Sparse R-CNN augmentation of the paper recipes: the train_pipeline of
# facebookresearch/ConvNeXt object_detection/configs/convnext/mask_rcnn_convnext_tiny_patch4_window7_mstrain_480-800_
# adamw_3x_coco_in1k.py and of SwinTransformer/Swin-Transformer-Object-Detection configs/swin/mask_rcnn_swin_tiny_
# patch4_window7_mstrain_480-800_adamw_1x_coco.py (AutoAugment there, RandomChoice in mmdet 3, as mmdet's own
# configs/swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py writes it): flip, then either a multi-scale resize
# (shorter side 480-800, longer <= 1333) or a resize to 400-600, a random 384-600 crop and the multi-scale resize.
_base_ = './coco_instance.py'

_ms_scales = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333), (672, 1333),
              (704, 1333), (736, 1333), (768, 1333), (800, 1333)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=_ms_scales, keep_ratio=True)],
            [
                dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)], keep_ratio=True),
                dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600), allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=_ms_scales, keep_ratio=True)
            ]
        ]),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
