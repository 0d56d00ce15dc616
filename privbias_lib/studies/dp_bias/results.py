"""Study 1's results: the tidy table of every run, the DP-induced change, and the tables
the notebook shows (the paper's layout, the summaries, the gaps, the privacy record)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...metrics import AUC_METRICS, bias_metrics, bootstrap_auc_ci
from ...metrics.bias import THRESHOLD_METRICS
from .params import DPBiasParams
from .runs import BASELINE, DISTRIBUTION, NON_PRIVATE, SHARED, SWEEP, TUNING, _label

VAL_RATE = "@val_rate"  # a threshold metric at the validation positive rate's threshold

SUMMARY_METRICS = (*(f"power_mean_{m}" for m in AUC_METRICS), "overall_auc", "jigsaw_summary")
GAP_METRICS = (
    "parity_gap", "equal_opportunity_gap", "equalized_odds_gap", "positive_aeg", "negative_aeg",
)  # fmt: skip
# slopes below this (AUC per 10 points of share) are reported as flat: with one or two
# seeds and a few hundred test comments per group they are within the runs' noise
FLAT_SLOPE = 0.02


def val_rate_threshold(val_scores, val_labels) -> float:
    """The threshold a fair reading of the threshold metrics uses: the score above which
    the validation split gets as many predicted positives as it has positives (a model
    whose scores all sit above 0.5 is no longer "fair" by predicting one class)."""
    scores, labels = np.asarray(val_scores, float), np.asarray(val_labels)
    return float(np.quantile(scores, 1 - labels.mean(), method="higher"))


def _metric_rows(params: DPBiasParams, r: dict, labels, groups, val_labels) -> pd.DataFrame:
    """A model's bias metrics: threshold metrics at ``THRESHOLD`` and, suffixed
    ``@val_rate``, at the validation positive rate's threshold; bootstrap intervals."""
    scores = np.asarray(r["scores"])
    table = bias_metrics(labels, scores, groups, threshold=params.threshold)
    if "val_scores" in r:
        cut = val_rate_threshold(r["val_scores"], val_labels)
        fair = bias_metrics(labels, scores, groups, threshold=cut)
        fair = fair[fair.metric.isin(THRESHOLD_METRICS)].assign(
            metric=lambda d: d.metric + VAL_RATE
        )
        cut_row = {"subgroup": "overall", "metric": "threshold" + VAL_RATE, "value": cut,
                   "reason": "", "n_pos": np.nan, "n_neg": np.nan}  # fmt: skip
        table = pd.concat([table, fair, pd.DataFrame([cut_row])], ignore_index=True)
    if params.bootstrap:
        ci = bootstrap_auc_ci(
            labels, scores, groups, n_boot=params.bootstrap, seed=r["seed"]
        ).rename(columns={"lower": "ci_lower", "upper": "ci_upper"})
        ci = ci.rename(columns={"n_boot": "ci_n_boot", "reason": "ci_reason"})
        table = table.merge(ci, on=["subgroup", "metric"], how="left")
    else:
        table = table.assign(ci_lower=np.nan, ci_upper=np.nan, ci_n_boot=np.nan)
        table["ci_reason"] = ""
    table["ci_reason"] = table["ci_reason"].fillna("")
    table["accountant"] = ""
    return table


def results_table(params: DPBiasParams, runs: list[dict], data: pd.DataFrame) -> pd.DataFrame:
    """Tidy results: one row per run x subgroup x metric — every model's bias metrics
    (threshold metrics also at the validation positive rate) with bootstrap intervals for
    the AUC metrics, each run's privacy (epsilon with its accountant), setting and cost,
    and each tuned model's tuning cost. The tuned recipe's trials get their run rows only."""
    from .tuning import tuned_models, tuning_cost_rows

    test = data[data.split == "test"]
    labels = test.label.to_numpy()
    val_labels = data[data.split == "validation"].label.to_numpy()
    groups = {g: test[f"group_{g}"].to_numpy(bool) for g in params.subgroups}
    frames = []
    models = tuned_models(params, runs) + [r for r in runs if r["experiment"] == DISTRIBUTION]
    for r in models:
        frames.append(_with_run(_metric_rows(params, r, labels, groups, val_labels), r))
        frames.append(_with_run(_run_rows(params, r), r))
    for r in runs:
        if r["experiment"] == TUNING:
            frames.append(_with_run(_run_rows(params, r), r))
        if r["experiment"] == BASELINE:
            rows = [("overall_auc", r["test_auc"]), ("val_auc", r["val_auc"]), ("C", r["C"])]
            table = pd.DataFrame(
                {"subgroup": "overall", "metric": [m for m, _ in rows],
                 "value": [float(v) for _, v in rows], "accountant": "non-private"}
            )  # fmt: skip
            frames.append(_with_run(table, {**r, "train_size": np.nan}))
    costs = tuning_cost_rows(params, runs)
    out = pd.concat(frames, ignore_index=True)
    if len(costs):
        costs = costs.assign(subgroup="overall", share=np.nan, positive_rate=np.nan, reason="",
                             ci_reason="")  # fmt: skip
        out = pd.concat([out, costs], ignore_index=True)
    cols = [
        "experiment", "recipe", "run", "epsilon", "seed", "share", "positive_rate",
        "train_size", "subgroup", "metric", "value", "reason", "ci_lower", "ci_upper",
        "ci_n_boot", "ci_reason", "accountant", "n_pos", "n_neg",
    ]  # fmt: skip
    out["reason"] = out["reason"].fillna("")
    out["ci_reason"] = out["ci_reason"].fillna("")
    out["accountant"] = out["accountant"].fillna("")
    return out[cols]


def _with_run(table: pd.DataFrame, r: dict) -> pd.DataFrame:
    return table.assign(
        experiment=r["experiment"],
        recipe=r.get("recipe", SHARED),
        run=r["run"],
        epsilon=_label(r["epsilon"]),
        seed=r["seed"],
        share=r["share"] if r["share"] is not None else np.nan,
        positive_rate=r["positive_rate"] if r["positive_rate"] is not None else np.nan,
        train_size=r["train_size"],
    )


def _nan_if_none(x) -> float:
    return np.nan if x is None else float(x)


def _run_rows(params: DPBiasParams, r: dict) -> pd.DataFrame:
    """A run's privacy, setting and cost as rows of subgroup "overall"."""
    h, p = r["history"], r["privacy"]
    hyper = r.get("hyper") or {}
    setting = {
        "learning_rate": hyper.get("LEARNING_RATE", params.learning_rate),
        "batch_size": hyper.get("BATCH_SIZE", params.batch_size),
        "epochs": hyper.get("EPOCHS", params.epochs),
        "max_grad_norm": hyper.get("MAX_GRAD_NORM", params.max_grad_norm),
    }
    rows = [
        ("train_seconds", r["seconds"], ""),
        ("steps", h["steps"], ""),
        ("best_epoch", h["best_epoch"] if h["best_epoch"] is not None else np.nan, ""),
        *((name, value, "") for name, value in setting.items()),
    ]
    if "val_auc" in r:
        rows.append(("val_auc", r["val_auc"], ""))
    if p is not None:
        rows += [
            ("epsilon", p["epsilon"], f"{p['accountant']} ({p['kind']})"),
            ("epsilon_bound", p["epsilon_bound"], f"{p['bound_accountant']} (upper bound)"),
            ("noise_multiplier", p["sigma"], ""),
            ("sample_rate", p["q"], ""),
            ("delta", p["delta"], ""),
            ("planned_steps", p["planned_steps"], ""),
            ("target_epsilon", _nan_if_none(p["target_epsilon"]), ""),
            ("poisson_sampling", float(p["sampling"] == "poisson"), p["sampling"]),
        ]
    return pd.DataFrame(
        {
            "subgroup": "overall",
            "metric": [m for m, _, _ in rows],
            "value": [float(v) for _, v, _ in rows],
            "accountant": [a for _, _, a in rows],
            "reason": "",
            "ci_lower": np.nan,
            "ci_upper": np.nan,
            "ci_n_boot": np.nan,
            "ci_reason": "",
            "n_pos": np.nan,
            "n_neg": np.nan,
        }
    )


def epsilon_order(labels) -> list[str]:
    """Epsilon labels sorted: "none" first, then increasing epsilon."""
    labels = set(labels)
    nums = sorted((x for x in labels if x != NON_PRIVATE), key=float)
    return ([NON_PRIVATE] if NON_PRIVATE in labels else []) + nums


def sweep_of(results: pd.DataFrame, recipe: str = SHARED) -> pd.DataFrame:
    """The privacy sweep under ``recipe``, with the non-private reference both share."""
    sweep = results[results.experiment == SWEEP]
    return sweep[(sweep.recipe == recipe) | (sweep.epsilon == NON_PRIVATE)]


def epsilon_table(
    results: pd.DataFrame, subgroups: list[str], recipe: str = SHARED
) -> pd.DataFrame:
    """The paper's layout: one row per epsilon, Subgroup/BPSN/BNSP AUC per subgroup and
    the overall AUC, means over seeds, under ``recipe``."""
    sweep = sweep_of(results, recipe)
    metrics = [*AUC_METRICS, "overall_auc"]
    rows = sweep[sweep.metric.isin(metrics)]
    wide = rows.pivot_table(
        index="epsilon", columns=["metric", "subgroup"], values="value", aggfunc="mean"
    )
    cols = [(m, g) for m in AUC_METRICS for g in subgroups] + [("overall_auc", "overall")]
    wide = wide.reindex(columns=pd.MultiIndex.from_tuples(cols))
    return wide.reindex(epsilon_order(wide.index))


def dp_change(results: pd.DataFrame) -> pd.DataFrame:
    """DP-induced change of each AUC metric per subgroup, epsilon, seed and recipe: the DP
    model's value minus the non-private model's of the same seed (and setting) — the one
    non-private reference serves both recipes."""
    keys = ["experiment", "seed", "share", "positive_rate", "subgroup", "metric"]
    if "recipe" not in results:  # results of one recipe (or written before there were two)
        results = results.assign(recipe=SHARED)
    auc = results[
        results.metric.isin([*AUC_METRICS, "overall_auc"])
        & results.experiment.isin([SWEEP, DISTRIBUTION])
    ].copy()
    auc[["share", "positive_rate"]] = auc[["share", "positive_rate"]].fillna(-1)
    base = auc[auc.epsilon == NON_PRIVATE][[*keys, "value"]].rename(columns={"value": "base"})
    dp = auc[auc.epsilon != NON_PRIVATE].merge(base, on=keys, how="left")
    dp["change"] = dp["value"] - dp["base"]
    dp[["share", "positive_rate"]] = dp[["share", "positive_rate"]].replace(-1, np.nan)
    return dp[[*keys, "recipe", "epsilon", "value", "base", "change"]]


def privacy_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per private run, the tuned recipe's trials included: the target, epsilon by the
    calibrating accountant and by the rigorous bound (each named), sigma, q, delta, the
    sampling scheme and the steps actually taken beside those planned."""
    rows = results[(results.subgroup == "overall") & (results.epsilon != NON_PRIVATE)]
    wanted = [
        "target_epsilon", "epsilon", "epsilon_bound", "noise_multiplier", "sample_rate",
        "delta", "steps", "planned_steps",
    ]  # fmt: skip
    text = ["epsilon", "epsilon_bound", "poisson_sampling"]
    rows = rows[rows.metric.isin([*wanted, *text])]
    wide = rows.pivot_table(
        index=["experiment", "recipe", "run"], columns="metric", values="value", aggfunc="first"
    ).reindex(columns=wanted)
    acc = rows[rows.metric.isin(text)].pivot_table(
        index=["experiment", "recipe", "run"], columns="metric", values="accountant",
        aggfunc="first",
    )  # fmt: skip
    wide["accountant"] = acc["epsilon"]
    wide["bound_by"] = acc["epsilon_bound"]
    wide["sampling"] = acc["poisson_sampling"]
    wide[["steps", "planned_steps"]] = wide[["steps", "planned_steps"]].astype(int)
    out = wide.reset_index()
    return out[["experiment", "recipe", "run", *wanted, "accountant", "bound_by", "sampling"]]


def direction_summary(changes: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per metric: the mean DP-induced change over subgroups and seeds at each epsilon,
    and the share of (subgroup, epsilon) cells where DP lowered the metric, under each
    recipe that ran; the paper's figures beside ours when ``paper`` (from
    :func:`paper_results`) is given."""
    ours = changes[changes.experiment == SWEEP]
    if "recipe" not in ours:
        ours = ours.assign(recipe=SHARED)
    cell = ours.groupby(["recipe", "metric", "subgroup", "epsilon"]).change.mean().reset_index()
    out = pd.DataFrame(index=pd.Index([*AUC_METRICS, "overall_auc"], name="metric"))
    for recipe, part in cell.groupby("recipe", sort=False):
        by = part.groupby("metric").change
        out[f"mean_change ({recipe})"] = by.mean()
        out[f"share_lowered ({recipe})"] = by.apply(lambda c: float((c < 0).mean()))
    if paper is not None:
        base = paper[paper.epsilon == NON_PRIVATE][["subgroup", "metric", "value"]]
        p = paper[paper.epsilon != NON_PRIVATE].merge(
            base, on=["subgroup", "metric"], suffixes=("", "_base")
        )
        p["change"] = p["value"] - p["value_base"]
        out["paper_mean_change"] = p.groupby("metric").change.mean()
        out["paper_share_lowered"] = p.groupby("metric").change.apply(
            lambda c: float((c < 0).mean())
        )
    return out.reindex([*AUC_METRICS, "overall_auc"])


def summary_table(results: pd.DataFrame, recipe: str = SHARED) -> pd.DataFrame:
    """Per epsilon (privacy sweep under ``recipe``, mean over seeds): the power mean
    (p = -5) of each AUC metric over subgroups, the overall AUC and the Jigsaw summary."""
    sweep = sweep_of(results, recipe)
    rows = sweep[sweep.metric.isin(SUMMARY_METRICS)]
    wide = rows.pivot_table(index="epsilon", columns="metric", values="value", aggfunc="mean")
    return wide.reindex(index=epsilon_order(wide.index), columns=list(SUMMARY_METRICS))


def gap_table(results: pd.DataFrame, recipe: str = SHARED, threshold: str = "") -> pd.DataFrame:
    """Threshold gaps and average equality gaps per epsilon and subgroup (privacy sweep
    under ``recipe``, mean over seeds): rows epsilon, columns (metric, subgroup); with
    ``threshold`` ``VAL_RATE``, the threshold gaps at the validation positive rate."""
    names = [m + threshold if m in THRESHOLD_METRICS else m for m in GAP_METRICS]
    sweep = sweep_of(results, recipe)
    rows = sweep[sweep.metric.isin(names)]
    wide = rows.pivot_table(  # a gap undefined everywhere (no background) stays, as NaN
        index="epsilon", columns=["metric", "subgroup"], values="value", aggfunc="mean",
        dropna=False,
    )  # fmt: skip
    return wide.reindex(index=epsilon_order(wide.index), columns=names, level=0)


def distribution_summary(changes: pd.DataFrame, group: str) -> pd.DataFrame:
    """Mean DP-induced change of ``group``'s metrics per (share, positive rate)."""
    rows = changes[(changes.experiment == DISTRIBUTION) & (changes.subgroup == group)]
    return rows.pivot_table(
        index=["positive_rate", "share"], columns="metric", values="change", aggfunc="mean"
    ).reindex(columns=list(AUC_METRICS))


def _trend(slope: float, first: float, last: float) -> str:
    """'about flat', or whether the change rises or falls with the share, and what that
    means when the change keeps its sign (a drop shrinking or growing, a gain likewise)."""
    if abs(slope) < FLAT_SLOPE:
        return "about flat"
    trend = f"the change {'rises' if slope > 0 else 'falls'} with the share"
    if first < 0 and last < 0:
        trend += f" (a drop {'shrinks' if slope > 0 else 'grows'})"
    elif first > 0 and last > 0:
        trend += f" (a gain {'grows' if slope > 0 else 'shrinks'})"
    return trend


def describe_distribution(changes: pd.DataFrame, group: str) -> str:
    """A plain-language statement of what the distribution experiment found: for each
    metric and positive rate, the DP-induced change at the smallest and the largest
    share and the least-squares slope per 10 points of share (under ``FLAT_SLOPE``:
    "about flat")."""
    table = distribution_summary(changes, group)
    if table.empty:
        return f"no distribution runs for {group!r}"
    lines = [f"DP-induced change of '{group}' metrics (DP minus non-private, mean over seeds):"]
    for rate, part in table.groupby(level="positive_rate"):
        shares = part.index.get_level_values("share").to_numpy(float)
        for metric in AUC_METRICS:
            y = part[metric].to_numpy(float)
            ok = ~np.isnan(y)
            if ok.sum() < 2:
                lines.append(f"  positive rate {rate:g}, {metric}: too few defined values")
                continue
            slope = np.polyfit(shares[ok], y[ok], 1)[0] * 0.1
            trend = _trend(slope, y[ok][0], y[ok][-1])
            lines.append(
                f"  positive rate {rate:g}, {metric}: {y[ok][0]:+.3f} at share "
                f"{shares[ok][0]:g} -> {y[ok][-1]:+.3f} at {shares[ok][-1]:g} "
                f"({slope:+.3f} per 10 points of share: {trend})"
            )
    return "\n".join(lines)
