"""Co-reference bias metrics on hand-made data and against scipy; WinoBias pairs parsed into
their pronoun variants."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import bootstrap, pearsonr, spearmanr

from privbias_lib.data.winobias import PRONOUN_GENDER
from privbias_lib.metrics.bootstrap import bca_interval
from privbias_lib.metrics.coreference import (
    WeightedTransfer,
    accuracy_table,
    bootstrap_transfer,
    correlation,
    intrinsic_osb,
    pairs,
    picks,
    prompted_osb,
    transfer_correlation,
)


def test_winobias_pairs_are_pronoun_variants(winobias_all):
    test = winobias_all[winobias_all.split == "test"]
    table = pairs(test)
    assert len(table) == test.pair_id.notna().sum() // 2 == 790  # 2 source pairs are broken
    by_id = test.set_index("id")
    assert (~table.pronoun_only).sum() == 8  # source pairs that also differ in other words
    for row in table.itertuples():
        male, female = by_id.loc[row.male_id], by_id.loc[row.female_id]
        assert male.pronoun_gender == "male" and female.pronoun_gender == "female"
        pro_version = male if row.pro == "male" else female
        assert pro_version.stereotype == "pro"
        if not row.pronoun_only:
            continue
        a, b = re.findall(r"\w+|\W", male.sentence), re.findall(r"\w+|\W", female.sentence)
        differ = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
        assert differ  # the versions differ, and only in pronouns of opposite gender
        for x, y in differ:
            assert PRONOUN_GENDER[x.lower()] == "male" and PRONOUN_GENDER[y.lower()] == "female"


def test_a_broken_pair_is_refused(winobias_all):
    test = winobias_all[winobias_all.split == "test"].head(4).copy()
    test.loc[test.index[0], "pair_id"] = "lonely"
    with pytest.raises(ValueError, match="pronoun genders"):
        pairs(test)


def hand_pairs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pair_id": ["p1", "p2", "p3", "p4"],
            "occupation": ["nurse", "nurse", "chief", "chief"],
            "pro": ["female", "female", "male", "male"],
        }
    )


def test_intrinsic_osb_by_hand():
    male_ll = [-10.0, -12.0, -5.0, -7.0]
    female_ll = [-11.0, -11.0, -6.0, -7.0]  # nurse: one each way; chief: male, tie
    out = intrinsic_osb(hand_pairs(), male_ll, female_ll)
    # soft: p_male - p_female = tanh(LLR / 2) per pair, LLRs nurse (1, -1), chief (1, 0)
    assert out.loc["nurse", "osb"] == pytest.approx(0.0)
    p_male = np.exp(-5.0) / (np.exp(-5.0) + np.exp(-6.0))
    assert out.loc["chief", "osb"] == pytest.approx((2 * p_male - 1 + 0.0) / 2)
    assert out.loc["chief", "hard_osb"] == pytest.approx(2 * 0.75 - 1)  # male, tie
    assert out.loc["nurse", "mean_llr"] == pytest.approx(0.0)
    assert out.loc["chief", "mean_llr"] == pytest.approx(0.5)
    assert out.loc["nurse", "pro_preference"] == pytest.approx(0.5)
    assert out.loc["chief", "pro_preference"] == pytest.approx(0.75)
    assert out.n.tolist() == [2, 2]


def test_prompted_osb_rpa_and_picks_by_hand():
    items = pd.DataFrame(
        {
            "occupation": ["nurse", "nurse", "chief", "chief"],
            "other_occupation": ["chief", "chief", "nurse", "nurse"],
            "pronoun_gender": ["female", "male", "male", "female"],
            "type": [1, 1, 2, 2],
            "stereotype": ["pro", "anti", "pro", "anti"],
        }
    )
    scores = np.array([[-1.0, -2.0], [-3.0, -2.0], [-1.0, -5.0], [-4.0, -4.0]])
    correct = picks(items, scores)
    assert correct.tolist() == [1.0, 0.0, 1.0, 0.5]
    osb = prompted_osb(items, correct)
    # chief picked: male-pronoun sentences: s2 (other, 1) and s3 (gold, 1) -> 1.0;
    # female: s1 (other, 0) and s4 (gold, 0.5) -> 0.25
    assert osb.loc["chief", "osb"] == pytest.approx(1.0 - 0.25)
    # nurse picked: male: s2 (gold, 0), s3 (other, 0) -> 0; female: s1 (1), s4 (0.5) -> 0.75
    assert osb.loc["nurse", "osb"] == pytest.approx(0.0 - 0.75)
    acc = accuracy_table(items, correct)
    assert acc.loc[1, "pro"] == 1.0 and acc.loc[1, "anti"] == 0.0
    assert acc.loc[2, "pro_minus_anti"] == pytest.approx(0.5)
    assert acc.loc[2, "all"] == pytest.approx(0.75)


def test_a_perfect_model_has_no_selection_bias(winobias_all):
    test = winobias_all[(winobias_all.split == "test") & winobias_all.pair_id.notna()]
    osb = prompted_osb(test, np.ones(len(test)))  # each occupation: once per gender per pair
    assert len(osb) == 40 and np.allclose(osb.osb, 0.0)


def test_correlations_match_scipy():
    rng = np.random.default_rng(0)
    occ = [f"o{i}" for i in range(40)]
    x = pd.Series(rng.normal(size=40), index=occ)
    y = pd.Series(x.to_numpy() * 0.5 + rng.normal(size=40), index=occ[::-1][::-1])
    r = correlation(x, y.iloc[::-1])  # aligned by occupation, not by position
    assert r["spearman"] == pytest.approx(spearmanr(x, y).statistic)
    assert r["pearson"] == pytest.approx(pearsonr(x, y).statistic)
    assert r["n"] == 40
    assert np.isnan(correlation(x, pd.Series(1.0, index=occ))["spearman"])
    assert np.isnan(correlation(x.head(2), y.head(2))["pearson"])


def test_transfer_bootstrap_brackets_the_estimate():
    rng = np.random.default_rng(1)
    occs = [f"o{i}" for i in range(20)]
    lean = dict(zip(occs, np.linspace(-2, 2, 20), strict=True))
    rows, items = [], []
    for p in range(400):
        o, other = rng.choice(occs, 2, replace=False)
        rows.append({"pair_id": p, "occupation": o, "pro": "male" if lean[o] > 0 else "female"})
        for gender in ("male", "female"):
            items.append({"pair_id": p, "occupation": o, "other_occupation": other,
                          "pronoun_gender": gender})  # fmt: skip
    table, items = pd.DataFrame(rows), pd.DataFrame(items)
    llr = np.array([lean[o] for o in table.occupation]) + rng.normal(0, 1, len(table))
    male_ll, female_ll = llr, np.zeros(len(table))
    # prompted picks follow the same lean: the gold occupation is picked when its lean
    # agrees with the pronoun's gender
    sign = np.where(items.pronoun_gender == "male", 1, -1)
    gold = np.array([lean[o] for o in items.occupation]) * sign
    correct = (gold + rng.normal(0, 1, len(items)) > 0).astype(float)
    point = correlation(
        intrinsic_osb(table, male_ll, female_ll)["osb"], prompted_osb(items, correct)["osb"]
    )
    ci = bootstrap_transfer(table, male_ll, female_ll, items, correct, n_boot=100, seed=3)
    assert point["spearman"] > 0.5
    lo, hi = ci["spearman_ci"]
    assert lo < point["spearman"] < hi
    assert ci == bootstrap_transfer(table, male_ll, female_ll, items, correct, n_boot=100, seed=3)


def _synthetic_transfer(rng, pairs, occupations=20, offset_sd=0.0, noise=1.0):
    """WinoBias-shaped data whose occupations lean by a known amount, intrinsically and when
    prompted (prompted lean = intrinsic lean + a fixed offset per occupation)."""
    names = np.array([f"o{i}" for i in range(occupations)])
    lean = np.linspace(-1.5, 1.5, occupations)
    prompted_lean = lean + np.random.default_rng(123).normal(0, offset_sd, occupations)
    gold = rng.integers(0, occupations, pairs)
    other = (gold + rng.integers(1, occupations, pairs)) % occupations
    table = pd.DataFrame({"pair_id": np.arange(pairs), "occupation": names[gold]})
    table["pro"] = np.where(lean[gold] > 0, "male", "female")
    items = pd.DataFrame(
        {
            "pair_id": np.repeat(np.arange(pairs), 2),
            "occupation": np.repeat(names[gold], 2),
            "other_occupation": np.repeat(names[other], 2),
            "pronoun_gender": np.tile(["male", "female"], pairs),
        }
    )
    male_ll = lean[gold] + rng.normal(0, noise, pairs)
    sign = np.where(items.pronoun_gender == "male", 1, -1)
    g, o = np.repeat(gold, 2), np.repeat(other, 2)
    margin = (prompted_lean[g] - prompted_lean[o]) * sign + rng.normal(0, noise, 2 * pairs)
    return table, male_ll, np.zeros(pairs), items, (margin > 0).astype(float)


def test_transfer_interval_resamples_the_statistic_it_reports():
    """Intrinsic O-SB from the marked (pronoun-only) pairs, prompted O-SB from every
    sentence; the interval is the BCa interval of exactly that statistic, recomputed here
    with pandas on duplicated rows (the library's NumPy weights must give the same)."""
    table, male_ll, female_ll, items, correct = _synthetic_transfer(np.random.default_rng(7), 60)
    marked = np.arange(len(table)) % 3 != 0
    male_ll[[1, 3]] = np.nan  # a marked and an unmarked pair without a score: skipped
    point = transfer_correlation(table, male_ll, female_ll, items, correct, marked)
    by_hand = correlation(
        intrinsic_osb(table[marked], male_ll[marked], female_ll[marked])["osb"],
        prompted_osb(items, correct)["osb"],
    )
    assert point == by_hand and np.isfinite(point["spearman"])

    def statistic(idx):
        rows = np.concatenate([np.flatnonzero(items.pair_id == table.pair_id[i]) for i in idx])
        sample = table.iloc[idx].reset_index(drop=True)
        return transfer_correlation(
            sample, male_ll[idx], female_ll[idx], items.iloc[rows], correct[rows], marked[idx]
        )

    n, rng = len(table), np.random.default_rng(5)
    reps = [statistic(rng.integers(0, n, n)) for _ in range(30)]
    jack = [statistic(np.delete(np.arange(n), i)) for i in range(n)]
    ci = bootstrap_transfer(
        table, male_ll, female_ll, items, correct, intrinsic_pairs=marked, n_boot=30, seed=5
    )
    for k in ("spearman", "pearson"):
        expected = bca_interval(point[k], [r[k] for r in reps], [j[k] for j in jack])
        assert ci[f"{k}_ci"] == pytest.approx(expected, abs=1e-12), k


def test_bca_interval_matches_scipy():
    """A skewed statistic (the variance of an exponential sample), where BCa and the
    percentile interval differ: ours from scipy's own replicates equals scipy's BCa."""
    x = np.random.default_rng(0).exponential(size=40)
    res = bootstrap((x,), np.var, method="BCa", n_resamples=5_000, random_state=2)
    jack = [np.var(np.delete(x, i)) for i in range(len(x))]
    ours = bca_interval(np.var(x), res.bootstrap_distribution, jack)
    theirs = res.confidence_interval
    assert ours == pytest.approx((theirs.low, theirs.high), rel=1e-10)
    percentile = np.quantile(res.bootstrap_distribution, [0.025, 0.975])
    assert abs(percentile[1] - ours[1]) > 0.1 * ours[1]  # the test can tell them apart
    assert np.isnan(bca_interval(1.0, [0.1, 0.2, 0.3], jack)).all()  # all on one side
    assert np.isnan(bca_interval(np.nan, res.bootstrap_distribution, jack)).all()


def test_bca_covers_an_attenuated_correlation_more_often_than_percentiles():
    """Ten pairs per occupation: the correlation of noisy occupation means is attenuated
    and the percentile interval mostly misses the population value; BCa far less often."""
    rng = np.random.default_rng(0)
    population = WeightedTransfer(*_synthetic_transfer(rng, 200_000, offset_sd=0.8))
    truth = population(np.ones(population.pairs))["spearman"]
    assert 0.7 < truth < 0.9
    covered = {"percentile": 0, "bca": 0}
    datasets = 40
    for d in range(datasets):
        statistic = WeightedTransfer(*_synthetic_transfer(rng, 200, offset_sd=0.8))
        n, draw = statistic.pairs, np.random.default_rng(d)
        reps = [
            statistic(np.bincount(draw.integers(0, n, n), minlength=n))["spearman"]
            for _ in range(200)
        ]
        jack = [statistic(np.arange(n) != i)["spearman"] for i in range(n)]
        low, high = np.quantile(reps, [0.025, 0.975])
        covered["percentile"] += low <= truth <= high
        low, high = bca_interval(statistic(np.ones(n))["spearman"], reps, jack)
        covered["bca"] += low <= truth <= high
    share = {k: v / datasets for k, v in covered.items()}
    assert share["bca"] >= 0.7 and share["bca"] >= share["percentile"] + 0.2, share
