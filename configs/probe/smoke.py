# A CPU-sized probe for the generated sets (`dropbench data synth-cls`): the standard protocol at the smoke recipes'
# 64 px (as configs/cls/smoke.py), decoding in the main process.
_base_ = ['./standard.py']

data = dict(input_size=64, crop_pct=1.0, batch_size=64, num_workers=0)
