# The pretraining variants the paper compares, as drop settings for basic.py / improved.py (official README commands):
#   early dropout: --dropout 0.1 --drop_mode early --drop_schedule linear --cutoff_epoch 50
#   early s.d.:    --drop_path 0.5 --drop_mode early --drop_schedule linear --cutoff_epoch 50
#   late s.d.:     --drop_path 0.4 --drop_mode late --drop_schedule constant --cutoff_epoch 50 (ViT-B, Mixer-B)
#   standard dropout / no dropout: --dropout 0.1 / 0.0 --drop_mode standard
# The README does not give the standard stochastic-depth rate of the baselines; standard-sd uses 0.1 (the DeiT and
# ConvNeXt default for small models); a suite preset may set another rate per model (paper.py gives late s.d.'s
# baselines, ViT-B and Mixer-B, late s.d.'s rate 0.4 from the start).
# cutoff_epoch is in epochs; a recipe shorter than the cutoff needs its own (the smoke suite sets one).
variants = dict(
    baseline=dict(kind='none', rate=0.0, mode='standard', schedule='constant', cutoff_epoch=0),
    **{
        'standard-dropout': dict(kind='dropout', rate=0.1, mode='standard', schedule='constant', cutoff_epoch=0),
        'standard-sd': dict(kind='drop_path', rate=0.1, mode='standard', schedule='constant', cutoff_epoch=0),
        'early-dropout': dict(kind='dropout', rate=0.1, mode='early', schedule='linear', cutoff_epoch=50),
        'early-sd': dict(kind='drop_path', rate=0.5, mode='early', schedule='linear', cutoff_epoch=50),
        'late-sd': dict(kind='drop_path', rate=0.4, mode='late', schedule='constant', cutoff_epoch=50),
    },
)
