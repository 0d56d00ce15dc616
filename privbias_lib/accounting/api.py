"""epsilon, noise calibration and side-by-side comparison over every accountant."""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Iterable

import pandas as pd

from .errors import AccountingError
from .methods import METHODS, UPPER_BOUND, validate

DEFAULT_METHODS = ("edgeworth", "edgeworth2", "rdp", "prv", "prv-estimate", "gdp", "pld")
SIGMA_RANGE = (1e-2, 1e3)


def epsilon(q: float, sigma: float, steps: int, delta: float, method: str = "pld") -> float:
    """Epsilon of ``steps`` steps of the Poisson-subsampled Gaussian (q, sigma) at ``delta``.

    ``method``: "edgeworth", "edgeworth2", "prv-estimate" and "gdp" are *estimates*;
    "rdp", "prv" and "pld" are rigorous upper bounds (see :data:`METHODS`). Quote an
    upper bound when a guarantee is meant.
    """
    validate(q, sigma, steps, delta, method)
    try:
        with warnings.catch_warnings():  # numeric warnings inside the libraries; the
            warnings.simplefilter("ignore", RuntimeWarning)  # result is checked below
            eps = METHODS[method].compute(float(q), float(sigma), int(steps), float(delta))
    except AccountingError:
        raise
    except (ArithmeticError, ValueError, RuntimeError, AssertionError) as e:
        raise AccountingError(
            f"{method} could not compute epsilon at q={q}, sigma={sigma}, steps={steps}, "
            f"delta={delta}: {type(e).__name__}: {e}"
        ) from e
    if math.isnan(eps):
        raise AccountingError(
            f"{method} returned NaN at q={q}, sigma={sigma}, steps={steps}, delta={delta}"
        )
    # epsilon(delta) = inf{eps >= 0 : ...}; PRV's bound can dip below 0 by its error
    # margin, and max(0, bound) is still a bound.
    return max(float(eps), 0.0)


def is_upper_bound(method: str) -> bool:
    """Whether ``method`` gives a guarantee (an upper bound) rather than an estimate."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid: allowed one of {list(METHODS)}")
    return METHODS[method].kind == UPPER_BOUND


def noise_multiplier(
    target_epsilon: float,
    q: float,
    steps: int,
    delta: float,
    method: str = "pld",
    *,
    rtol: float = 1e-4,
) -> float:
    """The smallest sigma whose epsilon is at most ``target_epsilon``, to relative ``rtol``
    (memoised: runs at several seeds share one calibration). See :func:`_calibrate`."""
    validate(q, 1.0, steps, delta, method)
    if not isinstance(target_epsilon, int | float) or not 0 < target_epsilon < math.inf:
        raise ValueError(
            f"target_epsilon={target_epsilon!r} is invalid: allowed a finite value > 0"
        )
    return _calibrate(float(target_epsilon), float(q), int(steps), float(delta), method, rtol)


@functools.lru_cache(maxsize=256)
def _calibrate(
    target_epsilon: float, q: float, steps: int, delta: float, method: str, rtol: float
) -> float:
    """The smallest sigma whose epsilon is at most ``target_epsilon``, to relative ``rtol``.

    A bracket [lo, hi] with eps(lo) > target >= eps(hi) is found by doubling and then
    shrunk by the Illinois (regula falsi) method on log sigma until hi/lo - 1 <= rtol;
    ``hi`` is returned, so the target always holds at the returned sigma. A setting
    where an accountant fails (e.g. the Edgeworth expansion has no root) counts as
    "not private enough". Raises ValueError if even sigma = 1000 misses the target.
    """

    def gap(log_sigma: float) -> float:
        try:
            eps = epsilon(q, math.exp(log_sigma), steps, delta, method)
        except AccountingError:
            return math.inf
        return eps - target_epsilon if math.isfinite(eps) else math.inf

    lo_bound, hi_bound = (math.log(s) for s in SIGMA_RANGE)
    hi = 0.0
    g_hi = gap(hi)
    while g_hi > 0:
        if hi >= hi_bound:
            raise ValueError(
                f"target_epsilon={target_epsilon} cannot be reached with {method}: even "
                f"sigma={SIGMA_RANGE[1]:g} gives more at q={q}, steps={steps}, delta={delta}"
            )
        hi = min(hi + math.log(2.0), hi_bound)
        g_hi = gap(hi)
    lo = hi - math.log(2.0)
    g_lo = gap(lo)
    while g_lo <= 0:
        if lo <= lo_bound:
            return math.exp(lo_bound)
        hi, g_hi = lo, g_lo
        lo = max(lo - math.log(2.0), lo_bound)
        g_lo = gap(lo)

    side = 0
    while math.exp(hi - lo) - 1.0 > rtol:
        if math.isfinite(g_lo):
            mid = hi - g_hi * (hi - lo) / (g_hi - g_lo)
            # keep the step inside the bracket and away from its ends
            span = hi - lo
            mid = min(max(mid, lo + 0.01 * rtol * span), hi - 0.01 * rtol * span)
        else:
            mid = 0.5 * (lo + hi)
        g_mid = gap(mid)
        if g_mid > 0:
            lo, g_lo = mid, g_mid
            if side == -1 and math.isfinite(g_hi):
                g_hi *= 0.5
            side = -1
        else:
            hi, g_hi = mid, g_mid
            if side == 1 and math.isfinite(g_lo):
                g_lo *= 0.5
            side = 1
        if not (math.isfinite(g_lo) and math.isfinite(g_hi)):
            side = 0
    return math.exp(hi)


def compare(
    q: float,
    sigma: float,
    steps: int,
    delta: float,
    methods: Iterable[str] = DEFAULT_METHODS,
) -> pd.DataFrame:
    """One row per accountant: epsilon, whether it is an upper bound or an estimate,
    the seconds it took, and the error if it failed (epsilon is then NaN)."""
    methods = list(methods)
    for m in methods:  # every name checked before any slow accountant runs
        validate(q, sigma, steps, delta, m)
    rows = []
    for m in methods:
        start = time.perf_counter()
        try:
            eps, error = epsilon(q, sigma, steps, delta, m), ""
        except AccountingError as e:
            eps, error = math.nan, str(e)
        rows.append(
            {
                "method": m,
                "epsilon": eps,
                "kind": METHODS[m].kind,
                "seconds": time.perf_counter() - start,
                "source": METHODS[m].source,
                "error": error,
            }
        )
    return pd.DataFrame(rows)
