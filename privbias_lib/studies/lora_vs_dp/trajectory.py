"""Study 3's trajectories: every run measured at checkpoints during training, and the
methods compared at matched utility.

A checkpoint is measured on a fixed subset of the training (member) and test dialogues
(``TRAJECTORY_TEXTS`` of each); the last point is the end-of-training model, measured on
the same subset (read from its scores on all texts: no extra scoring), the first is the
base model (step 0: zero leakage by definition). A point keeps per-dialogue token sums, so
leakage and utility can be resampled by dialogue for the intervals.

**Matched utility.** Utility levels are shares ``s`` of full fine-tuning's gain in utility,
``u(s) = u_base - s (u_base - u_full)`` with ``u`` the test loss on non-sensitive tokens at
the end of training. A method's leakage at ``u(s)`` is read off its trajectory where it
first reaches that utility, by linear interpolation between the two checkpoints around the
crossing (:func:`interpolate_at_utility`); a method that never gets there has no value.
Intervals resample member and test dialogues (the same draws for every method and
checkpoint, so differences between methods are paired).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from ...metrics.memorisation import MIA_ATTACKS, mia_report, mia_scores, text_category_sums

SENSITIVE, NON_SENSITIVE = 0, 1  # column order of the per-dialogue arrays


def checkpoint_steps(total_steps: int, points: int) -> list[int]:
    """``points`` checkpoints, doubling up to the last step: ``T/2^(points-1), …, T/2, T``
    rounded (at least step 1, duplicates dropped). Early steps change a model most, so they
    get the most points."""
    if total_steps < 1 or points < 1:
        raise ValueError(f"total_steps={total_steps}, points={points}: both must be >= 1")
    steps = {max(1, round(total_steps / 2**k)) for k in range(points)}
    return sorted(steps)


def subset_indices(n: int, size: int | None, seed: int, name: str) -> np.ndarray:
    """A fixed, sorted random subset of ``size`` of ``n`` dialogues (all when ``size`` is
    None or at least ``n``), drawn from ``seed`` and the split's ``name``."""
    if size is None or size >= n:
        return np.arange(n)
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    return np.sort(rng.choice(n, size=size, replace=False))


def _arrays(sums: pd.DataFrame) -> dict[str, list]:
    """Per dialogue and category (sensitive, non-sensitive): token count, summed gain and
    summed NLL, as nested lists (JSON for the run store)."""
    out = {}
    for key in ("n", "gain", "nll"):
        wide = sums.pivot(index="text", columns="category", values=key)
        out[key] = wide[["sensitive", "non_sensitive"]].to_numpy().tolist()
    return out


def point(step: int, scored: dict, base: dict, labels: dict, texts: dict, min_k: float) -> dict:
    """One trajectory point from the subset's scores (``scored``/``base``/``labels``/``texts``
    keyed by ``members`` and ``test``): per-dialogue sums, MIA AUCs and canary exposures."""
    sums = {s: text_category_sums(scored[s], base[s], labels[s]) for s in ("members", "test")}
    attack = {s: mia_scores(scored[s], base[s], texts[s], min_k=min_k) for s in ("members", "test")}
    mia = mia_report(attack["members"], attack["test"])
    return {
        "step": step,
        "members": _arrays(sums["members"]),
        "test": _arrays(sums["test"]),
        "mia_auc": {name: values["auc"] for name, values in mia.items()},
        "canaries": [
            {k: c[k] for k in ("canary_id", "repeats", "exposure", "space_size")}
            for c in scored["canaries"]
        ],
    }


def restrict(scored: dict, subset: dict[str, np.ndarray]) -> dict:
    """Scores (or labels, or texts) of the subset's dialogues only; canaries unchanged."""
    out = {s: [scored[s][i] for i in subset[s]] for s in ("members", "test")}
    if "canaries" in scored:
        out["canaries"] = scored["canaries"]
    return out


# --- reading trajectories -------------------------------------------------------------------


def _stack(traj: list[dict], split: str, key: str) -> np.ndarray:
    return np.asarray([p[split][key] for p in traj], float)  # [points, dialogues, 2]


def measures(traj: list[dict], w_members=None, w_test=None) -> dict[str, np.ndarray]:
    """Utility, leakage and non-sensitive memorisation at every point of a trajectory;
    with dialogue weights ``w_*`` of shape ``[replicates, dialogues]`` (bootstrap counts),
    one row per replicate (shape ``[replicates, points]``), else shape ``[points]``."""
    m_n, t_n = _stack(traj, "members", "n")[0], _stack(traj, "test", "n")[0]
    m_gain, t_gain = _stack(traj, "members", "gain"), _stack(traj, "test", "gain")
    t_nll = _stack(traj, "test", "nll")
    single = w_members is None
    wm = np.ones((1, m_n.shape[0])) if single else np.asarray(w_members, float)
    wt = np.ones((1, t_n.shape[0])) if single else np.asarray(w_test, float)

    def pooled(w, gain, n, c):  # [replicates, points]
        with np.errstate(invalid="ignore", divide="ignore"):
            return (w @ gain[:, :, c].T) / (w @ n[:, c])[:, None]

    out = {
        "utility_loss": pooled(wt, t_nll, t_n, NON_SENSITIVE),
        "leakage": pooled(wm, m_gain, m_n, SENSITIVE) - pooled(wt, t_gain, t_n, SENSITIVE),
        "non_sensitive_memorisation": pooled(wm, m_gain, m_n, NON_SENSITIVE)
        - pooled(wt, t_gain, t_n, NON_SENSITIVE),
    }
    return {k: v[0] for k, v in out.items()} if single else out


def interpolate_at_utility(utility, values, level: float) -> float:
    """The value of a trajectory where its utility (a loss: lower is better) first reaches
    ``level``: linear between the last point above the level and the first at or below it.
    NaN when no point reaches it; the first point's value when it already does."""
    u, v = np.asarray(utility, float), np.asarray(values, float)
    reached = np.flatnonzero(u <= level)
    if reached.size == 0:
        return math.nan
    k = int(reached[0])
    if k == 0:
        return float(v[0])
    t = (u[k - 1] - level) / (u[k - 1] - u[k])
    return float(v[k - 1] + t * (v[k] - v[k - 1]))


def _weights(n: int, replicates: int, rng) -> np.ndarray:
    draws = rng.integers(0, n, (replicates, n))
    return np.stack([np.bincount(row, minlength=n) for row in draws]).astype(float)


def _dialogue_weights(traj: list[dict], bootstrap: int, seed: int):
    """Bootstrap counts of the member and test dialogues (``[bootstrap, dialogues]`` each),
    drawn from ``seed``: the same draws for every run and point, so comparisons are paired.
    None without bootstrap."""
    if not bootstrap:
        return None
    rng = np.random.default_rng(seed)
    return tuple(_weights(len(traj[0][s]["n"]), bootstrap, rng) for s in ("members", "test"))


def _interval(values) -> tuple[float, float]:
    """The 95% percentile interval of the finite values (NaN, NaN when there are none)."""
    finite = np.asarray(list(values), dtype=float)
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return math.nan, math.nan
    lo, hi = np.quantile(finite, [0.025, 0.975])
    return float(lo), float(hi)


def trajectory_table(records: list[dict], bootstrap: int, seed: int) -> pd.DataFrame:
    """One row per fine-tuning run and point: step, utility, leakage with its bootstrap
    interval, non-sensitive memorisation, MIA AUCs and canary exposures."""
    rows = []
    for r in records:
        traj = r.get("trajectory")
        if not traj:
            continue
        point_values = measures(traj)
        ci = _leakage_intervals(traj, bootstrap, seed)
        for k, p in enumerate(traj):
            row = {
                "model": r["model"],
                "label": r["label"],
                "method": r["method"],
                "step": p["step"],
                **{m: float(v[k]) for m, v in point_values.items()},
                "leakage_ci_low": ci[0][k],
                "leakage_ci_high": ci[1][k],
            }
            # explicit order: a payload read back from the run store has its keys sorted
            row.update({f"mia_auc_{a}": p["mia_auc"][a] for a in MIA_ATTACKS})
            row.update({f"exposure_{c['repeats']}x": c["exposure"] for c in p["canaries"]})
            rows.append(row)
    return pd.DataFrame(rows)


def _leakage_intervals(traj, bootstrap: int, seed: int, level: float = 0.95):
    weights = _dialogue_weights(traj, bootstrap, seed)
    if weights is None:
        return [math.nan] * len(traj), [math.nan] * len(traj)
    leak = measures(traj, *weights)["leakage"]
    alpha = (1 - level) / 2
    lo, hi = np.nanquantile(leak, [alpha, 1 - alpha], axis=0)
    return lo.tolist(), hi.tolist()


def utility_levels(records: list[dict], model: str, shares) -> dict[float, float]:
    """The utility (test loss) at each share of full fine-tuning's utility gain for
    ``model`` (the best final utility of any run when there is no full fine-tuning)."""
    finals = {
        r["label"]: measures(r["trajectory"])["utility_loss"][-1]
        for r in records
        if r["model"] == model and r.get("trajectory")
    }
    if not finals:
        return {}
    first = next(r for r in records if r["model"] == model and r.get("trajectory"))
    base = measures(first["trajectory"])["utility_loss"][0]
    top = finals.get("full", min(finals.values()))
    return {float(s): float(base - s * (base - top)) for s in shares}


class _Measured(NamedTuple):
    record: dict
    values: dict  # measures at each point
    replicates: dict | None  # their bootstrap replicates (None without bootstrap)


def _measured_by_model(records: list[dict], shares, bootstrap: int, seed: int):
    """Per model: its utility levels and each run (by label) with its measures and their
    bootstrap replicates, on the same dialogue draws for every run."""
    for model in dict.fromkeys(r["model"] for r in records if r.get("trajectory")):
        runs = [r for r in records if r["model"] == model and r.get("trajectory")]
        weights = _dialogue_weights(runs[0]["trajectory"], bootstrap, seed)
        measured = {
            r["label"]: _Measured(
                r,
                measures(r["trajectory"]),
                None if weights is None else measures(r["trajectory"], *weights),
            )
            for r in runs
        }
        yield model, utility_levels(records, model, shares), measured


def _at(values: dict, key: str, level: float) -> float:
    return interpolate_at_utility(values["utility_loss"], values[key], level)


def matched_utility(records: list[dict], shares, bootstrap: int, seed: int) -> pd.DataFrame:
    """Each run's leakage (with a bootstrap interval over dialogues), non-sensitive
    memorisation and reference-attack MIA AUC at every utility level it reaches; one row per
    model x share x run, ``reached`` False (and NaNs) where the run never gets there."""
    rows = []
    for model, levels, measured in _measured_by_model(records, shares, bootstrap, seed):
        for label, (r, v, reps) in measured.items():
            mia = [p["mia_auc"]["reference"] for p in r["trajectory"]]
            for share, level in levels.items():
                leak = _at(v, "leakage", level)
                lo = hi = math.nan
                if reps is not None and not math.isnan(leak):
                    lo, hi = _interval(
                        interpolate_at_utility(u, lk, level)
                        for u, lk in zip(reps["utility_loss"], reps["leakage"], strict=True)
                    )
                rows.append(
                    {
                        "model": model,
                        "share": share,
                        "utility_level": level,
                        "label": label,
                        "method": r["method"],
                        "reached": not math.isnan(leak),
                        "leakage": leak,
                        "leakage_ci_low": lo,
                        "leakage_ci_high": hi,
                        "non_sensitive_memorisation": _at(v, "non_sensitive_memorisation", level),
                        "mia_auc_reference": interpolate_at_utility(v["utility_loss"], mia, level),
                    }
                )
    return pd.DataFrame(rows)


def matched_differences(
    records: list[dict], shares, bootstrap: int, seed: int, pairs
) -> pd.DataFrame:
    """Paired differences of leakage at matched utility, ``a - b`` for each ``(a, b)`` of
    ``pairs`` (run labels), with a bootstrap interval (the same dialogue draws for both)."""
    rows = []
    for model, levels, measured in _measured_by_model(records, shares, bootstrap, seed):
        for a, b in pairs:
            if a not in measured or b not in measured:
                continue
            (_, va, ra), (_, vb, rb) = measured[a], measured[b]
            for share, level in levels.items():
                diff = _at(va, "leakage", level) - _at(vb, "leakage", level)
                lo = hi = math.nan
                if ra is not None and not math.isnan(diff):
                    lo, hi = _interval(
                        interpolate_at_utility(ua, xa, level)
                        - interpolate_at_utility(ub, xb, level)
                        for ua, xa, ub, xb in zip(
                            ra["utility_loss"],
                            ra["leakage"],
                            rb["utility_loss"],
                            rb["leakage"],
                            strict=True,
                        )
                    )
                rows.append(
                    {
                        "model": model,
                        "share": share,
                        "utility_level": level,
                        "a": a,
                        "b": b,
                        "difference": diff,
                        "ci_low": lo,
                        "ci_high": hi,
                    }
                )
    return pd.DataFrame(rows)


def comparison_pairs(records: list[dict]) -> list[tuple[str, str]]:
    """Every LoRA rank against full fine-tuning and against every DP run."""
    labels = list(dict.fromkeys(r["label"] for r in records if r.get("trajectory")))
    loras = [lbl for lbl in labels if lbl.startswith("lora")]
    others = [lbl for lbl in labels if lbl == "full" or lbl.startswith("dp_")]
    return [(a, b) for a in loras for b in others]


@dataclass
class Comparison:
    """The trajectories, each run at the matched-utility levels, and LoRA's paired
    differences from full fine-tuning and from DP there."""

    trajectories: pd.DataFrame
    matched: pd.DataFrame
    differences: pd.DataFrame


def compare(records: list[dict], params) -> Comparison:
    b, seed, shares = params.bootstrap, params.data_seed, params.utility_shares
    return Comparison(
        trajectories=trajectory_table(records, b, seed),
        matched=matched_utility(records, shares, b, seed),
        differences=matched_differences(records, shares, b, seed, comparison_pairs(records)),
    )
