"""Study 3's figures."""

from __future__ import annotations

import pandas as pd

from ...figures import attach, label_points, nothing_to_show
from .params import BASE, METHOD_LABELS, METHODS, SPLIT_LABELS


def _method_of(label: str) -> str:
    return label.split("-r")[0]


def plot_privacy_utility(table: pd.DataFrame, results: pd.DataFrame):
    """Leakage against utility, one point per method; LoRA ranks joined as a path; the base
    model (no fine-tuning: zero leakage by definition) as a cross."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    models = list(dict.fromkeys(table.index.get_level_values("model")))
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.2), squeeze=False)
    palette = dict(zip(METHODS, sns.color_palette("colorblind", len(METHODS)), strict=True))
    for ax, model in zip(axes[0], models, strict=True):
        part = table.loc[model]
        base = results[
            (results.model == model)
            & (results.label == BASE)
            & (results.subgroup == "all")
            & (results.metric == "utility_loss")
        ]["value"]
        if not base.empty:
            ax.scatter(base.iloc[0], 0.0, marker="x", color="black", s=60, label="base model")
        lora = part[[lbl.startswith("lora") for lbl in part.index]]
        lora = lora.assign(rank=[int(lbl.split("-r")[1]) for lbl in lora.index]).sort_values("rank")
        if len(lora) > 1:
            ax.plot(
                lora["utility: test loss (non-sensitive)"],
                lora["leakage (nats/token)"],
                color=palette["lora"],
                lw=1,
                alpha=0.6,
            )
        names, xs, ys = [], [], []
        for label, row in part.iterrows():
            if label == BASE:
                continue
            method = _method_of(label)
            x, y = row["utility: test loss (non-sensitive)"], row["leakage (nats/token)"]
            ax.errorbar(
                x,
                y,
                yerr=[[y - row["leakage 95% CI low"]], [row["leakage 95% CI high"] - y]],
                fmt="o",
                color=palette[method],
                capsize=3,
            )
            names.append(label)
            xs.append(x)
            ys.append(y)
        ax.axhline(0, color="grey", lw=0.5)
        label_points(ax, xs, ys, names)
        ax.set_xlabel("utility: test loss on non-sensitive tokens (nats, lower is better)")
        ax.set_ylabel("privacy leakage (nats/token, lower is better)")
        ax.set_title(model)
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=palette[m], label=METHOD_LABELS[m])
        for m in METHODS
    ]
    handles.append(plt.Line2D([], [], marker="x", ls="", color="black", label="base model"))
    axes[0][-1].legend(handles=handles, fontsize=9, loc="best")
    fig.tight_layout()
    points = table.reset_index()[
        ["model", "label", "utility: test loss (non-sensitive)", "leakage (nats/token)",
         "leakage 95% CI low", "leakage 95% CI high"]
    ]  # fmt: skip
    return attach(fig, points)


def plot_gains(results: pd.DataFrame):
    """Per-token log-likelihood gain over the base model on the four token sets."""
    import seaborn as sns

    part = results[
        (results.metric == "gain")
        & results.subgroup.str.contains("/")
        & (results.label != BASE)
        & ~results.subgroup.str.startswith(("mia", "canary"))
    ].copy()
    part[["split", "tokens"]] = part.subgroup.str.split("/", expand=True)
    part["token set"] = part.split.map(SPLIT_LABELS) + ", " + part.tokens.str.replace("_", "-")
    grid = sns.catplot(
        data=part,
        x="label",
        y="value",
        hue="token set",
        col="model",
        kind="bar",
        height=3.8,
        aspect=1.6,
        palette="Paired",
        errorbar=None,
    )
    grid.set_axis_labels("", "log-likelihood gain over base (nats/token)")
    for ax in grid.axes.flat:
        ax.axhline(0, color="grey", lw=0.5)
        ax.tick_params(axis="x", rotation=30)
    return grid


def plot_exposure(results: pd.DataFrame):
    """Canary exposure against the number of times the canary was inserted."""
    import seaborn as sns

    part = results[(results.metric == "exposure") & results.subgroup.str.startswith("canary/")]
    if part.empty:
        return nothing_to_show("no canary in this run (CANARY_REPEATS is empty): no exposure")
    part = part.assign(repeats=part.subgroup.str[7:-1].astype(int))
    grid = sns.relplot(
        data=part,
        x="repeats",
        y="value",
        hue="label",
        col="model",
        kind="line",
        marker="o",
        height=3.6,
        aspect=1.3,
        errorbar=None,
    )
    top = results[results.metric == "max_exposure"]["value"].max()
    for ax in grid.axes.flat:
        ax.axhline(top, color="grey", ls="--", lw=0.8)
        ax.set_xscale("log", base=2)
    grid.set_axis_labels("times the canary is in the training set", "exposure (bits)")
    return grid
