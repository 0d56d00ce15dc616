"""Study 1 — does DP fine-tuning make a classifier more biased against identity groups?

Islam et al. (2024): fine-tune the top encoder layer, pooler and classifier of a
pre-trained encoder non-privately and with DP-SGD at several epsilons, then compare
AUC-based bias metrics per identity subgroup (:mod:`privbias_lib.metrics.bias`). A
second experiment varies one subgroup's share and positive rate in the training data.
"""

from .data import check_distribution, data_summary, distribution_train_set, load_data
from .figures import plot_distribution, plot_dp_change, plot_gaps, plot_metrics_vs_epsilon
from .paper import paper_dataset, paper_epsilon_table, paper_results, paper_summary_table
from .params import ACCOUNTANTS, DATASETS, DPBiasParams
from .results import (
    GAP_METRICS,
    SUMMARY_METRICS,
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
)
from .runs import DISTRIBUTION, NON_PRIVATE, SWEEP, plan, plan_runs, train_and_score, train_config
from .study import STUDY
from .verdict import verdicts

__all__ = [
    "ACCOUNTANTS",
    "DATASETS",
    "DISTRIBUTION",
    "GAP_METRICS",
    "NON_PRIVATE",
    "STUDY",
    "SUMMARY_METRICS",
    "SWEEP",
    "DPBiasParams",
    "check_distribution",
    "data_summary",
    "describe_distribution",
    "direction_summary",
    "distribution_summary",
    "distribution_train_set",
    "dp_change",
    "epsilon_order",
    "epsilon_table",
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
    "train_and_score",
    "train_config",
    "verdicts",
]
