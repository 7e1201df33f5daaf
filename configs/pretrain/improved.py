# The paper's improved recipe: the basic one with 600 epochs and mixup and cutmix reduced to 0.3
# (facebookresearch/dropout README.md, "Improved Recipe": --epochs 600 --mixup 0.3 --cutmix 0.3).
_base_ = ['./basic.py']

schedule = dict(epochs=600)
augment = dict(mixup=0.3, cutmix=0.3)
