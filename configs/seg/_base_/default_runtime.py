# mmseg runtime for dropbench: registers TimmPyramidBackbone (finetune.seg), fixes the seed (mmseg draws a random one
# otherwise; dropbench's choice, no source), logs by iteration. finetune.mm sets work_dir, launcher, resume and the seed
# from the CLI.
default_scope = 'mmseg'
custom_imports = dict(imports=['dropbench.finetune.seg'], allow_failed_imports=False)
randomness = dict(seed=0)
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
