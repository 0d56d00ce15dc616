"""The privacy cost of tuning: Papernot & Steinke's random-search bound, worked by hand on
the Gaussian mechanism and checked against dp-accounting's own RepeatAndSelect; the
composition of every trial by PLD."""

from __future__ import annotations

import math

import numpy as np
import pytest

from privbias_lib.accounting import epsilon
from privbias_lib.accounting.tuning import (
    ORDERS,
    Trial,
    composed_epsilon,
    random_search_epsilon,
    random_search_rdp,
    rdp_to_epsilon,
    trial_rdp,
    truncated_negative_binomial_gamma,
)


def test_the_geometric_bound_on_the_gaussian_mechanism_by_hand():
    # The Gaussian mechanism with sigma = 2 is (lambda, lambda / 8)-RDP. With K geometric
    # of mean 10 (eta = 1, gamma = 0.1), Theorem 2 gives
    #   eps'(lambda) = lambda/8 + 2 min_lh [(lh - 1)/8 + log(10)/lh] + log(10)/(lambda - 1).
    # (x - 1)/8 + a/x is least at x = sqrt(8a), where it is sqrt(a/2) - 1/8: with a = log 10,
    # at lh = 4.291932 it is 1.072983 - 0.125 = 0.947983; so at lambda = 8,
    # eps' = 1 + 1.895966 + log(10)/7 (0.328941) = 3.224907.
    lh = math.sqrt(8 * math.log(10))
    orders = np.array([1.5, 2.0, lh, 8.0, 16.0])
    rdp = orders / 8
    out = random_search_rdp(rdp, orders, mean=10, shape=1)
    assert lh == pytest.approx(4.291932, abs=1e-6)
    assert out[3] == pytest.approx(3.224907, abs=1e-6)
    assert out[4] == pytest.approx(2 + 1.895966 + math.log(10) / 15, abs=1e-6)


def test_the_gamma_of_a_given_mean():
    assert truncated_negative_binomial_gamma(10, 1) == pytest.approx(0.1)  # geometric: 1/gamma
    g = truncated_negative_binomial_gamma(5, 0)  # logarithmic
    assert (1 / g - 1) / math.log(1 / g) == pytest.approx(5)
    g = truncated_negative_binomial_gamma(5, 2.5)
    assert 2.5 * (1 - g) / (g * (1 - g**2.5)) == pytest.approx(5)


@pytest.mark.parametrize(("mean", "shape"), [(5, 1), (10, 1), (5, 0), (8, 2.0), (6, math.inf)])
def test_the_bound_equals_dp_accountings_repeat_and_select(mean, shape):
    import dp_accounting
    from dp_accounting.dp_event import RepeatAndSelectDpEvent
    from dp_accounting.rdp import rdp_privacy_accountant

    trial = Trial(q=0.008, sigma=0.9, steps=250)
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(trial.q, dp_accounting.GaussianDpEvent(trial.sigma)),
        trial.steps,
    )
    reference = rdp_privacy_accountant.RdpAccountant(orders=list(ORDERS))
    reference.compose(RepeatAndSelectDpEvent(event, mean, shape))
    ours = random_search_epsilon([trial], 1e-6, mean=mean, shape=shape)
    assert ours == pytest.approx(reference.get_epsilon(1e-6), rel=1e-6)


def test_the_rdp_conversion_equals_dp_accountings():
    from dp_accounting.rdp import rdp_privacy_accountant

    rdp = trial_rdp(Trial(0.01, 1.1, 1000))
    assert rdp_to_epsilon(ORDERS, rdp, 1e-5) == pytest.approx(
        rdp_privacy_accountant.compute_epsilon(ORDERS, rdp, 1e-5)[0], rel=1e-9
    )


def test_one_certain_trial_costs_about_one_run_and_the_bound_grows_with_log_trials():
    trial = Trial(q=0.008, sigma=0.9, steps=250)
    single = rdp_to_epsilon(ORDERS, trial_rdp(trial), 1e-6)
    assert random_search_epsilon([trial], 1e-6, mean=1) == pytest.approx(single, rel=0.02)
    # composing K runs by PLD grows about like sqrt(K), the random search like log(K): for
    # a few trials plain composition is tighter (both are bounds: quote the smaller), for
    # many the random search is (at this run: 4 trials 2.17 vs 2.90, 32 trials 5.87 vs 3.85)
    few, many = [trial] * 4, [trial] * 32
    assert composed_epsilon(few, 1e-6) < random_search_epsilon(few, 1e-6, mean=4)
    assert random_search_epsilon(many, 1e-6, mean=32) < composed_epsilon(many, 1e-6)
    trials = [trial] * 8
    searched = random_search_epsilon(trials, 1e-6, mean=8)
    assert single < searched
    # the worst trial bounds them all: a noisier extra trial changes nothing
    noisier = random_search_epsilon([*trials, Trial(0.008, 2.0, 250)], 1e-6, mean=8)
    assert noisier == pytest.approx(searched)


def test_composing_one_trial_is_that_runs_pld_epsilon_and_a_final_run_adds_to_the_search():
    trial = Trial(q=0.01, sigma=1.0, steps=400)
    assert composed_epsilon([trial], 1e-5) == pytest.approx(
        epsilon(0.01, 1.0, 400, 1e-5, "pld"), rel=2e-3
    )
    alone = random_search_epsilon([trial], 1e-5, mean=4)
    assert random_search_epsilon([trial], 1e-5, mean=4, final=trial) > alone
