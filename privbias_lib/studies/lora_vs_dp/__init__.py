"""Study 3 — does LoRA limit memorisation of sensitive tokens as much as DP-SGD, and at
what cost? (Das et al. 2025, "Revisiting Privacy, Utility, and Efficiency Trade-offs when
Fine-Tuning Large Language Models".)

Every method fine-tunes the same causal LM on the same CustomerSim-style dialogues for
the same number of epochs and batch size: full fine-tuning, LoRA at several ranks, DP-SGD
on the full model and DP-LoRA at several epsilons. Each trained model is scored against the
base model with the measures of :mod:`privbias_lib.metrics.memorisation`, at checkpoints
during training too (:mod:`.trajectory`), so methods are compared at matched utility as
well as at matched training budget.
"""

from .data import StudyData, alignment_check, highlight_html, highlight_tokens, load_data
from .figures import (
    plot_epsilon_curve,
    plot_exposure,
    plot_gains,
    plot_matched_utility,
    plot_privacy_utility,
    plot_trajectories,
)
from .params import BASE, METHOD_LABELS, METHODS, LoraVsDpParams
from .results import (
    EFFICIENCY_ANCHOR,
    PAPER_CLAIMS,
    canary_table,
    claim_check,
    describe_findings,
    matched_table,
    privacy_table,
    summary_table,
    tidy_results,
    write_tables,
)
from .runs import BaseScores, measure, plan, plan_runs, score_model, train_and_measure, train_config
from .study import STUDY
from .trajectory import (
    Comparison,
    checkpoint_steps,
    compare,
    interpolate_at_utility,
    matched_utility,
    trajectory_table,
)
from .verdict import answer, leakage_onset, verdicts

__all__ = [
    "BASE",
    "EFFICIENCY_ANCHOR",
    "METHODS",
    "METHOD_LABELS",
    "PAPER_CLAIMS",
    "STUDY",
    "BaseScores",
    "Comparison",
    "LoraVsDpParams",
    "StudyData",
    "alignment_check",
    "answer",
    "canary_table",
    "checkpoint_steps",
    "claim_check",
    "compare",
    "describe_findings",
    "highlight_html",
    "highlight_tokens",
    "interpolate_at_utility",
    "leakage_onset",
    "load_data",
    "matched_table",
    "matched_utility",
    "measure",
    "plan",
    "plan_runs",
    "plot_epsilon_curve",
    "plot_exposure",
    "plot_gains",
    "plot_matched_utility",
    "plot_privacy_utility",
    "plot_trajectories",
    "privacy_table",
    "score_model",
    "summary_table",
    "tidy_results",
    "train_and_measure",
    "train_config",
    "trajectory_table",
    "verdicts",
    "write_tables",
]
