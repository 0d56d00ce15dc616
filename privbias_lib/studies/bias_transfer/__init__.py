"""Study 4 — does a causal LM's intrinsic gender bias predict its bias when prompted?
(Mackraz, Sivakumar et al., "Evaluating Gender Bias Transfer between Pre-trained and
Prompt-Adapted Language Models", 2024.)

For every model: the intrinsic per-occupation selection bias from the likelihoods of each
WinoBias pair's two versions, then the prompted co-reference question under every
condition (zero-shot, few-shot with a chosen number of solved examples and share of
pro-stereotypical ones, a "be fair" and a "be stereotypical" instruction), and the
correlation across the 40 occupations between intrinsic and prompted bias.
"""

from .data import StudyData, load_data
from .figures import plot_scatter, plot_sweep
from .params import INTRINSIC, PAPER_CLAIMS, BiasTransferParams
from .results import measures, osb_frame, summary_table, summary_views
from .runs import intrinsic_scores, plan, prompted_scores
from .study import STUDY
from .verdict import verdicts

__all__ = [
    "INTRINSIC",
    "PAPER_CLAIMS",
    "STUDY",
    "BiasTransferParams",
    "StudyData",
    "intrinsic_scores",
    "load_data",
    "measures",
    "osb_frame",
    "plan",
    "plot_scatter",
    "plot_sweep",
    "prompted_scores",
    "summary_table",
    "summary_views",
    "verdicts",
]
