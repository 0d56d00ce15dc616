"""Evaluation metrics: AUC-based and threshold bias metrics per identity subgroup."""

from .bias import (
    AUC_METRICS,
    SUBGROUP_METRICS,
    auc,
    bias_metrics,
    bootstrap_auc_ci,
    mwu_fraction,
    power_mean,
)

__all__ = [
    "AUC_METRICS",
    "SUBGROUP_METRICS",
    "auc",
    "bias_metrics",
    "bootstrap_auc_ci",
    "mwu_fraction",
    "power_mean",
]
