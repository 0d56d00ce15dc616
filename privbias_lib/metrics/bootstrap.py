"""Bias-corrected and accelerated (BCa) bootstrap intervals (Efron, 1987).

A percentile interval assumes the bootstrap replicates scatter around the estimate without
bias. Statistics of noisy group means — a correlation between occupations' average biases,
say — are attenuated further in every resample, so their replicates sit below the estimate
and a percentile interval can miss the estimate altogether. BCa moves the percentiles by the
replicates' median bias ``z0`` and by the acceleration ``a`` from a jackknife.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri


def bca_interval(
    estimate: float, replicates, jackknife, level: float = 0.95
) -> tuple[float, float]:
    """The BCa interval from the estimate, its bootstrap replicates and its leave-one-out
    (jackknife) values; non-finite replicates are left out. NaN when the estimate is not
    finite, fewer than two replicates are, or every replicate lies on one side of it."""
    reps = np.asarray(replicates, float)
    reps = reps[np.isfinite(reps)]
    jack = np.asarray(jackknife, float)
    jack = jack[np.isfinite(jack)]
    if not np.isfinite(estimate) or len(reps) < 2:
        return (np.nan, np.nan)
    share_below = (np.sum(reps < estimate) + np.sum(reps <= estimate)) / (2 * len(reps))
    if share_below in (0.0, 1.0):
        return (np.nan, np.nan)
    z0 = ndtri(share_below)
    spread = jack.mean() - jack if len(jack) else np.zeros(1)
    scale = np.sum(spread**2)
    accel = np.sum(spread**3) / (6 * scale**1.5) if scale > 0 else 0.0
    z = ndtri(np.array([(1 - level) / 2, (1 + level) / 2]))
    shares = ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z)))
    low, high = np.quantile(reps, shares)
    return (float(low), float(high))
