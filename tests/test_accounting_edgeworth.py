"""The Edgeworth accountant against the paper's reference values and exact cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, stats

from privbias_lib.accounting import EdgeworthAccountant, epsilon, noise_multiplier
from privbias_lib.accounting.edgeworth import (
    edgeworth_epsilon,
    epsilon_from_cumulants,
    history_cumulants,
    privacy_loss,
    step_cumulants,
)

MNLI = {"q": 2000 / 392702, "steps": 3920, "delta": 1e-5}


@pytest.mark.parametrize(
    ("q", "sigma", "steps", "delta", "expected"),
    [
        (256 / 60000, 1.1, 14062, 1e-5, 2.4251),
        (0.01, 1.0, 1000, 1e-5, 1.8948),
        (0.01, 0.8, 2000, 0.015, 1.9129),
        (2000 / 392702, 0.557, 3920, 1e-5, 7.9995),
    ],
)
def test_order_one_reproduces_reference_values(q, sigma, steps, delta, expected):
    assert epsilon(q, sigma, steps, delta, "edgeworth") == pytest.approx(expected, abs=1e-3)


def test_calibration_gives_ew_tunes_sigma():
    sigma = noise_multiplier(8, method="edgeworth", **MNLI)
    assert sigma == pytest.approx(0.557, abs=1e-3)


def test_privacy_loss_is_stable_in_both_tails():
    q, sigma = 0.01, 0.3
    mu = 1 / sigma
    x = np.array([-1e3, 0.0, 1e3])
    loss = privacy_loss(x, q, sigma)
    assert np.isfinite(loss).all()
    assert loss[0] == pytest.approx(math.log1p(-q), rel=1e-12)
    assert loss[2] == pytest.approx(mu * 1e3 - mu * mu / 2 + math.log(q), rel=1e-12)
    assert privacy_loss(x, 1.0, sigma) == pytest.approx(mu * x - mu * mu / 2)


@pytest.mark.parametrize(("q", "sigma"), [(0.01, 0.557), (0.3, 2.0), (1e-4, 0.8)])
def test_step_cumulants_match_adaptive_quadrature(q, sigma):
    """Independent check: scipy.integrate.quad over the whole real line."""
    mu = 1 / sigma
    cum = step_cumulants(q, sigma)
    for k, dens in [
        (cum.p, lambda x: stats.norm.pdf(x)),
        (cum.q, lambda x: (1 - q) * stats.norm.pdf(x) + q * stats.norm.pdf(x - mu)),
    ]:

        def moment(f, dens=dens):
            return integrate.quad(
                lambda x: f(x) * dens(x), -np.inf, np.inf, epsabs=0, epsrel=1e-10, limit=500
            )[0]

        m1 = moment(lambda x: privacy_loss(x, q, sigma))
        c = [moment(lambda x, j=j, m1=m1: (privacy_loss(x, q, sigma) - m1) ** j) for j in (2, 3, 4)]
        expected = (m1, c[0], c[1], c[2] - 3 * c[0] ** 2)
        assert k == pytest.approx(expected, rel=1e-7, abs=1e-300)
    # KL(Q||P) = E_Q[l] > 0 and -KL(P||Q) = E_P[l] < 0
    assert cum.q[0] > 0 > cum.p[0]


def gaussian_mechanism_epsilon(mu: float, delta: float) -> float:
    """Exact epsilon of the Gaussian mechanism with sensitivity/noise ratio mu
    (Balle & Wang 2018): delta(eps) = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2)."""

    def f(e):
        return (
            stats.norm.cdf(-e / mu + mu / 2)
            - math.exp(e) * stats.norm.cdf(-e / mu - mu / 2)
            - delta
        )

    return optimize.brentq(f, 0, 100, xtol=1e-13)


@pytest.mark.parametrize(
    ("sigma", "steps", "delta"), [(1.0, 1, 1e-5), (4.0, 100, 1e-6), (10.0, 1000, 1e-8)]
)
def test_without_subsampling_edgeworth_is_the_exact_gaussian_mechanism(sigma, steps, delta):
    """At q = 1 the privacy loss is Gaussian: K3 = K4 = 0 and both orders are exact."""
    exact = gaussian_mechanism_epsilon(math.sqrt(steps) / sigma, delta)
    for method in ("edgeworth", "edgeworth2"):
        assert epsilon(1.0, sigma, steps, delta, method) == pytest.approx(exact, rel=1e-8)
    assert epsilon(1.0, sigma, steps, delta, "pld") == pytest.approx(exact, rel=1e-3)


def test_heterogeneous_history_adds_cumulants():
    acc = EdgeworthAccountant()
    for _ in range(300):
        acc.step(noise_multiplier=0.8, sample_rate=0.01)
    for _ in range(200):
        acc.step(noise_multiplier=1.2, sample_rate=0.02)
    assert acc.history == [(0.8, 0.01, 300), (1.2, 0.02, 200)]
    assert len(acc) == 500
    assert acc.mechanism() == "edgeworth"
    manual = step_cumulants(0.01, 0.8) * 300 + step_cumulants(0.02, 1.2) * 200
    assert acc.get_epsilon(1e-5) == pytest.approx(epsilon_from_cumulants(manual, 1e-5), rel=1e-12)
    # a homogeneous history split in two composes to the same epsilon
    split = history_cumulants([(1.0, 0.01, 400), (1.0, 0.01, 600)])
    assert epsilon_from_cumulants(split, 1e-5) == pytest.approx(
        edgeworth_epsilon(0.01, 1.0, 1000, 1e-5), rel=1e-10
    )
    assert EdgeworthAccountant(order=2).get_epsilon(1e-5) == 0.0
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        EdgeworthAccountant(order=3)


def test_privacy_engine_uses_the_edgeworth_accountant():
    from opacus import PrivacyEngine

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    engine = PrivacyEngine()
    engine.accountant = EdgeworthAccountant(order=1)
    model, optim, loader = engine.make_private(
        module=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        data_loader=loader,
        noise_multiplier=1.1,
        max_grad_norm=1.0,
        poisson_sampling=True,
    )
    for i, (x, y) in enumerate(loader):
        if i == 5:
            break
        optim.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optim.step()
    assert engine.accountant.history == [(1.1, 8 / 64, 5)]
    assert engine.get_epsilon(1e-5) == pytest.approx(epsilon(8 / 64, 1.1, 5, 1e-5, "edgeworth"))
