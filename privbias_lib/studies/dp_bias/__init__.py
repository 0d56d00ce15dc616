"""Study 1 — does DP fine-tuning make a classifier more biased against identity groups?

Islam et al. (2024): fine-tune the top encoder layer, pooler and classifier of a
pre-trained encoder non-privately and with DP-SGD at several epsilons, then compare
AUC-based bias metrics per identity subgroup (:mod:`privbias_lib.metrics.bias`). A
second experiment varies one subgroup's share and positive rate in the training data.
"""

from .baseline import frozen_feature_baseline
from .data import check_distribution, data_summary, distribution_train_set, load_data
from .figures import plot_distribution, plot_dp_change, plot_gaps, plot_metrics_vs_epsilon
from .paper import paper_dataset, paper_epsilon_table, paper_results, paper_summary_table
from .params import ACCOUNTANTS, DATASETS, DPBiasParams
from .results import (
    GAP_METRICS,
    SUMMARY_METRICS,
    VAL_RATE,
    describe_distribution,
    direction_summary,
    distribution_summary,
    dp_change,
    epsilon_order,
    epsilon_table,
    gap_table,
    privacy_table,
    results_table,
    summary_table,
    sweep_of,
    val_rate_threshold,
)
from .runs import (
    BASELINE,
    DISTRIBUTION,
    NON_PRIVATE,
    SHARED,
    SWEEP,
    TUNED_RECIPE,
    TUNING,
    chosen_trial,
    plan,
    plan_runs,
    train_and_score,
    train_config,
    trial_settings,
)
from .study import STUDY
from .tuning import baseline_auc, describe_tuning, tuned_models, tuning_cost_rows, tuning_table
from .verdict import verdicts

__all__ = [
    "ACCOUNTANTS",
    "BASELINE",
    "DATASETS",
    "DISTRIBUTION",
    "GAP_METRICS",
    "NON_PRIVATE",
    "SHARED",
    "STUDY",
    "SUMMARY_METRICS",
    "SWEEP",
    "TUNED_RECIPE",
    "TUNING",
    "VAL_RATE",
    "DPBiasParams",
    "baseline_auc",
    "check_distribution",
    "chosen_trial",
    "data_summary",
    "describe_distribution",
    "describe_tuning",
    "direction_summary",
    "distribution_summary",
    "distribution_train_set",
    "dp_change",
    "epsilon_order",
    "epsilon_table",
    "frozen_feature_baseline",
    "gap_table",
    "load_data",
    "paper_dataset",
    "paper_epsilon_table",
    "paper_results",
    "paper_summary_table",
    "plan",
    "plan_runs",
    "plot_distribution",
    "plot_dp_change",
    "plot_gaps",
    "plot_metrics_vs_epsilon",
    "privacy_table",
    "results_table",
    "summary_table",
    "sweep_of",
    "train_and_score",
    "train_config",
    "trial_settings",
    "tuned_models",
    "tuning_cost_rows",
    "tuning_table",
    "val_rate_threshold",
    "verdicts",
]
