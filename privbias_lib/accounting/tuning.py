"""The privacy cost of hyperparameter tuning: a tuned model's epsilon is not the epsilon of
its final run — every run the search tried saw the training data.

Two bounds, both rigorous:

* :func:`composed_epsilon` — every tried run composed, by PLD: what naive tuning costs.
* :func:`random_search_epsilon` — Papernot & Steinke, "Hyperparameter Tuning with Renyi
  Differential Privacy" (ICLR 2022): when the number of trials K is itself random (a
  truncated negative binomial, e.g. geometric, or Poisson) and only the best trial is
  released, the whole search is (lambda, eps')-RDP with, for K ~ TNB(eta, gamma)
  (Theorem 2),

      eps'(lambda) = eps(lambda) + (1 + eta) * min_lh [(1 - 1/lh) eps(lh) + log(1/gamma)/lh]
                     + log E[K] / (lambda - 1),

  and for K ~ Poisson(mu) (Theorem 6), with delta_hat the delta at which one trial is
  (log(1 + 1/(lambda - 1)), delta_hat)-DP, eps'(lambda) = eps(lambda) + mu * delta_hat
  + log(mu) / (lambda - 1). eps(.) bounds every candidate's RDP (their pointwise maximum);
  the RDP curve is converted to (epsilon, delta) as dp-accounting converts it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Renyi orders: dp-accounting's default grid, extended below 2 for the lambda-hat minimum
ORDERS = tuple(
    [1.01, 1.05, 1.1, 1.25, 1.5, 1.75, *np.arange(2, 12, 0.5), *range(12, 64), 64, 80, 96,
     128, 160, 192, 256, 384, 512, 768, 1024]
)  # fmt: skip


@dataclass(frozen=True)
class Trial:
    """One DP-SGD run of the search: Poisson sampling rate, noise multiplier, steps."""

    q: float
    sigma: float
    steps: int


def trial_rdp(trial: Trial, orders: Sequence[float] = ORDERS) -> np.ndarray:
    """RDP of one DP-SGD run at ``orders`` (dp-accounting's subsampled-Gaussian RDP)."""
    from dp_accounting.rdp import rdp_privacy_accountant as rdp

    one = rdp._compute_rdp_poisson_subsampled_gaussian(trial.q, trial.sigma, list(orders))
    return np.asarray(one, float) * trial.steps


def rdp_to_epsilon(orders: Sequence[float], rdp: Sequence[float], delta: float) -> float:
    """(epsilon, delta) from an RDP curve: min over orders of
    rdp + log((lambda - 1)/lambda) - (log(delta) + log(lambda)) / (lambda - 1)
    (Balle et al. 2020, the conversion dp-accounting uses), orders above 1 only."""
    orders, rdp = np.asarray(orders, float), np.asarray(rdp, float)
    keep = (orders > 1) & np.isfinite(rdp)
    lam, r = orders[keep], rdp[keep]
    eps = r + np.log1p(-1 / lam) - (math.log(delta) + np.log(lam)) / (lam - 1)
    return float(max(0.0, np.min(eps)))


def truncated_negative_binomial_gamma(mean: float, shape: float) -> float:
    """The gamma of TNB(eta = ``shape``, gamma) with E[K] = ``mean``: geometric for shape
    1 (E[K] = 1/gamma), logarithmic for shape 0 (E[K] = (1/gamma - 1)/log(1/gamma))."""
    if mean < 1:
        raise ValueError(f"mean={mean} is invalid: the expected number of trials is >= 1")
    if mean == 1:
        return 1.0

    def expected(gamma: float) -> float:
        if shape == 0:
            return (1 / gamma - 1) / math.log(1 / gamma)
        return shape * (1 - gamma) / (gamma * (1 - gamma**shape))

    lo, hi = 1e-12, 1 - 1e-12  # E[K] falls as gamma grows: bisect on log gamma
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if expected(mid) > mean:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def random_search_rdp(
    rdp: Sequence[float], orders: Sequence[float], *, mean: float, shape: float
) -> np.ndarray:
    """RDP of releasing the best of K trials, K random with mean ``mean``: TNB of shape
    ``shape`` (1 geometric, 0 logarithmic; Theorem 2) or Poisson for ``shape`` inf
    (Theorem 6). ``rdp`` bounds every trial's RDP at ``orders``."""
    orders, rdp = np.asarray(orders, float), np.asarray(rdp, float)
    out = np.full_like(rdp, np.inf)
    above = orders > 1
    if math.isinf(shape):
        for i in np.flatnonzero(above):
            eps_hat = math.log1p(1 / (orders[i] - 1))
            delta_hat = _delta_at(orders, rdp, eps_hat)
            out[i] = rdp[i] + mean * delta_hat + math.log(mean) / (orders[i] - 1)
    else:
        gamma = truncated_negative_binomial_gamma(mean, shape)
        hat = (1 + shape) * np.min(((1 - 1 / orders) * rdp + math.log(1 / gamma) / orders)[above])
        out[above] = rdp[above] + hat + math.log(mean) / (orders[above] - 1)
    # RDP is non-decreasing in the order: a bound at a higher order holds at a lower one
    return np.minimum.accumulate(out[::-1])[::-1]


def _delta_at(orders: np.ndarray, rdp: np.ndarray, eps: float) -> float:
    """delta(eps) from an RDP curve (the conversion of :func:`rdp_to_epsilon`, inverted)."""
    keep = orders > 1
    lam, r = orders[keep], rdp[keep]
    log_delta = (lam - 1) * (r - eps) + (lam - 1) * np.log1p(-1 / lam) - np.log(lam)
    return float(min(1.0, math.exp(np.min(log_delta))))


def random_search_epsilon(
    trials: Sequence[Trial], delta: float, *, mean: float, shape: float = 1.0,
    final: Trial | None = None,
) -> float:  # fmt: skip
    """Epsilon of the whole random search (Papernot & Steinke), its candidates bounded by
    the pointwise maximum of the ``trials``' RDP; with ``final``, a separate training run
    of the chosen recipe is composed with it."""
    if not trials:
        raise ValueError("no trial")
    bound = np.max([trial_rdp(t) for t in trials], axis=0)
    total = random_search_rdp(bound, ORDERS, mean=mean, shape=shape)
    if final is not None:
        total = total + trial_rdp(final)
    return rdp_to_epsilon(ORDERS, total, delta)


def composed_epsilon(trials: Sequence[Trial], delta: float) -> float:
    """Epsilon of every trial composed (each run sees the data), by dp-accounting's PLD."""
    import dp_accounting
    from dp_accounting.pld import pld_privacy_accountant

    if not trials:
        raise ValueError("no trial")
    events = [
        dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(t.q, dp_accounting.GaussianDpEvent(t.sigma)),
            t.steps,
        )
        for t in trials
    ]
    accountant = pld_privacy_accountant.PLDAccountant()
    accountant.compose(dp_accounting.ComposedDpEvent(events))
    return float(accountant.get_epsilon(delta))
