"""The Edgeworth accountant (Wang et al. 2022), as used by EW-Tune.

For the Poisson-subsampled Gaussian mechanism with sample rate q and noise
multiplier sigma (mu = 1/sigma), compare P = N(0, 1) with the mixture
Q = (1-q) N(0, 1) + q N(mu, 1). The privacy-loss log-likelihood ratio is

    l(x) = log(1 - q + q exp(mu x - mu^2/2))

(evaluated as a log-sum-exp). T steps add T i.i.d. copies of l(X), under P and
under Q; their sums S_P, S_Q have cumulants T * kappa_j, and heterogeneous
histories simply add the per-step cumulants. The Edgeworth expansion
approximates the CDFs of S_P and S_Q from the first four cumulants, and

    delta(eps) = P(S_Q > eps) - e^eps P(S_P > eps).

**This is an estimate, not a bound.** At EW-Tune's MNLI setting it says 8.0 where
privacy loss distributions (PLD) say about 9.1. Report a rigorous upper bound
(``"pld"``, ``"prv"`` or ``"rdp"``) beside it whenever a guarantee is meant.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
from opacus.accountants import IAccountant, create_accountant, register_accountant
from scipy import optimize, special, stats

from .errors import AccountingError

# Composite Gauss-Legendre quadrature on [-L, mu + L]. Outside it the Gaussian
# weights are below phi(L) ~ 1e-32 at L = 12 while |l(x)|^4 grows only
# polynomially (|l(x)| <= mu |x| + mu^2/2 + |log q|), so the truncated mass is
# negligible against double precision. l is analytic with its nearest complex
# singularities pi/mu away from the real axis; panels of width <= 0.25 (<= pi/(4 mu)
# for large mu) keep 16-node Gauss-Legendre at machine precision.
_TAIL = 12.0
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(16)


class EdgeworthError(AccountingError):
    """The Edgeworth approximation gives no usable epsilon at this setting."""


@dataclass(frozen=True)
class Cumulants:
    """First four cumulants of the privacy loss under P (``p``) and Q (``q``)."""

    p: tuple[float, float, float, float]
    q: tuple[float, float, float, float]

    def __add__(self, other: Cumulants) -> Cumulants:
        return Cumulants(
            tuple(a + b for a, b in zip(self.p, other.p, strict=True)),
            tuple(a + b for a, b in zip(self.q, other.q, strict=True)),
        )

    def __mul__(self, steps: float) -> Cumulants:
        return Cumulants(tuple(steps * a for a in self.p), tuple(steps * a for a in self.q))


def privacy_loss(x: np.ndarray, q: float, sigma: float) -> np.ndarray:
    """The PLLR l(x) = log(1 - q + q exp(mu x - mu^2/2)), computed stably."""
    mu = 1.0 / sigma
    log_1mq = math.log1p(-q) if q < 1.0 else -math.inf
    return np.logaddexp(log_1mq, math.log(q) + mu * x - 0.5 * mu * mu)


def _grid(mu: float) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = -_TAIL, mu + _TAIL
    width = min(0.25, math.pi / (4.0 * mu))
    panels = math.ceil((hi - lo) / width)
    edges = np.linspace(lo, hi, panels + 1)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    x = (mid[:, None] + half[:, None] * _NODES[None, :]).ravel()
    w = (half[:, None] * _WEIGHTS[None, :]).ravel()
    return x, w


@functools.lru_cache(maxsize=4096)
def step_cumulants(q: float, sigma: float) -> Cumulants:
    """Per-step cumulants of l(X) under P and Q; computed once per (q, sigma) and cached.

    Central moments are integrated directly (not derived from raw moments) to
    avoid cancellation when q is small.
    """
    mu = 1.0 / sigma
    x, w = _grid(mu)
    loss = privacy_loss(x, q, sigma)
    dens_p = stats.norm.pdf(x)
    dens_q = (1.0 - q) * dens_p + q * stats.norm.pdf(x - mu)

    def cumulants(dens: np.ndarray) -> tuple[float, float, float, float]:
        wd = w * dens
        m1 = float(wd @ loss)
        c = loss - m1
        c2, c3, c4 = (float(wd @ c**k) for k in (2, 3, 4))
        return (m1, c2, c3, c4 - 3.0 * c2 * c2)

    return Cumulants(cumulants(dens_p), cumulants(dens_q))


def history_cumulants(history: list[tuple[float, float, int]]) -> Cumulants:
    """Cumulants of a whole training run: a list of (sigma, q, steps), Opacus's layout."""
    total = Cumulants((0.0,) * 4, (0.0,) * 4)
    for sigma, q, steps in history:
        total = total + step_cumulants(float(q), float(sigma)) * steps
    return total


def _tail(x: np.ndarray, k: tuple[float, float, float, float], order: int) -> np.ndarray:
    """Edgeworth approximation of P(S > x) = 1 - F(x) for cumulants ``k`` (vectorised)."""
    k1, k2, k3, k4 = k
    x = np.asarray(x, dtype=float)
    if k2 <= 0.0:
        return np.where(x < k1, 1.0, 0.0)
    z = (x - k1) / math.sqrt(k2)
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    corr = k3 / (6.0 * k2**1.5) * (z * z - 1.0)
    if order == 2:
        corr = corr + k4 / (24.0 * k2 * k2) * (z**3 - 3.0 * z)
        corr = corr + k3 * k3 / (72.0 * k2**3) * (z**5 - 10.0 * z**3 + 15.0 * z)
    return special.ndtr(-z) + pdf * corr


def delta_of_epsilon(eps, cum: Cumulants, order: int = 1) -> np.ndarray:
    """Edgeworth estimate of delta(eps) = P(S_Q > eps) - e^eps P(S_P > eps) (vectorised)."""
    eps = np.asarray(eps, dtype=float)
    tail_p = _tail(eps, cum.p, order)
    with np.errstate(divide="ignore", over="ignore"):
        scaled = np.sign(tail_p) * np.exp(np.minimum(eps + np.log(np.abs(tail_p)), 700.0))
    return _tail(eps, cum.q, order) - scaled


def epsilon_from_cumulants(cum: Cumulants, delta: float, order: int = 1) -> float:
    """The smallest eps >= 0 with delta(eps') <= delta for every eps' >= eps.

    A true privacy profile is non-increasing, so this is its root; the Edgeworth
    curve need not be monotone, and taking its *largest* crossing keeps the answer
    from falling into a spurious dip. The bracket's upper end grows from the mean
    privacy loss until delta(eps) falls below the target; a grid over [0, hi]
    locates the last crossing and Brent's method refines it. If delta(eps) never
    falls below the target in a sane range, :class:`EdgeworthError` says so.
    """

    def f(e):
        return delta_of_epsilon(e, cum, order) - delta

    k1q, k2q = cum.q[0], max(cum.q[1], 0.0)
    hi = max(1.0, k1q + 4.0 * math.sqrt(k2q))
    limit = max(1e4, k1q + 100.0 * math.sqrt(k2q))
    while f(hi) > 0.0:
        hi *= 2.0
        if hi > limit:
            raise EdgeworthError(
                f"the Edgeworth delta(eps) stays above delta={delta:g} up to eps={limit:g}: "
                "the expansion is unreliable here (too few steps or too skewed a privacy "
                "loss); use a rigorous accountant such as 'pld'"
            )
    grid = np.linspace(0.0, hi, 513)
    above = np.flatnonzero(f(grid) > 0.0)
    if above.size == 0:
        return 0.0
    i = int(above[-1])
    root = optimize.brentq(lambda e: float(f(e)), grid[i], grid[i + 1], xtol=1e-12, rtol=1e-12)
    return float(root)


def edgeworth_epsilon(q: float, sigma: float, steps: int, delta: float, order: int = 1) -> float:
    """Edgeworth estimate of epsilon after ``steps`` steps of (q, sigma). Not a bound."""
    return epsilon_from_cumulants(step_cumulants(float(q), float(sigma)) * steps, delta, order)


class EdgeworthAccountant(IAccountant):
    """Opacus accountant using the Edgeworth expansion (order 1 as in EW-Tune, or 2).

    Opacus finds it by name ("edgeworth"; "edgeworth2" for order 2), or set it on
    ``privacy_engine.accountant``. ``get_epsilon`` returns an *estimate*, not an upper
    bound; report :func:`privbias_lib.accounting.epsilon` with ``method="pld"`` beside it.
    """

    def __new__(cls, order: int = 1):
        # Opacus re-creates an accountant from mechanism() to calibrate sigma and checks
        # it when loading a checkpoint, so an order-2 instance must name its own order.
        order_two = cls is EdgeworthAccountant and order == 2
        return super().__new__(Edgeworth2Accountant if order_two else cls)

    def __init__(self, order: int = 1):
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order!r}")
        super().__init__()
        self.order = order

    def step(self, *, noise_multiplier: float, sample_rate: float) -> None:
        if self.history and self.history[-1][:2] == (noise_multiplier, sample_rate):
            sigma, q, steps = self.history[-1]
            self.history[-1] = (sigma, q, steps + 1)
        else:
            self.history.append((noise_multiplier, sample_rate, 1))

    def get_epsilon(self, delta: float, **kwargs) -> float:
        if not self.history:
            return 0.0
        return epsilon_from_cumulants(history_cumulants(self.history), delta, self.order)

    def __len__(self) -> int:
        return sum(steps for _, _, steps in self.history)

    @classmethod
    def mechanism(cls) -> str:
        return "edgeworth"


class Edgeworth2Accountant(EdgeworthAccountant):
    """The order-2 Edgeworth accountant ("edgeworth2"); ``EdgeworthAccountant(order=2)``."""

    def __init__(self, order: int = 2):
        if order != 2:
            raise ValueError(f"Edgeworth2Accountant has order 2, got {order!r}")
        super().__init__(order=2)

    @classmethod
    def mechanism(cls) -> str:
        return "edgeworth2"


def _register_with_opacus() -> None:
    """Register both accountants by name with Opacus 1.6's ``register_accountant``.

    Opacus has one registry: ``PrivacyEngine(accountant=...)`` and
    ``utils.get_noise_multiplier`` look names up with ``create_accountant``, and
    ``make_private_with_epsilon`` passes ``self.accountant.mechanism()`` to the latter.
    A reload re-points our names; another library's accountant is left, with a warning.
    """
    for cls in (EdgeworthAccountant, Edgeworth2Accountant):
        name = cls.mechanism()
        try:
            register_accountant(name, cls)
            continue
        except ValueError:  # the name is taken
            pass
        try:
            held = type(create_accountant(name))
        except Exception:  # a foreign class that needs arguments
            held = object
        if f"{held.__module__}.{held.__qualname__}" == f"{cls.__module__}.{cls.__qualname__}":
            register_accountant(name, cls, force=True)
        else:
            warnings.warn(
                f"Opacus already has another accountant named {name!r}; privbias_lib "
                "does not replace it",
                stacklevel=2,
            )


_register_with_opacus()
