"""Study 3's figures."""

from __future__ import annotations

import pandas as pd

from ...figures import attach, label_points, nothing_to_show
from .params import BASE, METHOD_LABELS, METHODS, SPLIT_LABELS


def _method_of(label: str) -> str:
    return label.split("-r")[0]


def _palette():
    import seaborn as sns

    return dict(zip(METHODS, sns.color_palette("colorblind", len(METHODS)), strict=True))


def plot_privacy_utility(table: pd.DataFrame, results: pd.DataFrame):
    """Leakage against utility, one point per method; LoRA ranks joined as a path; the base
    model (no fine-tuning: zero leakage by definition) as a cross."""
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(table.index.get_level_values("model")))
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.2), squeeze=False)
    palette = _palette()
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
    chance = results[results.metric == "chance_exposure"]["value"].max()
    lines = (
        ("chance", chance, "firebrick", ":", "bottom"),
        ("largest possible", top, "grey", "--", "top"),
    )
    for ax in grid.axes.flat:
        for text, y, color, style, va in lines:
            ax.axhline(y, color=color, ls=style, lw=0.9)
            ax.annotate(
                text, (1.0, y), xycoords=("axes fraction", "data"),
                ha="right", va=va, fontsize=8, color=color,
            )  # fmt: skip
        ax.set_xscale("log", base=2)
    grid.set_axis_labels("times the canary is in the training set", "exposure (bits)")
    return grid


def plot_trajectories(traj: pd.DataFrame, matched: pd.DataFrame):
    """Each run's path through the leakage-utility plane, from the base model (step 0) to
    the end of training; dotted verticals at the matched-utility levels."""
    import matplotlib.pyplot as plt

    if traj.empty:
        return nothing_to_show("no fine-tuning run in this run: no trajectory")
    models = list(dict.fromkeys(traj.model))
    fig, axes = plt.subplots(1, len(models), figsize=(6.4 * len(models), 4.6), squeeze=False)
    palette = _palette()
    styles = ["-", "--", ":", "-."]
    for ax, model in zip(axes[0], models, strict=True):
        part = traj[traj.model == model]
        seen: dict[str, int] = {}
        for label, run in part.groupby("label", sort=False):
            method = _method_of(label)
            ls = styles[seen.setdefault(method, 0) % len(styles)]
            seen[method] += 1
            run = run.sort_values("step")
            ax.plot(
                run.utility_loss,
                run.leakage,
                ls=ls,
                marker="o",
                ms=3.5,
                color=palette[method],
                label=label,
            )
            ax.fill_between(
                run.utility_loss,
                run.leakage_ci_low,
                run.leakage_ci_high,
                color=palette[method],
                alpha=0.12,
                lw=0,
            )
        levels = matched[matched.model == model].drop_duplicates("share")
        for _, lv in levels.iterrows():
            ax.axvline(lv.utility_level, color="grey", ls=":", lw=0.8)
            ax.annotate(
                f"{lv.share:.0%}",
                (lv.utility_level, 1),
                xycoords=("data", "axes fraction"),
                ha="center",
                va="bottom",
                fontsize=8,
                color="grey",
            )
        ax.axhline(0, color="grey", lw=0.5)
        ax.invert_xaxis()  # training moves right: better utility
        ax.set_xlabel("utility: test loss on non-sensitive tokens (nats; training moves right)")
        ax.set_ylabel("privacy leakage (nats/token)")
        ax.set_title(model, pad=14)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return attach(fig, traj)


def plot_matched_utility(matched: pd.DataFrame):
    """Leakage at matched utility: one panel per model, x = share of full fine-tuning's
    utility gain, one line per run with its bootstrap interval; runs that do not reach a
    level have no point there."""
    import matplotlib.pyplot as plt

    reached = matched[matched.reached]
    if reached.empty:
        return nothing_to_show("no run reaches any matched-utility level")
    models = list(dict.fromkeys(reached.model))
    fig, axes = plt.subplots(1, len(models), figsize=(6.4 * len(models), 4.2), squeeze=False)
    palette = _palette()
    labels = list(dict.fromkeys(reached.label))
    offsets = {lbl: (i - (len(labels) - 1) / 2) * 0.012 for i, lbl in enumerate(labels)}
    for ax, model in zip(axes[0], models, strict=True):
        for label, run in reached[reached.model == model].groupby("label", sort=False):
            x = run.share + offsets[label]
            ax.errorbar(
                x,
                run.leakage,
                # a percentile interval of an interpolated value may miss the estimate
                yerr=[
                    (run.leakage - run.leakage_ci_low).clip(lower=0).fillna(0),
                    (run.leakage_ci_high - run.leakage).clip(lower=0).fillna(0),
                ],
                marker="o",
                capsize=3,
                color=palette[_method_of(label)],
                label=label,
                ls="-" if not label.startswith("dp_lora") else "--",
            )
        ax.axhline(0, color="grey", lw=0.5)
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
        ax.set_xlabel("utility level: share of full fine-tuning's gain in test loss")
        ax.set_ylabel("leakage at that utility (nats/token)")
        ax.set_title(model)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return attach(fig, matched)


def plot_epsilon_curve(table: pd.DataFrame):
    """DP-LoRA's utility (end of training) against its epsilon, with the base model, full
    fine-tuning and LoRA as horizontal references."""
    import matplotlib.pyplot as plt

    rows = table.reset_index()
    dp = rows[rows.label.str.startswith("dp_lora")]
    if dp.empty:
        return nothing_to_show("no DP-LoRA run: no utility against epsilon")
    models = list(dict.fromkeys(rows.model))
    fig, axes = plt.subplots(1, len(models), figsize=(6.0 * len(models), 3.8), squeeze=False)
    palette = _palette()
    util = "utility: test loss (non-sensitive)"
    for ax, model in zip(axes[0], models, strict=True):
        part = rows[rows.model == model]
        mine = part[part.label.str.startswith("dp_lora")].sort_values("epsilon")
        ax.plot(mine.epsilon, mine[util], marker="o", color=palette["dp_lora"], label="DP-LoRA")
        for label, row in part.set_index("label").iterrows():
            if label.startswith("dp_lora"):
                continue
            method = "base" if label == BASE else _method_of(label)
            if method == "dp_full":
                ax.plot(
                    [row["epsilon"]], [row[util]], marker="s", ls="",
                    color=palette["dp_full"], label="DP full",
                )  # fmt: skip
                continue
            color = "black" if method == "base" else palette[method]
            ax.axhline(row[util], color=color, lw=0.8, ls=":" if method == "base" else "-")
            ax.annotate(
                label, (1.0, row[util]), xycoords=("axes fraction", "data"),
                ha="right", va="bottom", fontsize=8, color=color,
            )  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("target epsilon (log scale)")
        ax.set_ylabel("test loss, non-sensitive tokens")
        ax.set_title(model)
        ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    return attach(fig, rows[["model", "label", "epsilon", util]])
