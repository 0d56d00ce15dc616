"""A private run's privacy as a value: (q, sigma, steps, delta, sampling) plus epsilons.

The record can be saved next to results and recomputed later by any accountant of
:mod:`privbias_lib.accounting`; it always carries a rigorous upper bound beside the
calibrating accountant's value, which may be an estimate.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass

from ..accounting import epsilon, is_upper_bound, noise_multiplier
from .config import PrivacyConfig

log = logging.getLogger(__name__)

POISSON = "poisson"
SHUFFLE = "shuffle"


@dataclass(frozen=True)
class PrivacyRecord:
    """What a DP-SGD run spent. ``epsilon`` comes from ``accountant`` (its ``kind`` says
    whether that is an upper bound or an estimate); ``epsilon_bound`` always from the
    rigorous ``bound_accountant``. ``steps`` counts the noisy steps actually taken.
    Under shuffled (non-Poisson) batches both numbers are those of Poisson sampling and
    are not a proven guarantee for the run: ``sampling`` says which scheme ran."""

    q: float
    sigma: float
    steps: int
    planned_steps: int
    delta: float
    max_grad_norm: float
    sampling: str
    dataset_size: int
    expected_batch_size: int
    accountant: str
    kind: str
    epsilon: float
    bound_accountant: str
    epsilon_bound: float
    target_epsilon: float | None

    def recompute(self, method: str) -> float:
        """Epsilon of this run by another accountant."""
        return epsilon(self.q, self.sigma, self.steps, self.delta, method)

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_delta(cfg: PrivacyConfig, n: int) -> float:
    """``cfg.delta``, or 1/N when None; warns when delta >= 1/N (such a delta allows
    releasing one whole example outright)."""
    delta = 1.0 / n if cfg.delta is None else float(cfg.delta)
    if delta >= 1.0 / n:
        warnings.warn(
            f"delta={delta:g} >= 1/N = {1.0 / n:g} for N={n} training examples: a "
            "mechanism that publishes one random example satisfies this; prefer delta << 1/N",
            stacklevel=3,
        )
    return delta


def calibrate(cfg: PrivacyConfig, q: float, steps: int, delta: float) -> float:
    """The noise multiplier: the configured one, or the smallest reaching the target
    epsilon by ``cfg.accountant`` over ``steps`` planned steps."""
    if cfg.noise_multiplier is not None:
        return float(cfg.noise_multiplier)
    return noise_multiplier(cfg.target_epsilon, q, steps, delta, cfg.accountant)


def _eps(q: float, sigma: float, steps: int, delta: float, method: str) -> float:
    if steps == 0:
        return 0.0
    if sigma == 0:
        return math.inf
    return epsilon(q, sigma, steps, delta, method)


def make_record(
    cfg: PrivacyConfig,
    *,
    q: float,
    sigma: float,
    steps: int,
    planned_steps: int,
    delta: float,
    dataset_size: int,
    expected_batch_size: int,
) -> PrivacyRecord:
    """Account a finished (or stopped-early) run by both accountants."""
    sampling = POISSON if cfg.poisson_sampling else SHUFFLE
    if sampling == SHUFFLE:
        log.warning(
            "DP run used shuffled fixed-size batches; the epsilons reported assume Poisson "
            "sampling and are not a proven guarantee for this run"
        )
    eps = _eps(q, sigma, steps, delta, cfg.accountant)
    bound = (
        eps
        if cfg.bound_accountant == cfg.accountant
        else _eps(q, sigma, steps, delta, cfg.bound_accountant)
    )
    return PrivacyRecord(
        q=q,
        sigma=sigma,
        steps=steps,
        planned_steps=planned_steps,
        delta=delta,
        max_grad_norm=float(cfg.max_grad_norm),
        sampling=sampling,
        dataset_size=dataset_size,
        expected_batch_size=expected_batch_size,
        accountant=cfg.accountant,
        kind="upper bound" if is_upper_bound(cfg.accountant) else "estimate",
        epsilon=eps,
        bound_accountant=cfg.bound_accountant,
        epsilon_bound=bound,
        target_epsilon=cfg.target_epsilon,
    )
