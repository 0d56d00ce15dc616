"""Every accountant behind one signature: epsilon(q, sigma, steps, delta).

RDP, PRV and GDP are Opacus's own implementations; PLD is Google's
``dp-accounting`` (privacy loss distributions, pessimistic discretisation: the
near-exact reference and an upper bound); Edgeworth is :mod:`.edgeworth`.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from .edgeworth import edgeworth_epsilon, step_cumulants
from .errors import AccountingError

UPPER_BOUND = "upper bound"
ESTIMATE = "estimate"


@dataclass(frozen=True)
class Method:
    """An accountant: how it computes epsilon and whether that is a guarantee."""

    name: str
    kind: str  # UPPER_BOUND or ESTIMATE
    source: str
    compute: Callable[[float, float, int, float], float]


def _rdp(q: float, sigma: float, steps: int, delta: float) -> float:
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = [(sigma, q, steps)]
    return float(acc.get_epsilon(delta))


# Largest grid a discretised accountant may allocate (float64 points); beyond it
# Opacus's PRV would exhaust memory (it asks for terabytes at q = 1, sigma = 0.3,
# a million steps) and dp-accounting's PLD would too.
MAX_GRID = 20_000_000
PLD_INTERVAL = 1e-4  # dp-accounting's default value discretisation interval
PLD_TARGET_POINTS = 5_000_000


@functools.lru_cache(maxsize=1)
def _prv_dprv(q: float, sigma: float, steps: int, delta: float):
    """Opacus's discretised PRV, exactly as ``PRVAccountant.get_epsilon`` builds it,
    after checking that its grid fits in memory. The last one is kept, so "prv" and
    "prv-estimate" at the same setting (as in ``compare``) build it once."""
    from opacus.accountants import PRVAccountant
    from opacus.accountants.analysis.prv import PoissonSubsampledGaussianPRV

    acc = PRVAccountant()
    acc.history = [(sigma, q, steps)]
    eps_error, delta_error = 0.01, delta / 1000  # Opacus's defaults
    domain = acc._get_domain(
        prvs=[PoissonSubsampledGaussianPRV(q, sigma)],
        num_self_compositions=[steps],
        eps_error=eps_error,
        delta_error=delta_error,
    )
    if domain.size > MAX_GRID:
        raise AccountingError(
            f"prv needs a grid of {domain.size:.3g} points here (limit {MAX_GRID:.0e}); "
            "use 'pld', which coarsens its grid and stays an upper bound"
        )
    return acc._get_dprv(eps_error=eps_error, delta_error=delta_error), eps_error, delta_error


def _prv(q: float, sigma: float, steps: int, delta: float) -> float:
    dprv, eps_error, delta_error = _prv_dprv(q, sigma, steps, delta)
    _, _, upper = dprv.compute_epsilon(delta, delta_error, eps_error)
    return float(upper)


def _prv_estimate(q: float, sigma: float, steps: int, delta: float) -> float:
    dprv, eps_error, delta_error = _prv_dprv(q, sigma, steps, delta)
    _, estimate, _ = dprv.compute_epsilon(delta, delta_error, eps_error)
    return float(estimate)


def _gdp(q: float, sigma: float, steps: int, delta: float) -> float:
    from opacus.accountants.analysis import gdp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(
            gdp.compute_eps_poisson(steps=steps, noise_multiplier=sigma, sample_rate=q, delta=delta)
        )


def pld_interval(q: float, sigma: float, steps: int) -> float:
    """The PLD value discretisation interval: dp-accounting's 1e-4, widened only when
    the composed privacy loss spans so much that the grid would not fit in memory.

    The span is estimated from the privacy loss cumulants (mean +- 10 sd under both
    hypotheses). A coarser grid loosens the pessimistic PLD but keeps it an upper bound.
    """
    c = step_cumulants(q, sigma)
    span = max(abs(k[0]) * steps + 10.0 * math.sqrt(max(k[1], 0.0) * steps) for k in (c.p, c.q))
    return max(PLD_INTERVAL, span / PLD_TARGET_POINTS)


def _pld(q: float, sigma: float, steps: int, delta: float) -> float:
    """dp-accounting's ``PLDAccountant`` on this event, step by step as it composes it."""
    from dp_accounting.pld import privacy_loss_distribution as pld_lib

    interval = pld_interval(q, sigma, steps)
    one_step = pld_lib.from_gaussian_mechanism(
        sigma, value_discretization_interval=interval, sampling_prob=q
    )
    composed = pld_lib.identity(interval).compose(_self_compose(one_step, steps))
    return float(composed.get_epsilon_for_delta(delta))


def _self_compose(pld, steps: int):
    """``pld.self_compose(steps)``, without dp-accounting 0.6's cost at many steps.

    A sparse PMF's ``self_compose`` first evaluates ``size ** steps`` as an exact integer,
    only to compare it with 1000 and convert itself to dense: at 10^7 steps that integer
    has ~2e7 digits and takes ~20 s per PMF (40 of the 44 s a PLD took). Converting
    to dense beforehand, exactly where dp-accounting would, gives the same numbers.
    """
    from dp_accounting.pld import pld_pmf
    from dp_accounting.pld.privacy_loss_distribution import PrivacyLossDistribution

    def dense(pmf):  # size ** min(steps, 11) > 1000 iff size ** steps > 1000
        sparse = isinstance(pmf, pld_pmf.SparsePLDPmf)
        if sparse and pmf.size ** min(steps, 11) > pld_pmf._MAX_PMF_SPARSE_SIZE:
            return pmf.to_dense_pmf()
        return pmf

    # no public accessors for the PMFs in dp-accounting 0.6; ``add is remove`` when symmetric
    remove, add = pld._pmf_remove, pld._pmf_add
    pmfs = [dense(remove)] if add is remove else [dense(remove), dense(add)]
    return PrivacyLossDistribution(*pmfs).self_compose(steps)


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method(
            "edgeworth",
            ESTIMATE,
            "privbias Edgeworth expansion, order 1 (EW-Tune)",
            lambda q, s, t, d: edgeworth_epsilon(q, s, t, d, order=1),
        ),
        Method(
            "edgeworth2",
            ESTIMATE,
            "privbias Edgeworth expansion, order 2",
            lambda q, s, t, d: edgeworth_epsilon(q, s, t, d, order=2),
        ),
        Method(
            "rdp", UPPER_BOUND, "Opacus RDPAccountant (Renyi DP, Balle et al. conversion)", _rdp
        ),
        Method("prv", UPPER_BOUND, "Opacus PRVAccountant, upper bound (Gopi et al.)", _prv),
        Method("prv-estimate", ESTIMATE, "Opacus PRVAccountant, point estimate", _prv_estimate),
        Method("gdp", ESTIMATE, "Opacus Gaussian DP (CLT; can under-estimate)", _gdp),
        Method(
            "pld",
            UPPER_BOUND,
            "dp-accounting PLDAccountant (privacy loss distributions, pessimistic)",
            _pld,
        ),
    ]
}


def validate(q, sigma, steps, delta, method: str | None = None) -> None:
    """Raise ValueError naming the parameter, its value and the allowed range."""

    def bad(name, value, allowed):
        raise ValueError(f"{name}={value!r} is invalid: allowed {allowed}")

    if not _real(q) or not 0.0 < q <= 1.0:
        bad("q", q, "0 < q <= 1 (the sampling rate)")
    if not _real(sigma) or not 0.0 < sigma < math.inf:
        bad("sigma", sigma, "a finite noise multiplier > 0")
    if (
        isinstance(steps, bool)
        or not isinstance(steps, int | float)
        or steps != int(steps)
        or steps < 1
    ):
        bad("steps", steps, "an integer >= 1")
    if not _real(delta) or not 0.0 < delta < 1.0:
        bad("delta", delta, "0 < delta < 1")
    if method is not None and method not in METHODS:
        bad("method", method, f"one of {list(METHODS)}")


def _real(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
