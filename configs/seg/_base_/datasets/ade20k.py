# ADE20K (ADEChallengeData2016): 150 classes, label 0 ignored (ADE20KDataset's reduce_zero_label=True, which
# LoadAnnotations takes from the dataset), 512x512 training crops. Source: facebookresearch/ConvNeXt
# semantic_segmentation/configs/_base_/datasets/ade20k.py (mmseg's): resize (2048, 512) x 0.5-2.0, crop 512 with
# cat_max_ratio 0.75, flip, photometric distortion; test at (2048, 512); the _ms configs' test scales 0.5-1.75 + flip.
# data_root is set from --data by finetune.seg.run_ade20k (after finetune.datasets.ade20k.check_ade20k).
dataset_type = 'ADE20KDataset'
data_root = None
crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),  # after Resize: metrics are on the original labels
    dict(type='PackSegInputs'),
]
# Multi-scale + flip test (mmseg's TestTimeAug, merged by SegTTAModel: softmax averaged over the 12 views):
# finetune.seg.run_ade20k evaluates it after the single-scale evaluation when test_multi_scale is True and reports it
# as mIoU_ms / mAcc_ms / aAcc_ms. Scales as the ConvNeXt / Swin / BEiT `--aug-test` (mmseg 0.x MultiScaleFlipAug,
# img_scale=(2048, 512), img_ratios 0.5-1.75): each view fits the image into (int(2048 r), int(512 r)), keeping its
# aspect ratio. (mmseg 1.x's own ADE20K config scales the original image by r instead, so a 2100x1600 image would be
# tested at 3675x2800; the reference bounds every view by the 512 px test scale.)
test_multi_scale = False
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=(1024, 256), keep_ratio=True),  # r = 0.5
             dict(type='Resize', scale=(1536, 384), keep_ratio=True),  # 0.75
             dict(type='Resize', scale=(2048, 512), keep_ratio=True),  # 1.0
             dict(type='Resize', scale=(2560, 640), keep_ratio=True),  # 1.25
             dict(type='Resize', scale=(3072, 768), keep_ratio=True),  # 1.5
             dict(type='Resize', scale=(3584, 896), keep_ratio=True)],  # 1.75
            [dict(type='RandomFlip', prob=0., direction='horizontal'),
             dict(type='RandomFlip', prob=1., direction='horizontal')],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ]),
]
tta_model = dict(type='SegTTAModel')
train_dataloader = dict(
    batch_size=2,  # per GPU: 8 GPUs x 2 = 16 images per iteration, as the ConvNeXt / BEiT recipes
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])  # reports aAcc, mIoU, mAcc (percent)
test_evaluator = val_evaluator
