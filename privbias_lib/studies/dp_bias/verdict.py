"""Study 1's verdicts: does DP fine-tuning lower each AUC-based bias metric, as the paper
found, and by about as much?"""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats

from ...metrics import AUC_METRICS
from ...verdicts import Verdict, interval_outcome
from .runs import NON_PRIVATE, SHARED, SWEEP, TUNED_RECIPE

SIZE_TOLERANCE = 0.02  # AUC: a mean change this close to the paper's counts as its size
NAMES = {"subgroup_auc": "Subgroup AUC", "bpsn_auc": "BPSN AUC", "bnsp_auc": "BNSP AUC",
         "overall_auc": "overall AUC"}  # fmt: skip


def paper_mean_change(paper: pd.DataFrame) -> pd.Series:
    """The paper's mean DP-induced change per metric, over its groups and epsilons."""
    base = paper[paper.epsilon == NON_PRIVATE][["subgroup", "metric", "value"]]
    dp = paper[paper.epsilon != NON_PRIVATE].merge(
        base, on=["subgroup", "metric"], suffixes=("", "_base")
    )
    return (dp.value - dp.value_base).groupby(dp.metric).mean()


def metric_verdict(
    changes: pd.DataFrame, metric: str, paper: float, dataset: str, recipe: str = SHARED
) -> Verdict:
    """One metric under ``recipe``: our mean change over groups and epsilons, with a t
    interval over seeds (each seed's mean change), against the paper's."""
    name = NAMES[metric]
    claim = f"DP lowers the {name} (the paper on {dataset}: {paper:+.3f} on average)"
    if recipe == TUNED_RECIPE:
        claim = (
            f"the {name} drop is DP's, not the recipe's: it stays when each epsilon gets a "
            "recipe tuned for DP"
        )
    cells = changes[
        (changes.experiment == SWEEP) & (changes.metric == metric) & (changes.recipe == recipe)
    ].dropna(subset=["change"])
    if cells.empty:
        runs = changes[(changes.experiment == SWEEP) & (changes.recipe == recipe)]
        if runs.empty:
            why = f"this run has no DP model under the {recipe} recipe (see RECIPES)"
        elif runs["base"].isna().all():
            why = "no non-private run to measure the change from"
        else:
            why = f"the {name} is undefined in this run (see 'reason' in results.csv)"
        return Verdict(claim, "—", "not assessed", why)
    per_seed = cells.groupby("seed").change.mean()
    mean = float(per_seed.mean())
    lowered = float((cells.groupby(["subgroup", "epsilon"]).change.mean() < 0).mean())
    where = f"lower in {lowered:.0%} of the (group, epsilon) cells"
    if len(per_seed) < 2:
        return Verdict(claim, f"{mean:+.3f}, {where}", "inconclusive", "one seed: no interval")
    half = stats.t.ppf(0.975, len(per_seed) - 1) * per_seed.std(ddof=1) / math.sqrt(len(per_seed))
    low, high = mean - half, mean + half
    ours = f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] over {len(per_seed)} seeds; {where}"
    outcome = interval_outcome(
        mean, low, high, paper=paper, claim_sign=-1, tolerance=SIZE_TOLERANCE
    )
    because = {
        "reproduced": "the change is clearly negative and about the paper's size",
        "direction only": f"clearly negative, but {abs(mean / paper):.1f} times the paper's size"
        if paper
        else "clearly negative",
        "not reproduced": "DP raises it here",
        "inconclusive": "the seeds' spread covers zero",
    }[outcome]
    return Verdict(claim, ours, outcome, because)


def verdicts(changes: pd.DataFrame, paper: pd.DataFrame, dataset: str) -> list[Verdict]:
    """One verdict per AUC metric and one for the overall AUC under the shared recipe (the
    paper's), then the same under the tuned recipe where it ran."""
    means = paper_mean_change(paper)
    out = []
    for recipe in [r for r in (SHARED, TUNED_RECIPE) if r in set(changes.get("recipe", []))]:
        for m in (*AUC_METRICS, "overall_auc"):
            out.append(metric_verdict(changes, m, float(means.get(m, math.nan)), dataset, recipe))
    return out or [
        metric_verdict(changes, m, float(means.get(m, math.nan)), dataset)
        for m in (*AUC_METRICS, "overall_auc")
    ]
