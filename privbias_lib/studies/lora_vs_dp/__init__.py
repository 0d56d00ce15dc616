"""Study 3 — does LoRA limit memorisation of sensitive tokens as much as DP-SGD, and at
what cost? (Das et al. 2025, "Revisiting Privacy, Utility, and Efficiency Trade-offs when
Fine-Tuning Large Language Models".)

Every method fine-tunes the same causal LM on the same CustomerSim-style dialogues for
the same number of epochs and batch size: full fine-tuning, LoRA at several ranks, DP-SGD
on the full model and DP-LoRA. Each trained model is scored against the base model with
the measures of :mod:`privbias_lib.metrics.memorisation`.
"""

from .data import StudyData, alignment_check, highlight_html, highlight_tokens, load_data
from .figures import plot_exposure, plot_gains, plot_privacy_utility
from .params import BASE, METHOD_LABELS, METHODS, LoraVsDpParams
from .results import (
    EFFICIENCY_ANCHOR,
    PAPER_CLAIMS,
    claim_check,
    describe_findings,
    privacy_table,
    summary_table,
    tidy_results,
    write_tables,
)
from .runs import BaseScores, measure, plan, plan_runs, score_model, train_and_measure, train_config
from .study import STUDY
from .verdict import verdicts

__all__ = [
    "BASE",
    "EFFICIENCY_ANCHOR",
    "METHODS",
    "METHOD_LABELS",
    "PAPER_CLAIMS",
    "STUDY",
    "BaseScores",
    "LoraVsDpParams",
    "StudyData",
    "alignment_check",
    "claim_check",
    "describe_findings",
    "highlight_html",
    "highlight_tokens",
    "load_data",
    "measure",
    "plan",
    "plan_runs",
    "plot_exposure",
    "plot_gains",
    "plot_privacy_utility",
    "privacy_table",
    "score_model",
    "summary_table",
    "tidy_results",
    "train_and_measure",
    "train_config",
    "verdicts",
    "write_tables",
]
