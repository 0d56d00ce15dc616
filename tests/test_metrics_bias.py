"""Bias metrics against direct pair-counting computations on hand-made data."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from privbias_lib.metrics import auc, bias_metrics, bootstrap_auc_ci, power_mean


def pair_auc(pos, neg) -> float:
    """AUC by counting every (positive, negative) pair; ties count 1/2."""
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


# 12 test examples, scores with ties; two overlapping subgroups and one single-class one
Y = np.array([1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1])
S = np.array([0.9, 0.4, 0.4, 0.2, 0.7, 0.7, 0.5, 0.1, 0.6, 0.3, 0.4, 0.8])
A = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0], bool)
B = np.array([0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0], bool)  # overlaps A at 1, 2
C = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0], bool)  # negatives only
GROUPS = {"a": A, "b": B, "c": C}


def value(table, group, metric):
    row = table[(table.subgroup == group) & (table.metric == metric)]
    assert len(row) == 1
    return float(row.value.iloc[0]), str(row.reason.iloc[0])


def test_auc_matches_pair_counting_and_sklearn_with_ties():
    assert auc(Y, S) == pytest.approx(pair_auc(S[Y == 1], S[Y == 0]))
    assert auc(Y, S) == pytest.approx(roc_auc_score(Y, S))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = rng.integers(0, 10, 300) / 10  # many ties
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize("group", ["a", "b"])
def test_auc_metrics_and_aeg_equal_direct_computation(group):
    table = bias_metrics(Y, S, GROUPS)
    g = GROUPS[group]
    y = Y.astype(bool)
    gp, gn, bp, bn = S[g & y], S[g & ~y], S[~g & y], S[~g & ~y]
    assert value(table, group, "subgroup_auc")[0] == pytest.approx(pair_auc(gp, gn))
    assert value(table, group, "bpsn_auc")[0] == pytest.approx(pair_auc(bp, gn))
    assert value(table, group, "bnsp_auc")[0] == pytest.approx(pair_auc(gp, bn))
    assert value(table, group, "positive_aeg")[0] == pytest.approx(0.5 - pair_auc(gp, bp))
    assert value(table, group, "negative_aeg")[0] == pytest.approx(0.5 - pair_auc(gn, bn))
    counts = table[table.subgroup == group][["n_pos", "n_neg"]].drop_duplicates()
    assert counts.values.tolist() == [[int((g & y).sum()), int((g & ~y).sum())]]


def test_hand_computed_values_for_subgroup_a():
    # a: positives 0.9, 0.4, 0.3; negatives 0.4, 0.2 -> pairs: (0.9>0.4, 0.9>0.2,
    # 0.4=0.4 -> 1/2, 0.4>0.2, 0.3<0.4, 0.3>0.2) = 4.5 / 6
    table = bias_metrics(Y, S, GROUPS)
    assert value(table, "a", "subgroup_auc")[0] == pytest.approx(4.5 / 6)
    # at t = 0.5, a predicts positive only 0.9: rate 1/5, TPR 1/3, FPR 0/2;
    # background (7 examples: 0.7, 0.7, 0.5, 0.1, 0.6, 0.4, 0.8) predicts 5 of 7;
    # background positives 0.7, 0.5, 0.8 -> TPR 1; negatives 0.7, 0.1, 0.6, 0.4 -> FPR 2/4
    assert value(table, "a", "positive_rate")[0] == pytest.approx(1 / 5)
    assert value(table, "a", "background_positive_rate")[0] == pytest.approx(5 / 7)
    assert value(table, "a", "parity_gap")[0] == pytest.approx(1 / 5 - 5 / 7)
    assert value(table, "a", "equal_opportunity_gap")[0] == pytest.approx(1 / 3 - 1)
    assert value(table, "a", "fpr_gap")[0] == pytest.approx(0 - 2 / 4)
    assert value(table, "a", "equalized_odds_gap")[0] == pytest.approx(2 / 3)


def test_parity_gap_uses_each_groups_own_denominator():
    # 2 subgroup examples (1 predicted positive) among 10: the paper's code divided the
    # subgroup's count by the background size (1/8); the rate is 1/2
    y = np.array([1, 0] * 5)
    s = np.array([0.9, 0.1, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1])
    g = np.zeros(10, bool)
    g[:2] = True
    table = bias_metrics(y, s, {"g": g})
    assert value(table, "g", "positive_rate")[0] == pytest.approx(1 / 2)
    assert value(table, "g", "background_positive_rate")[0] == pytest.approx(3 / 8)
    assert value(table, "g", "parity_gap")[0] == pytest.approx(1 / 2 - 3 / 8)


def test_single_class_subgroup_gives_nan_with_a_reason():
    table = bias_metrics(Y, S, GROUPS)
    v, reason = value(table, "c", "subgroup_auc")
    assert np.isnan(v) and reason == "no subgroup positives"
    v, reason = value(table, "c", "bnsp_auc")
    assert np.isnan(v) and "no subgroup positives" in reason
    assert value(table, "c", "bpsn_auc")[1] == ""  # defined: it needs only negatives
    assert np.isnan(value(table, "c", "equalized_odds_gap")[0])
    pm, reason = value(table, "overall", "power_mean_subgroup_auc")
    assert np.isnan(pm) and "c" in reason
    summary, reason = value(table, "overall", "jigsaw_summary")
    assert np.isnan(summary) and "power_mean_subgroup_auc" in reason
    defined = table[table.reason == ""]
    assert defined.value.notna().all()
    assert (table.loc[table.value.isna(), "reason"] != "").all()


def test_power_mean_and_jigsaw_summary():
    s = np.array([0.9, 0.6, 0.8])
    assert power_mean(s) == pytest.approx(np.mean(s**-5.0) ** (-1 / 5))
    assert power_mean(s) < s.mean()  # p = -5 leans on the worst subgroup
    assert power_mean(s) > s.min()
    assert power_mean([0.7, 0.7]) == pytest.approx(0.7)
    assert np.isnan(power_mean([0.7, np.nan]))
    assert power_mean([0.0, 0.9]) == 0.0  # the limit as a value tends to 0, without warnings
    table = bias_metrics(Y, S, {"a": A, "b": B})
    pm = [
        power_mean([value(table, g, m)[0] for g in ("a", "b")])
        for m in ("subgroup_auc", "bpsn_auc", "bnsp_auc")
    ]
    expected = 0.25 * roc_auc_score(Y, S) + 0.75 * np.mean(pm)
    assert value(table, "overall", "jigsaw_summary")[0] == pytest.approx(expected)


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="equally long"):
        bias_metrics(Y, S[:-1], GROUPS)
    with pytest.raises(ValueError, match="boolean"):
        bias_metrics(Y, S, {"a": A.astype(int)})
    with pytest.raises(ValueError, match="0/1"):
        bias_metrics(Y * 2, S, GROUPS)
    with pytest.raises(ValueError, match="threshold"):
        bias_metrics(Y, S, GROUPS, threshold=1.5)
    with pytest.raises(ValueError, match="NaN"):
        bias_metrics(Y, np.where(A, np.nan, S), GROUPS)


def test_dataframe_groups_equal_dict_groups():
    df = pd.DataFrame(GROUPS)
    pd.testing.assert_frame_equal(bias_metrics(Y, S, df), bias_metrics(Y, S, GROUPS))


def test_bootstrap_interval_covers_the_estimate_and_shrinks_with_data():
    rng = np.random.default_rng(1)
    n = 2000
    y = rng.integers(0, 2, n)
    g = rng.random(n) < 0.3
    s = np.clip(0.5 + 0.25 * (y - 0.5) + 0.15 * rng.standard_normal(n) - 0.05 * g, 0, 1)
    ci = bootstrap_auc_ci(y, s, {"g": g}, n_boot=200, seed=0)
    table = bias_metrics(y, s, {"g": g})
    for metric in ("subgroup_auc", "bpsn_auc", "bnsp_auc"):
        row = ci[(ci.subgroup == "g") & (ci.metric == metric)].iloc[0]
        est = value(table, "g", metric)[0]
        assert row.lower < est < row.upper
        assert row.upper - row.lower < 0.08
    small = bootstrap_auc_ci(y[:200], s[:200], {"g": g[:200]}, n_boot=200, seed=0)
    width = lambda c: float((c.upper - c.lower)[c.metric == "bpsn_auc"].iloc[0])  # noqa: E731
    assert width(small) > 2 * width(ci)
    again = bootstrap_auc_ci(y, s, {"g": g}, n_boot=200, seed=0)
    pd.testing.assert_frame_equal(ci, again)


@pytest.mark.parametrize("group", ["a", "b"])
def test_threshold_metrics_equal_direct_counts(group):
    """Rates, TPR and FPR over each side's own examples, for overlapping groups too."""
    table = bias_metrics(Y, S, GROUPS, threshold=0.5)
    g, y, pred = GROUPS[group], Y.astype(bool), S >= 0.5
    direct = {
        "positive_rate": pred[g].mean(),
        "tpr": pred[g & y].mean(),
        "fpr": pred[g & ~y].mean(),
        "background_positive_rate": pred[~g].mean(),
        "background_tpr": pred[~g & y].mean(),
        "background_fpr": pred[~g & ~y].mean(),
    }
    for metric, expected in direct.items():
        assert value(table, group, metric)[0] == pytest.approx(expected), metric
    tpr_gap = direct["tpr"] - direct["background_tpr"]
    fpr_gap = direct["fpr"] - direct["background_fpr"]
    assert value(table, group, "equal_opportunity_gap")[0] == pytest.approx(tpr_gap)
    assert value(table, group, "fpr_gap")[0] == pytest.approx(fpr_gap)
    assert value(table, group, "equalized_odds_gap")[0] == pytest.approx(
        max(abs(tpr_gap), abs(fpr_gap))
    )


def test_a_score_at_the_threshold_is_predicted_positive():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.5, 0.5, 0.2, 0.2])
    g = np.array([True, True, False, False])
    table = bias_metrics(y, s, {"g": g}, threshold=0.5)
    assert value(table, "g", "tpr")[0] == 1.0 and value(table, "g", "fpr")[0] == 1.0
    table = bias_metrics(y, s, {"g": g}, threshold=0.51)
    assert value(table, "g", "positive_rate")[0] == 0.0


def test_positive_aeg_is_positive_when_the_subgroups_positives_score_lower():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    s = np.array([0.6, 0.7, 0.9, 0.95, 0.1, 0.2, 0.1, 0.2])
    g = np.array([True, True, False, False, True, False, True, False])
    table = bias_metrics(y, s, {"g": g})
    # every subgroup positive (0.6, 0.7) is below every background positive (0.9, 0.95)
    assert value(table, "g", "positive_aeg")[0] == pytest.approx(0.5)
    # negatives 0.1, 0.1 vs 0.2, 0.2: the subgroup's score lower too -> +0.5
    assert value(table, "g", "negative_aeg")[0] == pytest.approx(0.5)
    flipped = bias_metrics(y, s, {"g": ~g})
    assert value(flipped, "g", "positive_aeg")[0] == pytest.approx(-0.5)


def test_positives_only_empty_and_whole_set_subgroups_are_explicit():
    groups = {
        "pos_only": Y.astype(bool) & (S > 0.6),
        "empty": np.zeros(len(Y), bool),
        "everyone": np.ones(len(Y), bool),
    }
    table = bias_metrics(Y, S, groups)
    assert value(table, "pos_only", "subgroup_auc")[1] == "no subgroup negatives"
    assert value(table, "pos_only", "bpsn_auc")[1] == "no subgroup negatives"
    assert not np.isnan(value(table, "pos_only", "bnsp_auc")[0])
    assert np.isnan(value(table, "pos_only", "fpr")[0])
    assert value(table, "pos_only", "tpr")[1] == ""
    for metric in ("subgroup_auc", "bpsn_auc", "bnsp_auc", "parity_gap"):
        v, reason = value(table, "empty", metric)
        assert np.isnan(v) and reason.startswith("no subgroup"), metric
    v, reason = value(table, "everyone", "bpsn_auc")
    assert np.isnan(v) and reason == "no background positives"
    v, reason = value(table, "everyone", "parity_gap")
    assert np.isnan(v) and reason == "no background examples"
    assert value(table, "everyone", "subgroup_auc")[0] == pytest.approx(auc(Y, S))
    empty = table[table.subgroup == "empty"]
    assert (empty.n_pos == 0).all() and (empty.n_neg == 0).all()
    assert (table.loc[table.value.isna(), "reason"] != "").all()


def test_bootstrap_interval_is_nan_with_a_reason_when_mostly_undefined():
    rng = np.random.default_rng(2)
    n = 400
    y = rng.integers(0, 2, n)
    s = rng.random(n)
    neg_only = np.zeros(n, bool)
    neg_only[np.flatnonzero(y == 0)[:20]] = True
    rare = np.zeros(n, bool)  # one positive and one negative: most resamples lack one
    rare[[np.flatnonzero(y == 1)[0], np.flatnonzero(y == 0)[-1]]] = True
    ci = bootstrap_auc_ci(y, s, {"neg_only": neg_only, "rare": rare}, n_boot=50, seed=0)
    row = lambda g, m: ci[(ci.subgroup == g) & (ci.metric == m)].iloc[0]  # noqa: E731
    r = row("neg_only", "subgroup_auc")
    assert np.isnan(r.lower) and np.isnan(r.upper) and r.n_boot == 0
    assert r.reason == "defined in only 0 of 50 bootstrap replicates"
    assert row("neg_only", "bpsn_auc").reason == "" and row("neg_only", "bpsn_auc").n_boot == 50
    r = row("rare", "subgroup_auc")
    assert r.n_boot < 25 and np.isnan(r.lower) and "of 50 bootstrap replicates" in r.reason


def test_the_aeg_sign_convention_and_the_reference_codes_two_scipy_readings():
    """Borkan et al.: a positive AEG means the subgroup's examples score lower. The paper's
    reference line gives that sign only under SciPy < 1.7 (the statistic was the U of the
    second sample); SciPy >= 1.7 returns the U of the first, flipping it."""
    from scipy.stats import mannwhitneyu

    from privbias_lib.metrics.bias import aeg_reference_code

    subgroup, background = np.array([0.1, 0.2]), np.array([0.5, 0.6, 0.7])
    labels = np.ones(5, int)
    scores = np.concatenate([subgroup, background])
    groups = {"g": np.array([True, True, False, False, False])}
    ours = bias_metrics(labels, scores, groups).set_index(["subgroup", "metric"]).value
    # by hand: no subgroup positive outscores a background one, MWU(g, bg) = 0, AEG = 1/2
    assert ours["g", "positive_aeg"] == 0.5
    # the installed SciPy (>= 1.7): the statistic is the U of the first sample, 6 of 6 pairs
    assert mannwhitneyu(background, subgroup, alternative="less").statistic == 6
    assert aeg_reference_code(subgroup, background, scipy_before_1_7=True) == 0.5
    assert aeg_reference_code(subgroup, background, scipy_before_1_7=False) == -0.5
    tied = aeg_reference_code([0.3, 0.6], [0.3, 0.6], scipy_before_1_7=False)
    assert tied == 0.0  # ties count 1/2 either way
