"""Co-reference bias metrics on hand-made data and against scipy; WinoBias pairs parsed into
their pronoun variants."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from privbias_lib.data.winobias import PRONOUN_GENDER
from privbias_lib.metrics.coreference import (
    accuracy_table,
    bootstrap_transfer,
    correlation,
    intrinsic_osb,
    pairs,
    picks,
    prompted_osb,
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
