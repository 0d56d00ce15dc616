"""Study 2's figures (seaborn)."""

from __future__ import annotations

import pandas as pd

from ...figures import attach
from .params import CALIBRATED, NON_PRIVATE


def _spaced(values, min_ratio: float = 1.2) -> list[float]:
    """Sorted ``values`` without those closer than ``min_ratio`` to the previous one kept
    (tick positions on a log axis whose labels would overlap, e.g. 1000 and 1040)."""
    kept: list[float] = []
    for v in sorted(values):
        if not kept or v >= kept[-1] * min_ratio:
            kept.append(v)
    return kept


def plot_curves(curves: pd.DataFrame):
    """Epsilon against steps (left) and against sigma (right) per accountant, one row
    per task; estimates dashed, upper bounds solid."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker as mticker
    import seaborn as sns

    tasks = list(dict.fromkeys(curves.task))
    methods = list(dict.fromkeys(curves.method))
    palette = dict(zip(methods, sns.color_palette("colorblind", len(methods)), strict=True))
    fig, axes = plt.subplots(len(tasks), 2, figsize=(9.5, 2.9 * len(tasks)), squeeze=False)
    for row, task in enumerate(tasks):
        for col, (curve, x) in enumerate([("vs steps", "steps"), ("vs sigma", "sigma")]):
            ax = axes[row, col]
            part = curves[(curves.task == task) & (curves.curve == curve)]
            sns.lineplot(
                data=part, x=x, y="epsilon", hue="method", style="kind", markers=True,
                dashes={"upper bound": "", "estimate": (3, 2)}, ax=ax, palette=palette,
                hue_order=methods, legend=row == 0 and col == 1, linewidth=1.4, alpha=0.85,
            )  # fmt: skip
            q, fixed = part.q.iloc[0], part.sigma.iloc[0] if x == "steps" else part.steps.iloc[0]
            what = "sigma" if x == "steps" else "T"
            delta = part.delta.iloc[0]
            ax.set_title(f"{task}: q={q:.4f}, {what}={fixed:g}, δ={delta:g}", fontsize=10)
            if x == "steps":  # log axis, labelled at the steps computed, no minor labels
                ax.set_xscale("log")
                ax.xaxis.set_major_locator(mticker.FixedLocator(_spaced(part.steps.unique())))
                ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_formatter(mticker.NullFormatter())
                ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    legend = axes[0, 1].get_legend()
    if legend is not None:  # one legend under the figure, at the text's size
        handles, labels = axes[0, 1].get_legend_handles_labels()
        legend.remove()
        fig.legend(
            handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=10,
            frameon=False, bbox_to_anchor=(0.5, 0),
        )  # fmt: skip
        fig.tight_layout(rect=(0, 0.05 + 0.02 * (len(labels) // 6), 1, 1))
    else:
        fig.tight_layout()
    return attach(fig, curves)


def plot_finetune_audit(finetune: pd.DataFrame):
    """Edgeworth's under-count (PLD epsilon at its sigma vs the target) against steps."""
    import seaborn as sns

    frame = finetune.assign(**{"target epsilon": finetune.target.map("{:g}".format)})
    grid = sns.relplot(
        data=frame, x="steps", y="relative_error", hue="target epsilon", col="q", kind="line",
        marker="o", height=3.4, aspect=1.2, palette="colorblind",
    )  # fmt: skip
    for ax in grid.axes.flat:
        ax.set_xscale("log")
        ax.axhline(0, color="black", linewidth=0.8)
    grid.set_axis_labels("steps T", "(PLD eps - target) / PLD eps")
    return grid


def plot_accuracy(training: pd.DataFrame):
    """Validation accuracy per method, one point per seed."""
    import seaborn as sns

    rows = training[training.metric == "val_accuracy"].assign(accuracy=lambda d: 100 * d.value)
    order = [m for m in (NON_PRIVATE, *CALIBRATED) if m in set(rows.method)]
    order += sorted(set(rows.method) - set(order))
    grid = sns.catplot(
        data=rows, x="method", y="accuracy", kind="strip", order=order, height=3.4, aspect=1.4,
        size=7,
    )  # fmt: skip
    grid.set_axis_labels("noise calibrated by", "validation accuracy (%)")
    return grid
