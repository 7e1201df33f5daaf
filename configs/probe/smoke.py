# A CPU-sized probe of the smoke checkpoints on the generated sets (`dropbench data synth-cls`): the standard protocol
# at 48 px, the resolution the smoke checkpoints were pretrained at (configs/pretrain/smoke.py; the standard recipe
# probes at the pretraining recipe's 224), decoding in the main process, one CPU thread: for batches this small,
# thread hand-offs cost more than the arithmetic (a Swin-F forward of 64 images at 48 px: 0.2 s on one thread, 0.26 s
# on two of an idle-ish 2-core machine, up to ten times slower on two when other jobs share the cores).
_base_ = ['./standard.py']

data = dict(input_size=48, crop_pct=1.0, batch_size=64, num_workers=0)
runtime = dict(threads=1)
