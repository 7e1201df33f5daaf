# mmdet runtime for dropbench: registers TimmPyramidBackbone (finetune.det), fixes the seed (mmdet draws a random one
# otherwise), keeps the last 3 epoch checkpoints (seed and checkpoint keeping: dropbench's choice, no source; the
# reference checkpoints every epoch too: ConvNeXt object_detection/configs/_base_/default_runtime.py). finetune.mm sets
# work_dir, launcher, resume and the seed from the CLI.
default_scope = 'mmdet'
custom_imports = dict(imports=['dropbench.finetune.det'], allow_failed_imports=False)
randomness = dict(seed=0)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
