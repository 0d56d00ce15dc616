"""AUC-based and threshold bias metrics per identity subgroup (Borkan et al. 2019, as used
by Islam et al. 2024), with explicit reasons where a metric is undefined.

For a subgroup g, D_g is its test examples and D_bg ("background") every other test
example; + and - are the true labels and the score is the predicted probability of the
positive class.

- Subgroup AUC = AUC(D_g+ u D_g-), BPSN AUC = AUC(D_g- u D_bg+), BNSP AUC = AUC(D_g+ u D_bg-).
- Positive AEG = ``1/2 - MWU(D_g+, D_bg+) / (|D_g+| |D_bg+|)``, negative AEG likewise on the
  negatives, with MWU(x, y) = #{x_i > y_j} + #{x_i = y_j} / 2. A positive AEG means the
  subgroup's examples are scored *lower* than the background's of the same class (Borkan et
  al.). Beware when comparing tools: the authors' reference code,
  ``0.5 - mannwhitneyu(background, subgroup, alternative='less').statistic / (n_b n_s)``,
  gave this sign under SciPy < 1.7, whose statistic was the U of the *second* sample, and the
  opposite sign under SciPy >= 1.7, whose statistic is the U of the *first*
  (:func:`aeg_reference_code` computes both).
- At a threshold t (predicted positive when score >= t): the subgroup's and the
  background's positive rate, TPR and FPR, each over its own examples; parity gap =
  rate_g - rate_bg, equal-opportunity gap = TPR_g - TPR_bg, FPR gap = FPR_g - FPR_bg and
  equalised-odds gap = ``max(|TPR gap|, |FPR gap|)``.
- Jigsaw summary = 0.25 AUC_overall + 0.75 mean over the three AUC metrics of the power
  mean M_p over subgroups, M_p(s) = (sum s_i^p / N)^(1/p) with p = -5.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import rankdata

AUC_METRICS = ("subgroup_auc", "bpsn_auc", "bnsp_auc")
AEG_METRICS = ("positive_aeg", "negative_aeg")
THRESHOLD_METRICS = (
    "positive_rate",
    "tpr",
    "fpr",
    "background_positive_rate",
    "background_tpr",
    "background_fpr",
    "parity_gap",
    "equal_opportunity_gap",
    "fpr_gap",
    "equalized_odds_gap",
)
SUBGROUP_METRICS = AUC_METRICS + AEG_METRICS + THRESHOLD_METRICS
OVERALL = "overall"
POWER = -5.0
COLUMNS = ["subgroup", "metric", "value", "reason", "n_pos", "n_neg"]


def mwu_fraction(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 over all pairs: ``MWU(x, y) / (|x| |y|)``. NaN if either is empty."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) == 0 or len(y) == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([x, y]))  # average ranks handle ties
    u = ranks[: len(x)].sum() - len(x) * (len(x) + 1) / 2
    return float(u / (len(x) * len(y)))


def aeg_reference_code(subgroup, background, *, scipy_before_1_7: bool) -> float:
    """The average equality gap as the paper's reference code computes it —
    ``0.5 - mannwhitneyu(background, subgroup, alternative='less').statistic / (n_b n_s)`` —
    with SciPy's statistic as it was before 1.7 (the U of the second sample: our sign) or
    as it is since (the U of the first: the opposite sign)."""
    from scipy.stats import mannwhitneyu

    subgroup, background = np.asarray(subgroup, float), np.asarray(background, float)
    pairs = len(subgroup) * len(background)
    u_first = float(mannwhitneyu(background, subgroup, alternative="less").statistic)
    u = pairs - u_first if scipy_before_1_7 else u_first
    return 0.5 - u / pairs


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC = P(score of a positive > score of a negative), ties counting 1/2."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, float)
    return mwu_fraction(scores[labels], scores[~labels])


def power_mean(values, p: float = POWER) -> float:
    """(sum v_i^p / N)^(1/p); NaN if any value is NaN or the list is empty."""
    v = np.asarray(values, float)
    if v.size == 0 or np.isnan(v).any():
        return float("nan")
    if (v < 0).any():
        raise ValueError("power_mean needs non-negative values")
    if p < 0 and (v == 0).any():
        return 0.0  # the limit: a zero dominates a negative-power mean
    if p == 0:
        return float(np.exp(np.mean(np.log(v))))
    return float(np.mean(v**p) ** (1.0 / p))


def _check(labels, scores, groups) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    y = np.asarray(labels)
    s = np.asarray(scores, float)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise ValueError(f"labels and scores must be 1-D and equally long ({y.shape}, {s.shape})")
    if len(y) == 0:
        raise ValueError("no test examples")
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise ValueError(f"labels must be 0/1, got values {sorted(set(y.tolist()))[:5]}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    if isinstance(groups, pd.DataFrame):
        groups = {c: groups[c].to_numpy() for c in groups.columns}
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("groups must be a non-empty mapping of subgroup name to a boolean mask")
    masks = {}
    for name, m in groups.items():
        m = np.asarray(m)
        if m.shape != y.shape or m.dtype != bool:
            raise ValueError(f"subgroup {name!r}: mask must be boolean with {len(y)} entries")
        if name == OVERALL:
            raise ValueError(f"{OVERALL!r} is reserved for the whole test set")
        masks[str(name)] = m
    return y.astype(bool), s, masks


def _rate(pred: np.ndarray, mask: np.ndarray) -> float:
    return float(pred[mask].mean()) if mask.any() else float("nan")


def _subgroup_rows(y, s, g, threshold) -> dict[str, tuple[float, str]]:
    """Every subgroup metric -> (value, reason); reason is '' when the value is defined."""
    bg = ~g
    gp, gn, bp, bn = g & y, g & ~y, bg & y, bg & ~y
    out: dict[str, tuple[float, str]] = {}

    def need(pairs: list[tuple[np.ndarray, str]]) -> str:
        return "; ".join(f"no {what}" for m, what in pairs if not m.any())

    def put(metric, value_fn, pairs):
        reason = need(pairs)
        out[metric] = (float("nan"), reason) if reason else (value_fn(), "")

    sp, sn = "subgroup positives", "subgroup negatives"
    bgp, bgn = "background positives", "background negatives"
    put("subgroup_auc", lambda: mwu_fraction(s[gp], s[gn]), [(gp, sp), (gn, sn)])
    put("bpsn_auc", lambda: mwu_fraction(s[bp], s[gn]), [(bp, bgp), (gn, sn)])
    put("bnsp_auc", lambda: mwu_fraction(s[gp], s[bn]), [(gp, sp), (bn, bgn)])
    put("positive_aeg", lambda: 0.5 - mwu_fraction(s[gp], s[bp]), [(gp, sp), (bp, bgp)])
    put("negative_aeg", lambda: 0.5 - mwu_fraction(s[gn], s[bn]), [(gn, sn), (bn, bgn)])

    pred = s >= threshold
    put("positive_rate", lambda: _rate(pred, g), [(g, "subgroup examples")])
    put("tpr", lambda: _rate(pred, gp), [(gp, sp)])
    put("fpr", lambda: _rate(pred, gn), [(gn, sn)])
    put("background_positive_rate", lambda: _rate(pred, bg), [(bg, "background examples")])
    put("background_tpr", lambda: _rate(pred, bp), [(bp, bgp)])
    put("background_fpr", lambda: _rate(pred, bn), [(bn, bgn)])
    for gap, a, b in [
        ("parity_gap", "positive_rate", "background_positive_rate"),
        ("equal_opportunity_gap", "tpr", "background_tpr"),
        ("fpr_gap", "fpr", "background_fpr"),
    ]:
        reason = "; ".join(r for r in (out[a][1], out[b][1]) if r)
        out[gap] = (float("nan"), reason) if reason else (out[a][0] - out[b][0], "")
    tpr_gap, fpr_gap = out["equal_opportunity_gap"], out["fpr_gap"]
    reason = "; ".join(r for r in (tpr_gap[1], fpr_gap[1]) if r)
    out["equalized_odds_gap"] = (
        (float("nan"), reason) if reason else (max(abs(tpr_gap[0]), abs(fpr_gap[0])), "")
    )
    return out


def bias_metrics(labels, scores, groups, *, threshold: float = 0.5) -> pd.DataFrame:
    """Every bias metric of every subgroup, tidy: columns ``subgroup, metric, value,
    reason, n_pos, n_neg`` (the subgroup's test positives and negatives).

    ``groups`` maps subgroup names to boolean masks over the test examples (or is a
    DataFrame of boolean columns); subgroups may overlap. Rows with subgroup "overall"
    hold ``overall_auc``, the power means ``power_mean_<metric>`` and ``jigsaw_summary``.
    An undefined value is NaN with the reason (e.g. "no subgroup positives").
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold={threshold!r} must be in [0, 1]")
    y, s, masks = _check(labels, scores, groups)
    rows = []
    for name, g in masks.items():
        n_pos, n_neg = int((g & y).sum()), int((g & ~y).sum())
        for metric, (value, reason) in _subgroup_rows(y, s, g, threshold).items():
            rows.append((name, metric, value, reason, n_pos, n_neg))
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    overall = auc(y, s)
    overall_reason = "" if n_pos and n_neg else "test set has one class"
    rows.append((OVERALL, "overall_auc", overall, overall_reason, n_pos, n_neg))
    table = pd.DataFrame(rows, columns=COLUMNS)
    means = []
    for metric in AUC_METRICS:
        vals = table[(table.metric == metric) & (table.subgroup != OVERALL)]
        undefined = vals.loc[vals.value.isna(), "subgroup"].tolist()
        pm = power_mean(vals.value.to_numpy())
        reason = f"undefined for {', '.join(undefined)}" if undefined else ""
        rows.append((OVERALL, f"power_mean_{metric}", pm, reason, n_pos, n_neg))
        means.append(pm)
    summary = 0.25 * overall + 0.75 * float(np.mean(means))
    bad = [r[1] for r in rows[-3:] if r[3]] + (["overall_auc"] if overall_reason else [])
    rows.append(
        (OVERALL, "jigsaw_summary", summary, f"needs {', '.join(bad)}" if bad else "", n_pos, n_neg)
    )
    return pd.DataFrame(rows, columns=COLUMNS)


def bootstrap_auc_ci(
    labels,
    scores,
    groups,
    *,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Percentile bootstrap intervals for the AUC metrics, resampling test examples with
    replacement (group membership travels with each example). Columns ``subgroup,
    metric, lower, upper, n_boot, reason``: ``n_boot`` counts the replicates where the
    metric was defined; when fewer than half were (a subgroup with a handful of one
    class), the interval is NaN with the reason, as the remaining replicates would be a
    biased, conditional sample."""
    if not isinstance(n_boot, int) or n_boot < 2:
        raise ValueError(f"n_boot={n_boot!r} must be an integer >= 2")
    if not 0 < level < 1:
        raise ValueError(f"level={level!r} must be in (0, 1)")
    y, s, masks = _check(labels, scores, groups)
    rng = np.random.default_rng(seed)
    draws: dict[tuple[str, str], list[float]] = {}
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        yb, sb = y[i], s[i]
        draws.setdefault((OVERALL, "overall_auc"), []).append(auc(yb, sb))
        for name, m in masks.items():
            g = m[i]
            gp, gn, bp, bn = g & yb, g & ~yb, ~g & yb, ~g & ~yb
            draws.setdefault((name, "subgroup_auc"), []).append(mwu_fraction(sb[gp], sb[gn]))
            draws.setdefault((name, "bpsn_auc"), []).append(mwu_fraction(sb[bp], sb[gn]))
            draws.setdefault((name, "bnsp_auc"), []).append(mwu_fraction(sb[gp], sb[bn]))
    tail = (1 - level) / 2
    rows = []
    for (name, metric), vals in draws.items():
        v = np.asarray(vals)
        v = v[~np.isnan(v)]
        if 2 * len(v) >= n_boot:
            lo, hi = np.quantile(v, [tail, 1 - tail])
            reason = ""
        else:
            lo = hi = np.nan
            reason = f"defined in only {len(v)} of {n_boot} bootstrap replicates"
        rows.append((name, metric, float(lo), float(hi), len(v), reason))
    return pd.DataFrame(rows, columns=["subgroup", "metric", "lower", "upper", "n_boot", "reason"])
