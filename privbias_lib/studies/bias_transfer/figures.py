"""Study 4's figures."""

from __future__ import annotations

import pandas as pd

from ...figures import attach, nothing_to_show
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
    """Correlation with intrinsic bias (with its 95% BCa interval) and A-SB against the
    number of shots, per share of pro-stereotypical examples (zero-shot at 0): one row per
    model."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    conds = {c.name: c for c in params.all_conditions() if c.instruction is None}
    wide = results[results.condition.isin(conds) & (results.subgroup == "all")].pivot_table(
        index=["model", "condition"], columns="metric", values="value", sort=False
    )
    if wide.empty:
        return nothing_to_show(
            "no condition without an instruction in this run: nothing to plot against shots"
        )
    frame = wide.reset_index()
    for col in ("spearman", "spearman_ci_low", "spearman_ci_high", "a_sb"):
        if col not in frame:
            frame[col] = float("nan")
    frame["shots"] = frame.condition.map(lambda c: conds[c].shots)
    frame["pro share"] = frame.condition.map(
        lambda c: "zero-shot" if conds[c].shots == 0 else f"{conds[c].pro_share:.0%}"
    )
    columns = ["model", "condition", "shots", "pro share", "spearman", "spearman_ci_low",
               "spearman_ci_high", "a_sb"]  # fmt: skip
    frame = frame[columns].sort_values(["model", "pro share", "shots"])
    models, shares = list(dict.fromkeys(frame.model)), list(dict.fromkeys(frame["pro share"]))
    palette = dict(zip(shares, sns.color_palette("colorblind", len(shares)), strict=True))
    fig, axes = plt.subplots(len(models), 2, figsize=(9, 2.9 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        part = frame[frame.model == model]
        for share, line in part.groupby("pro share", sort=False):
            kw = {"color": palette[share], "marker": "o", "label": share}
            low = (line.spearman - line.spearman_ci_low).clip(lower=0)
            high = (line.spearman_ci_high - line.spearman).clip(lower=0)
            axes[row, 0].errorbar(line.shots, line.spearman, yerr=[low, high], capsize=3, **kw)
            axes[row, 1].plot(line.shots, line.a_sb, **kw)
        axes[row, 0].set_ylabel("Spearman rho with intrinsic O-SB\n(95% BCa interval)")
        axes[row, 1].set_ylabel("A-SB (mean |O-SB|)")
        axes[row, 0].axhline(0, color="grey", lw=0.5)
        for ax in axes[row]:
            ax.set_title(model, fontsize=10)
            ax.set_xlabel("solved examples (shots)")
    axes[0, 1].legend(title="pro-stereotypical share", fontsize=9, title_fontsize=9)
    fig.tight_layout()
    return attach(fig, frame)
