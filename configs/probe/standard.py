# Frozen-feature probes of a pretrained checkpoint (the `probe` task): kNN and a linear classifier on its pre-logits
# features (timm's forward_features + forward_head(pre_logits=True), eval mode, no augmentation), on CIFAR-100,
# Flowers-102, Pets, STL-10, Food-101 or an image folder (the transfer protocol's splits, finetune/datasets/cls.py).
# Each setting names its source; "dropbench's choice" where there is none. `dropbench finetune probe` fills
# model.name, model.checkpoint, data.dataset and data.root. result.json records the resolved values.

model = dict(
    name=None,  # the paper model the checkpoint holds (read from the checkpoint's metadata when --model is omitted)
    checkpoint=None,
    use_ema=False,  # probe the checkpoint's EMA weights
)

data = dict(
    dataset=None,  # cifar100 | flowers102 | pets | stl10 | food101 | imagefolder
    root=None,
    # resize + center crop at 224 px, bicubic, the model's crop_pct (0.875 when None): the pretraining recipe's
    # evaluation transform (configs/pretrain/basic.py: main.py --input_size 224, --crop_pct None), as DINO's
    # eval_knn.py uses its own pretraining's (Resize 256, CenterCrop 224 = crop_pct 0.875)
    input_size=224,
    interpolation='bicubic',
    crop_pct=None,
    mean=None,  # None: the model's (ImageNet's)
    std=None,
    batch_size=128,  # images per forward pass (dropbench's choice: no source; does not change the features)
    num_workers=8,  # decoding processes (dropbench's choice: no source)
)

knn = dict(
    # DINO eval_knn.py (facebookresearch/dino): cosine similarity of L2-normalised features, votes weighted by
    # exp(similarity / T), --temperature 0.07, --nb_knn [10, 20, 100, 200] ('20 is usually working the best')
    k=20,
    extra_k=[1, 10],  # also reported (knn_top1_k1, knn_top1_k10): dropbench's choice, k = 10 from DINO's list
    temperature=0.07,
    chunk_elements=2**26,  # similarity entries per matrix product (memory bound; dropbench's choice)
)

linear = dict(
    # CLIP's linear-probe protocol (Radford et al. 2021, App. A.3): multinomial logistic regression with L-BFGS on
    # the frozen features, the L2 strength from a logarithmic sweep on a validation split, then refit; VTAB's linear
    # evaluation likewise selects on a held-out part of the training split (its 800/200 "train/val" split), then
    # trains on all of it. Here: full-batch L-BFGS in torch (not scikit-learn), on standardised features (dropbench's
    # choice), objective mean cross-entropy + l2 / 2 * ||W||^2 with the bias unregularised.
    # Sweep: one value per decade from 1e-6 to 1 (CLIP sweeps 1e-6 to 1e6 on a per-sum objective, refining around the
    # peak; on this per-sample objective the useful range is narrower: dropbench's choice)
    l2_sweep=[1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0],
    holdout=0.2,  # held-out fraction of each class of the training split (dropbench's choice; VTAB: 200 of 1000)
    # the sweep runs from the strongest L2 down, each fit warm-started from the previous one, and stops once 2
    # strengths in a row score below the best (past the peak; CLIP instead refines around the peak): dropbench's choice
    patience=2,
    sweep_max_iter=20,  # L-BFGS iterations per sweep fit (dropbench's choice)
    max_iter=100,  # L-BFGS iterations of the refit on the whole training split, warm-started (dropbench's choice;
    # CLIP: 1000 from scratch)
    # L-BFGS stops when every gradient entry of the mean objective is below this: scikit-learn LogisticRegression's
    # default tol (1e-4; CLIP's probes used scikit-learn's L-BFGS)
    tolerance=1e-4,
    # the three settings above keep the sweep and refit of 50,000 x 768 features, 100 classes, under a minute on 2 CPU
    # cores (tools/bench_probe.py)
)

runtime = dict(
    seed=0,  # the held-out split's draw (kNN and the features do not depend on it)
    device='auto',  # auto (CUDA if visible) | cpu | cuda
    threads=None,  # torch's CPU threads during the run; None: the process's setting (dropbench's choice)
)

cache = dict(
    # where features are cached (per checkpoint sha256, model, data set, split, transform); None:
    # $DROPBENCH_CACHE/features, default ~/.cache/dropbench/features. Not part of the config hash.
    dir=None,
)
