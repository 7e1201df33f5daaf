"""Fine-tuning any checkpoint on the downstream tasks: COCO (mmdet Mask R-CNN), ADE20K (mmseg UperNet) and
classification (timm), all through one checkpoint converter (:mod:`finetune.convert`) with fixed drop rates.

Engine imports (mmcv, mmdet, mmseg) live only in ``finetune.det``, ``finetune.seg`` and the modules they import, so
classification fine-tuning runs without them.
"""
