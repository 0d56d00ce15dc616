"""Study 1's results: the tidy table of every run, the DP-induced change, and the tables
the notebook shows (the paper's layout, the summaries, the gaps, the privacy record)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...metrics import AUC_METRICS, bias_metrics, bootstrap_auc_ci
from .params import DPBiasParams
from .runs import DISTRIBUTION, NON_PRIVATE, SWEEP, _label

SUMMARY_METRICS = (*(f"power_mean_{m}" for m in AUC_METRICS), "overall_auc", "jigsaw_summary")
GAP_METRICS = (
    "parity_gap", "equal_opportunity_gap", "equalized_odds_gap", "positive_aeg", "negative_aeg",
)  # fmt: skip
# slopes below this (AUC per 10 points of share) are reported as flat: with one or two
# seeds and a few hundred test comments per group they are within the runs' noise
FLAT_SLOPE = 0.02


def results_table(params: DPBiasParams, runs: list[dict], data: pd.DataFrame) -> pd.DataFrame:
    """Tidy results: one row per run x subgroup x metric, with bootstrap intervals for
    the AUC metrics, plus each run's privacy (epsilon with its accountant) and cost."""
    test = data[data.split == "test"]
    labels = test.label.to_numpy()
    groups = {g: test[f"group_{g}"].to_numpy(bool) for g in params.subgroups}
    frames = []
    for r in runs:
        scores = np.asarray(r["scores"])
        table = bias_metrics(labels, scores, groups, threshold=params.threshold)
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
        frames.append(_with_run(table, r))
        frames.append(_with_run(_run_rows(r), r))
    out = pd.concat(frames, ignore_index=True)
    cols = [
        "experiment", "run", "epsilon", "seed", "share", "positive_rate", "train_size",
        "subgroup", "metric", "value", "reason", "ci_lower", "ci_upper", "ci_n_boot",
        "ci_reason", "accountant", "n_pos", "n_neg",
    ]  # fmt: skip
    return out[cols]


def _with_run(table: pd.DataFrame, r: dict) -> pd.DataFrame:
    return table.assign(
        experiment=r["experiment"],
        run=r["run"],
        epsilon=_label(r["epsilon"]),
        seed=r["seed"],
        share=r["share"] if r["share"] is not None else np.nan,
        positive_rate=r["positive_rate"] if r["positive_rate"] is not None else np.nan,
        train_size=r["train_size"],
    )


def _nan_if_none(x) -> float:
    return np.nan if x is None else float(x)


def _run_rows(r: dict) -> pd.DataFrame:
    """A run's privacy and cost as rows of subgroup "overall"."""
    h, p = r["history"], r["privacy"]
    rows = [
        ("train_seconds", r["seconds"], ""),
        ("steps", h["steps"], ""),
        ("best_epoch", h["best_epoch"] if h["best_epoch"] is not None else np.nan, ""),
    ]
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


def epsilon_table(results: pd.DataFrame, subgroups: list[str]) -> pd.DataFrame:
    """The paper's layout: one row per epsilon, Subgroup/BPSN/BNSP AUC per subgroup and
    the overall AUC, means over seeds."""
    sweep = results[results.experiment == SWEEP]
    metrics = [*AUC_METRICS, "overall_auc"]
    rows = sweep[sweep.metric.isin(metrics)]
    wide = rows.pivot_table(
        index="epsilon", columns=["metric", "subgroup"], values="value", aggfunc="mean"
    )
    cols = [(m, g) for m in AUC_METRICS for g in subgroups] + [("overall_auc", "overall")]
    wide = wide.reindex(columns=pd.MultiIndex.from_tuples(cols))
    return wide.reindex(epsilon_order(wide.index))


def dp_change(results: pd.DataFrame) -> pd.DataFrame:
    """DP-induced change of each AUC metric per subgroup, epsilon and seed: the DP
    model's value minus the non-private model's of the same seed (and setting)."""
    keys = ["experiment", "seed", "share", "positive_rate", "subgroup", "metric"]
    auc = results[results.metric.isin([*AUC_METRICS, "overall_auc"])].copy()
    auc[["share", "positive_rate"]] = auc[["share", "positive_rate"]].fillna(-1)
    base = auc[auc.epsilon == NON_PRIVATE][[*keys, "value"]].rename(columns={"value": "base"})
    dp = auc[auc.epsilon != NON_PRIVATE].merge(base, on=keys, how="left")
    dp["change"] = dp["value"] - dp["base"]
    dp[["share", "positive_rate"]] = dp[["share", "positive_rate"]].replace(-1, np.nan)
    return dp[[*keys, "epsilon", "value", "base", "change"]]


def privacy_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per private run: the target, epsilon by the calibrating accountant and by the
    rigorous bound (each named), sigma, q, delta, the sampling scheme and the steps
    actually taken beside those planned."""
    rows = results[(results.subgroup == "overall") & (results.epsilon != NON_PRIVATE)]
    wanted = [
        "target_epsilon", "epsilon", "epsilon_bound", "noise_multiplier", "sample_rate",
        "delta", "steps", "planned_steps",
    ]  # fmt: skip
    text = ["epsilon", "epsilon_bound", "poisson_sampling"]
    rows = rows[rows.metric.isin([*wanted, *text])]
    wide = rows.pivot_table(
        index=["experiment", "run"], columns="metric", values="value", aggfunc="first"
    ).reindex(columns=wanted)
    acc = rows[rows.metric.isin(text)].pivot_table(
        index=["experiment", "run"], columns="metric", values="accountant", aggfunc="first"
    )
    wide["accountant"] = acc["epsilon"]
    wide["bound_by"] = acc["epsilon_bound"]
    wide["sampling"] = acc["poisson_sampling"]
    wide[["steps", "planned_steps"]] = wide[["steps", "planned_steps"]].astype(int)
    out = wide.reset_index()
    return out[["experiment", "run", *wanted, "accountant", "bound_by", "sampling"]]


def direction_summary(changes: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per metric: the mean DP-induced change over subgroups and seeds at each epsilon,
    and the share of (subgroup, epsilon) cells where DP lowered the metric; the paper's
    figures beside ours when ``paper`` (from :func:`paper_results`) is given."""
    ours = changes[changes.experiment == SWEEP]
    cell = ours.groupby(["metric", "subgroup", "epsilon"]).change.mean().reset_index()
    out = cell.groupby("metric").agg(
        mean_change=("change", "mean"), share_lowered=("change", lambda c: float((c < 0).mean()))
    )
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


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per epsilon (privacy sweep, mean over seeds): the power mean (p = -5) of each AUC
    metric over subgroups, the overall AUC and the Jigsaw summary of each run."""
    rows = results[(results.experiment == SWEEP) & results.metric.isin(SUMMARY_METRICS)]
    wide = rows.pivot_table(index="epsilon", columns="metric", values="value", aggfunc="mean")
    return wide.reindex(index=epsilon_order(wide.index), columns=list(SUMMARY_METRICS))


def gap_table(results: pd.DataFrame) -> pd.DataFrame:
    """Threshold gaps and average equality gaps per epsilon and subgroup (privacy sweep,
    mean over seeds): rows epsilon, columns (metric, subgroup)."""
    rows = results[(results.experiment == SWEEP) & results.metric.isin(GAP_METRICS)]
    wide = rows.pivot_table(
        index="epsilon", columns=["metric", "subgroup"], values="value", aggfunc="mean"
    )
    return wide.reindex(index=epsilon_order(wide.index), columns=list(GAP_METRICS), level=0)


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
