"""Study 2 — EW-Tune: the Edgeworth accountant, the noise it calibrates, and what that
noise really costs in privacy.

Part A is pure computation (:mod:`privbias_lib.accounting`): epsilon curves of every
accountant, the noise multiplier each needs for a target epsilon at EW-Tune's four task
settings, and the audit of those noise levels by PLD. Part B fine-tunes one model with
each accountant's noise and compares accuracy (Behnia et al. 2022).
"""

from .calibration import (
    ACCOUNTANT_NAMES,
    EW_BATCH,
    EW_EPOCHS,
    audit_table,
    calibration_table,
    describe_audit,
    epsilon_curves,
    finetune_audit,
    noise_reduction,
    paper_gains,
    paper_table,
    sigma_overview,
    sigma_table,
    task_setting,
)
from .data import data_fingerprint, load_data
from .figures import plot_accuracy, plot_curves, plot_finetune_audit
from .params import AUDITOR, CALIBRATED, NON_PRIVATE, TASK_SIZES, EWTuneParams
from .results import accuracy_table, tidy_results, training_rows
from .runs import plan, plan_runs, train_and_evaluate, train_config, train_steps
from .study import STUDY
from .verdict import verdicts

__all__ = [
    "ACCOUNTANT_NAMES",
    "AUDITOR",
    "CALIBRATED",
    "EW_BATCH",
    "EW_EPOCHS",
    "NON_PRIVATE",
    "STUDY",
    "TASK_SIZES",
    "EWTuneParams",
    "accuracy_table",
    "audit_table",
    "calibration_table",
    "data_fingerprint",
    "describe_audit",
    "epsilon_curves",
    "finetune_audit",
    "load_data",
    "noise_reduction",
    "paper_gains",
    "paper_table",
    "plan",
    "plan_runs",
    "plot_accuracy",
    "plot_curves",
    "plot_finetune_audit",
    "sigma_overview",
    "sigma_table",
    "task_setting",
    "tidy_results",
    "train_and_evaluate",
    "train_config",
    "train_steps",
    "training_rows",
    "verdicts",
]
