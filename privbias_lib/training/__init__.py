"""Fine-tuning: non-private or DP-SGD (Opacus), all weights, the top layers or LoRA (peft),
for sequence classifiers and causal language models.

A private run returns a :class:`PrivacyRecord` holding q, sigma, the steps actually taken,
delta, the sampling scheme, and epsilon by the calibrating accountant beside a rigorous
upper bound.
"""

from .causal_lm import evaluate_nll, per_example_nll, train_causal_lm
from .classifier import classification_metrics, predict_proba, train_classifier
from .config import Full, LoRA, PrivacyConfig, TopLayers, TrainConfig
from .engine import History, TrainResult, choose_grad_sample_mode, make_private, unwrap
from .privacy import PrivacyRecord

__all__ = [
    "Full",
    "History",
    "LoRA",
    "PrivacyConfig",
    "PrivacyRecord",
    "TopLayers",
    "TrainConfig",
    "TrainResult",
    "choose_grad_sample_mode",
    "classification_metrics",
    "evaluate_nll",
    "make_private",
    "per_example_nll",
    "predict_proba",
    "train_causal_lm",
    "train_classifier",
    "unwrap",
]
