# Classification transfer at 224 px on CIFAR-100, Flowers-102, Oxford-IIIT Pets, STL-10, Food-101 or an image
# folder (Table 6's task): the common AdamW recipe (_base_/transfer.py) with per-data-set epochs and learning rates
# (_base_/datasets.py).
_base_ = ['./_base_/transfer.py', './_base_/datasets.py']
