"""ImageNet pretraining with the paper's early / late dropout and stochastic-depth schedules.

Importing this package registers the paper's model names with timm (see :mod:`pretrain.models`).
"""

from dropbench.pretrain.models import PAPER_MODELS, create_paper_model, paper_model

__all__ = ["PAPER_MODELS", "create_paper_model", "paper_model"]
