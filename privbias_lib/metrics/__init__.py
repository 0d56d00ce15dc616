"""Evaluation metrics: AUC-based and threshold bias metrics per identity subgroup, and the
memorisation measures of causal LMs (leakage, exposure, membership inference)."""

from .bias import (
    AUC_METRICS,
    SUBGROUP_METRICS,
    auc,
    bias_metrics,
    bootstrap_auc_ci,
    mwu_fraction,
    power_mean,
)
from .memorisation import (
    candidate_logprobs,
    chance_exposure,
    exposure,
    exposure_estimate,
    memorisation_report,
    mia_report,
    mia_scores,
    text_category_sums,
    token_logprobs,
    tpr_at_fpr,
)

__all__ = [
    "AUC_METRICS",
    "SUBGROUP_METRICS",
    "auc",
    "bias_metrics",
    "bootstrap_auc_ci",
    "candidate_logprobs",
    "chance_exposure",
    "exposure",
    "exposure_estimate",
    "memorisation_report",
    "mia_report",
    "mia_scores",
    "mwu_fraction",
    "power_mean",
    "text_category_sums",
    "token_logprobs",
    "tpr_at_fpr",
]
