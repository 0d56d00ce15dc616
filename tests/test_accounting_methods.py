"""Every accountant behind one signature, checked against the libraries called directly;
calibration, comparison and input validation."""

from __future__ import annotations

import math
import warnings

import pytest

from privbias_lib.accounting import (
    METHODS,
    AccountingError,
    compare,
    epsilon,
    is_upper_bound,
    noise_multiplier,
)

SETTINGS = [(0.01, 1.0, 1000, 1e-5), (2000 / 392702, 0.557, 3920, 1e-5), (0.2, 3.0, 50, 1e-6)]


@pytest.mark.parametrize(("q", "sigma", "steps", "delta"), SETTINGS)
def test_opacus_accountants_agree_with_opacus_called_directly(q, sigma, steps, delta):
    from opacus.accountants import GaussianAccountant, PRVAccountant, RDPAccountant

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for method, cls in [
            ("rdp", RDPAccountant),
            ("prv", PRVAccountant),
            ("gdp", GaussianAccountant),
        ]:
            acc = cls()
            acc.history = [(sigma, q, steps)]
            assert epsilon(q, sigma, steps, delta, method) == pytest.approx(
                max(acc.get_epsilon(delta), 0.0), rel=1e-12
            )


@pytest.mark.parametrize(("q", "sigma", "steps", "delta"), SETTINGS)
def test_pld_agrees_with_dp_accounting_called_directly(q, sigma, steps, delta):
    import dp_accounting

    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps
    )
    acc = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
    acc.compose(event)
    assert epsilon(q, sigma, steps, delta, "pld") == pytest.approx(
        acc.get_epsilon(delta), rel=1e-12
    )


def test_rigorous_accountants_bracket_the_truth_at_ew_tunes_setting():
    """The honesty check: at EW-Tune's MNLI sigma, Edgeworth says 8.0, PLD about 9.14."""
    table = compare(2000 / 392702, 0.557, 3920, 1e-5).set_index("method")
    assert table.loc["edgeworth", "epsilon"] == pytest.approx(8.0, abs=1e-3)
    assert table.loc["pld", "epsilon"] == pytest.approx(9.14, abs=0.02)
    assert table.loc["prv", "epsilon"] >= table.loc["pld", "epsilon"] - 0.01
    assert table.loc["rdp", "epsilon"] > table.loc["pld", "epsilon"]
    assert table.loc["prv-estimate", "epsilon"] == pytest.approx(
        table.loc["pld", "epsilon"], abs=0.02
    )
    kinds = table["kind"].to_dict()
    assert {m for m, k in kinds.items() if k == "upper bound"} == {"rdp", "prv", "pld"}
    assert (table["seconds"] > 0).all() and (table["error"] == "").all()
    assert list(table.index) == [
        "edgeworth",
        "edgeworth2",
        "rdp",
        "prv",
        "prv-estimate",
        "gdp",
        "pld",
    ]


def test_is_upper_bound_matches_the_registry():
    assert [m for m in METHODS if is_upper_bound(m)] == ["rdp", "prv", "pld"]
    with pytest.raises(ValueError, match="method='moments'"):
        is_upper_bound("moments")


@pytest.mark.parametrize("method", ["edgeworth", "rdp", "pld"])
def test_noise_multiplier_is_the_smallest_sigma_to_1e4(method):
    q, steps, delta, target = 0.01, 800, 1e-5, 3.0
    sigma = noise_multiplier(target, q, steps, delta, method)
    assert epsilon(q, sigma, steps, delta, method) <= target
    assert epsilon(q, sigma / (1 + 1e-4), steps, delta, method) > target


def test_calibrated_sigmas_order_as_in_ew_tune():
    q, steps, delta = 2000 / 392702, 3920, 1e-5
    ew, prv, rdp = (noise_multiplier(8, q, steps, delta, m) for m in ("edgeworth", "prv", "rdp"))
    assert ew < prv < rdp


def test_unreachable_target_is_a_clear_error():
    with pytest.raises(ValueError, match=r"target_epsilon=0.001 cannot be reached with rdp"):
        noise_multiplier(1e-3, 1.0, 10**6, 1e-10, "rdp")
    with pytest.raises(ValueError, match="target_epsilon=-1 is invalid"):
        noise_multiplier(-1, 0.01, 100, 1e-5, "rdp")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"q": 0.0}, r"q=0.0 is invalid: allowed 0 < q <= 1"),
        ({"q": 1.5}, r"q=1.5 is invalid"),
        ({"sigma": 0.0}, r"sigma=0.0 is invalid: allowed a finite noise multiplier > 0"),
        ({"sigma": math.inf}, r"sigma=inf is invalid"),
        ({"steps": 0}, r"steps=0 is invalid: allowed an integer >= 1"),
        ({"steps": 2.5}, r"steps=2.5 is invalid"),
        ({"delta": 0.0}, r"delta=0.0 is invalid: allowed 0 < delta < 1"),
        ({"delta": 1.0}, r"delta=1.0 is invalid"),
        ({"method": "moments"}, r"method='moments' is invalid: allowed one of \['edgeworth'"),
    ],
)
def test_invalid_input_names_parameter_value_and_range(kwargs, message):
    args = {"q": 0.01, "sigma": 1.0, "steps": 100, "delta": 1e-5, "method": "rdp", **kwargs}
    with pytest.raises(ValueError, match=message):
        epsilon(**args)


def test_library_failures_become_accounting_errors():
    # Opacus's GDP bisects epsilon in [0, 500]; at tiny privacy loss there is no root
    with pytest.raises(AccountingError, match=r"gdp could not compute epsilon at q=0.00117"):
        epsilon(0.0011774154985086272, 38.8067997825104, 7, 0.027236037189169286, "gdp")
    table = compare(
        0.0011774154985086272, 38.8067997825104, 7, 0.027236037189169286, methods=["gdp", "rdp"]
    ).set_index("method")
    assert math.isnan(table.loc["gdp", "epsilon"]) and "gdp could not" in table.loc["gdp", "error"]
    assert table.loc["rdp", "epsilon"] >= 0


def test_pld_grid_widens_only_when_needed_and_stays_an_upper_bound():
    import dp_accounting

    from privbias_lib.accounting.methods import PLD_INTERVAL, pld_interval

    assert pld_interval(2000 / 392702, 0.557, 3920) == PLD_INTERVAL
    q, sigma, steps, delta = 0.1, 0.5, 10_000, 1e-6
    assert pld_interval(q, sigma, steps) > PLD_INTERVAL
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps
    )
    fine = dp_accounting.pld.PLDAccountant(value_discretization_interval=PLD_INTERVAL)
    fine.compose(event)
    coarse = epsilon(q, sigma, steps, delta, "pld")
    assert fine.get_epsilon(delta) <= coarse <= fine.get_epsilon(delta) * 1.01
