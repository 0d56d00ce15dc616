"""Study 4's figures."""

from __future__ import annotations

import pandas as pd

from ...figures import attach
from .params import BiasTransferParams
from .results import osb_frame


def plot_scatter(results: pd.DataFrame, conditions: list[str]):
    """Intrinsic against prompted O-SB per occupation, coloured by the share of women:
    one row per condition, one column per model."""
    import matplotlib.pyplot as plt

    frame = osb_frame(results)
    frame = frame[frame.condition.isin(conditions)]
    models = list(dict.fromkeys(frame.model))
    fig, axes = plt.subplots(
        len(conditions), len(models), figsize=(3.6 * len(models) + 1.4, 2.7 * len(conditions)),
        squeeze=False, sharex=True, sharey=True,
    )  # fmt: skip
    for i, cond in enumerate(conditions):
        for j, model in enumerate(models):
            ax = axes[i][j]
            part = frame[(frame.model == model) & (frame.condition == cond)]
            sc = ax.scatter(
                part.intrinsic, part.prompted, c=part.share_women_pct, cmap="coolwarm_r",
                vmin=0, vmax=100, s=18,
            )  # fmt: skip
            ax.axhline(0, color="grey", lw=0.5)
            ax.axvline(0, color="grey", lw=0.5)
            ax.set_title(f"{model}: {cond}", fontsize=9)
            if i == len(conditions) - 1:
                ax.set_xlabel("intrinsic O-SB")
            if j == 0:
                ax.set_ylabel("prompted O-SB")
    fig.colorbar(sc, ax=axes, label="share of women (%)", shrink=0.5)
    return attach(fig, frame)


def plot_sweep(results: pd.DataFrame, params: BiasTransferParams):
    """Correlation with intrinsic bias and A-SB against the number of shots, per share of
    pro-stereotypical examples (zero-shot as 0)."""
    import seaborn as sns

    conds = {c.name: c for c in params.all_conditions() if c.instruction is None}
    part = results[
        results.condition.isin(conds)
        & (results.subgroup == "all")
        & results.metric.isin(["spearman", "a_sb"])
    ].copy()
    part["shots"] = part.condition.map(lambda c: conds[c].shots)
    part["pro share"] = part.condition.map(
        lambda c: "zero-shot" if conds[c].shots == 0 else f"{conds[c].pro_share:.0%}"
    )
    part["metric"] = part.metric.map({"spearman": "Spearman vs intrinsic", "a_sb": "A-SB"})
    grid = sns.relplot(
        data=part, x="shots", y="value", hue="pro share", col="metric", row="model",
        kind="line", marker="o", height=2.8, aspect=1.4, facet_kws={"sharey": False},
    )  # fmt: skip
    grid.set_titles(template="{row_name}\n{col_name}", size=9)
    grid.set_axis_labels("solved examples (shots)", "")
    return grid
