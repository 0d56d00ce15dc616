"""Study 1's figures (seaborn), each drawn from the tidy results."""

from __future__ import annotations

import pandas as pd

from ...figures import nothing_to_show
from ...metrics import AUC_METRICS
from ...metrics.bias import THRESHOLD_METRICS
from .results import GAP_METRICS, epsilon_order, sweep_of
from .runs import DISTRIBUTION, SHARED, SWEEP, TUNED_RECIPE


def _defined(rows: pd.DataFrame, column: str, metrics) -> tuple[pd.DataFrame, list[str]]:
    """The rows with a value, and the metrics that have one (a metric undefined in every
    run — BPSN and BNSP without background examples — gets no empty panel)."""
    rows = rows.dropna(subset=[column])
    return rows, [m for m in metrics if m in set(rows.metric)]


def _dodge(rows: pd.DataFrame) -> float | bool:
    """Side-by-side points per subgroup (seaborn cannot dodge a single one)."""
    return 0.4 if rows.subgroup.nunique() > 1 else False


def plot_metrics_vs_epsilon(results: pd.DataFrame, recipe: str = SHARED):
    """Each AUC metric against epsilon per subgroup under ``recipe``; error bars: spread
    over seeds."""
    import seaborn as sns

    sweep = sweep_of(results, recipe)
    rows = sweep[sweep.metric.isin(AUC_METRICS)]
    rows, metrics = _defined(rows, "value", AUC_METRICS)
    if not metrics:
        return nothing_to_show("no AUC metric is defined in this run (see 'reason' in results)")
    order = epsilon_order(rows.epsilon.unique())
    grid = sns.catplot(
        data=rows, x="epsilon", y="value", hue="subgroup", col="metric", kind="point",
        order=order, col_order=metrics, errorbar="sd", dodge=_dodge(rows), height=3.4,
        aspect=1.1, markersize=4, linewidth=1.2,
    )  # fmt: skip
    grid.set_axis_labels("epsilon (none = non-private)", "AUC")
    grid.set_titles("{col_name}")
    return grid


def plot_dp_change(changes: pd.DataFrame):
    """DP-induced change (DP minus non-private, same seed) per subgroup and epsilon, one
    row per recipe; bars: standard deviation over seeds."""
    import seaborn as sns

    rows = changes[(changes.experiment == SWEEP) & changes.metric.isin(AUC_METRICS)]
    rows, metrics = _defined(rows, "change", AUC_METRICS)
    if not metrics:
        return nothing_to_show(
            "no DP-induced change to show: it needs a non-private run (INCLUDE_NON_PRIVATE) "
            "and metrics defined in both"
        )
    grid = sns.catplot(
        data=rows, x="epsilon", y="change", hue="subgroup", col="metric", row="recipe",
        kind="bar", order=epsilon_order(rows.epsilon.unique()), col_order=metrics,
        row_order=[r for r in (SHARED, TUNED_RECIPE) if r in set(rows.recipe)],
        errorbar="sd", height=3.2, aspect=1.1, palette="colorblind",
    )  # fmt: skip
    for ax in grid.axes.flat:
        ax.axhline(0, color="black", linewidth=0.8)
    grid.set_axis_labels("epsilon", "change in AUC (DP - non-private)")
    grid.set_titles("{col_name}, {row_name} recipe")
    return grid


def plot_gaps(results: pd.DataFrame, recipe: str = SHARED, threshold: str = ""):
    """Threshold gaps (subgroup minus background, at the threshold; with ``threshold``
    ``VAL_RATE`` at the validation positive rate's) and average equality gaps against
    epsilon per subgroup under ``recipe``; error bars: spread over seeds."""
    import seaborn as sns

    names = [m + threshold if m in THRESHOLD_METRICS else m for m in GAP_METRICS]
    sweep = sweep_of(results, recipe)
    rows = sweep[sweep.metric.isin(names)]
    rows, metrics = _defined(rows, "value", names)
    if not metrics:
        return nothing_to_show("no gap is defined in this run (see 'reason' in results)")
    grid = sns.catplot(
        data=rows, x="epsilon", y="value", hue="subgroup", col="metric", kind="point",
        order=epsilon_order(rows.epsilon.unique()), col_order=metrics, col_wrap=3,
        errorbar="sd", dodge=_dodge(rows), height=3.2, aspect=1.1, markersize=4, linewidth=1.2,
        sharey=False,
    )  # fmt: skip
    for ax in grid.axes.flat:
        ax.axhline(0, color="black", linewidth=0.8)
    grid.set_axis_labels("epsilon (none = non-private)", "gap (subgroup - background)")
    grid.set_titles("{col_name}")
    return grid


def plot_distribution(changes: pd.DataFrame, group: str):
    """The DP-induced change of ``group``'s AUC metrics against its training share."""
    import seaborn as sns

    rows = changes[
        (changes.experiment == DISTRIBUTION)
        & (changes.subgroup == group)
        & changes.metric.isin(AUC_METRICS)
    ].assign(**{"positive rate in the group": lambda d: d.positive_rate.map("{:.0%}".format)})
    grid = sns.relplot(
        data=rows, x="share", y="change", hue="positive rate in the group", col="metric",
        kind="line", marker="o", errorbar="sd", col_order=list(AUC_METRICS), height=3.4,
        aspect=1.1, palette="colorblind",
    )  # fmt: skip
    for ax in grid.axes.flat:
        ax.axhline(0, color="black", linewidth=0.8)
    grid.set_axis_labels(f"share of '{group}' in the training data", "change (DP - non-private)")
    grid.set_titles("{col_name}")
    return grid
