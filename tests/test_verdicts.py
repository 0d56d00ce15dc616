"""The verdict logic: the interval rule every study uses, and study 1's per-metric verdict
on hand-made DP-induced changes (numbers worked out by hand below)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from privbias_lib.studies.dp_bias.runs import SHARED, SWEEP, TUNED_RECIPE
from privbias_lib.studies.dp_bias.verdict import metric_verdict
from privbias_lib.verdicts import OUTCOMES, Verdict, interval_outcome


@pytest.mark.parametrize(
    ("estimate", "low", "high", "paper", "sign", "outcome"),
    [
        (-0.05, -0.08, -0.02, -0.06, -1, "reproduced"),  # below zero, holds the paper
        (-0.05, -0.08, -0.02, -0.12, -1, "direction only"),  # 0.04 beyond, tolerance 0.02
        (-0.05, -0.08, -0.02, -0.095, -1, "reproduced"),  # within the tolerance
        (0.03, 0.01, 0.05, -0.06, -1, "not reproduced"),  # clearly the other way
        (-0.01, -0.04, 0.02, -0.06, -1, "inconclusive"),  # holds zero
        (0.02, 0.01, 0.03, 0.02, +1, "reproduced"),  # a claimed rise
        (math.nan, -0.1, 0.1, -0.06, -1, "inconclusive"),  # nothing to weigh
        (-0.05, -0.02, -0.08, -0.06, -1, "reproduced"),  # bounds in either order
    ],
)
def test_interval_outcome(estimate, low, high, paper, sign, outcome):
    got = interval_outcome(estimate, low, high, paper=paper, claim_sign=sign, tolerance=0.02)
    assert got == outcome


def test_a_verdict_refuses_an_unknown_outcome():
    assert "reproduced" in OUTCOMES
    with pytest.raises(ValueError, match="not one of"):
        Verdict("claim", "ours", "proved", "because")


def _changes(per_seed: dict[int, list[float]], recipe: str = SHARED) -> pd.DataFrame:
    """DP-induced changes of the Subgroup AUC: per seed, one value per (group, epsilon)."""
    cells = [("women", "1"), ("black", "1"), ("women", "8"), ("black", "8")]
    rows = []
    for seed, values in per_seed.items():
        for (group, eps), change in zip(cells, values, strict=True):
            rows.append({"experiment": SWEEP, "recipe": recipe, "seed": seed, "subgroup": group,
                         "epsilon": eps, "metric": "subgroup_auc", "value": 0.7 + change,
                         "base": 0.7, "change": change})  # fmt: skip
    return pd.DataFrame(rows)


def test_study_1_metric_verdict_is_the_t_interval_over_seed_means():
    changes = _changes({0: [-0.10, -0.06, -0.04, 0.02], 1: [-0.08, -0.04, -0.02, -0.02],
                        2: [-0.12, -0.08, -0.06, 0.00]})  # fmt: skip
    # seed means -0.045, -0.040, -0.065: mean -0.050, sd 0.013229, t(0.975, 2) = 4.3027
    half = stats.t.ppf(0.975, 2) * 0.0132288 / math.sqrt(3)
    assert half == pytest.approx(0.03286, abs=1e-4)
    v = metric_verdict(changes, "subgroup_auc", paper=-0.05, dataset="Jigsaw")
    assert v.outcome == "reproduced"
    assert v.ours.startswith(f"-0.050 [{-0.05 - half:+.3f}, {-0.05 + half:+.3f}] over 3 seeds")
    assert "lower in 75% of the (group, epsilon) cells" in v.ours  # black at 8: 0 on average
    far = metric_verdict(changes, "subgroup_auc", paper=-0.20, dataset="Jigsaw")
    assert far.outcome == "direction only" and "0.2 times the paper's size" in far.because


def test_study_1_metric_verdict_says_why_it_cannot_weigh_a_claim():
    one_seed = metric_verdict(_changes({0: [-0.1] * 4}), "subgroup_auc", -0.05, "Jigsaw")
    assert one_seed.outcome == "inconclusive" and one_seed.because == "one seed: no interval"
    tuned_only = _changes({0: [-0.1] * 4, 1: [-0.1] * 4}, recipe=TUNED_RECIPE)
    shared = metric_verdict(tuned_only, "subgroup_auc", -0.05, "Jigsaw", recipe=SHARED)
    assert shared.outcome == "not assessed" and "no DP model under the shared" in shared.because
    no_base = _changes({0: [-0.1] * 4}).assign(base=math.nan, change=math.nan)
    v = metric_verdict(no_base, "subgroup_auc", -0.05, "Jigsaw")
    assert v.outcome == "not assessed" and "no non-private run" in v.because
