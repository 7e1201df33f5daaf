# Per-data-set settings, merged over the recipe by `dropbench finetune cls --dataset NAME` (and then dropped from the
# resolved config). Every value here is dropbench's choice, no source (the paper does not list them, and its authors'
# code has no transfer recipe): lr 5e-4 everywhere; the large sets
# (CIFAR-100 50,000 and Food-101 75,750 training images) get 100 epochs; the small ones (Flowers-102 2,040 train+val,
# Pets 3,680 trainval, STL-10 5,000) a smaller batch and more epochs so that each sees a few thousand updates on
# 8 GPUs. Override any value with --cfg-options, e.g. schedule.epochs=50 optim.lr=1e-3.

per_dataset = dict(
    cifar100=dict(schedule=dict(epochs=100, warmup_epochs=5), optim=dict(lr=5e-4)),
    flowers102=dict(data=dict(batch_size=32), schedule=dict(epochs=300, warmup_epochs=20), optim=dict(lr=5e-4)),
    pets=dict(data=dict(batch_size=32), schedule=dict(epochs=300, warmup_epochs=20), optim=dict(lr=5e-4)),
    stl10=dict(data=dict(batch_size=32), schedule=dict(epochs=200, warmup_epochs=10), optim=dict(lr=5e-4)),
    food101=dict(schedule=dict(epochs=100, warmup_epochs=5), optim=dict(lr=5e-4)),
    imagefolder=dict(),
)
