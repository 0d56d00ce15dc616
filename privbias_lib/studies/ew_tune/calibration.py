"""Study 2, Part A: the accountants — epsilon curves of every method, the noise each of
EW-Tune's accountants calibrates for a target epsilon at EW-Tune's four task settings,
and the audit of those noise levels by PLD (pure computation, no training)."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from ...accounting import METHODS, epsilon, noise_multiplier
from .params import AUDITOR, CALIBRATED, TASK_SIZES, EWTuneParams

EW_BATCH, EW_EPOCHS = 2000, 20
ACCOUNTANT_NAMES = {"edgeworth": "Edgeworth", "prv": "PRV", "rdp": "RDP", "pld": "PLD"}


# EW-Tune's logs: sigma chosen by each accountant for epsilon = 8, and validation accuracy
_PAPER = """
mnli 1e-5 .557 .581 .6255 81.13 80.72 80.86
mnli 1e-6 .573 .607 .650 80.76 80.45 80.33
qnli 1e-5 .711 .7295 .793 87.36 87.30 87.15
qnli 1e-6 .7395 .768 .829 86.47 86.79 86.19
qqp 1e-5 .5635 .587 .6325 84.97 85.08 84.84
qqp 1e-6 .580 .6135 .6575 84.64 84.75 84.60
sst2 1e-5 .7865 .817 .8775 91.49 91.16 91.61
"""


def task_setting(task: str) -> tuple[float, int]:
    """EW-Tune's sampling rate and step count for ``task``: q = 2000/N, T = 20 floor(N/2000)."""
    if task not in TASK_SIZES:
        raise ValueError(f"task={task!r} is not one of {list(TASK_SIZES)}")
    n = TASK_SIZES[task]
    return EW_BATCH / n, EW_EPOCHS * (n // EW_BATCH)


def paper_table() -> pd.DataFrame:
    """EW-Tune's noise multipliers and accuracies, tidy: task, delta, method, sigma,
    accuracy (percent)."""
    rows = []
    for line in _PAPER.strip().splitlines():
        task, delta, *v = line.split()
        for i, method in enumerate(CALIBRATED):
            rows.append((task, float(delta), method, float(v[i]), float(v[3 + i])))
    return pd.DataFrame(rows, columns=["task", "delta", "method", "sigma", "accuracy"])


def noise_reduction(sigma_edgeworth: float, sigma_other: float) -> float:
    """EW-Tune's headline: the noise cut in percent, 100 (sigma_other - sigma_ew) / sigma_other."""
    return 100.0 * (sigma_other - sigma_edgeworth) / sigma_other


def _timed_epsilon(q: float, sigma: float, steps: int, delta: float, method: str) -> dict:
    from ...accounting import AccountingError

    start = time.perf_counter()
    try:
        eps, error = epsilon(q, sigma, steps, delta, method), ""
    except AccountingError as e:
        eps, error = math.nan, str(e)
    return {"epsilon": eps, "seconds": time.perf_counter() - start, "error": error}


def epsilon_curves(params: EWTuneParams) -> pd.DataFrame:
    """Epsilon of every method in ``CURVE_METHODS`` at each of ``CURVE_TASKS``' sampling
    rate and the first delta: against the steps (``CURVE_STEPS`` and the task's T, at
    EW-Tune's Edgeworth sigma for that task, at that delta where it has one, else the
    first one, or 1.0 if the paper has none) and against sigma (at the task's T).
    Tidy: task, curve, method, kind, q, steps, sigma, delta, epsilon, seconds, error."""
    delta = params.deltas[0]
    paper = paper_table()
    rows = []
    for task in params.curve_tasks:
        q, steps = task_setting(task)
        ew = paper[(paper.task == task) & (paper.method == "edgeworth")]
        at_delta = ew[ew.delta == delta]
        sigma = float((at_delta if len(at_delta) else ew).sigma.iloc[0]) if len(ew) else 1.0
        grid = [("steps", s, sigma) for s in sorted({*params.curve_steps, steps})]
        grid += [("sigma", steps, s) for s in params.curve_sigmas]
        for curve, t, s in grid:
            for m in params.curve_methods:
                rows.append(
                    {
                        "task": task,
                        "curve": f"vs {curve}",
                        "method": m,
                        "kind": METHODS[m].kind,
                        "q": q,
                        "steps": int(t),
                        "sigma": float(s),
                        "delta": delta,
                        **_timed_epsilon(q, s, int(t), delta, m),
                    }
                )
    return pd.DataFrame(rows)


def _calibrated(target: float, q: float, steps: int, delta: float, method: str):
    """(sigma, "") or (NaN, the reason) when ``method`` cannot reach the target."""
    from ...accounting import AccountingError

    try:
        return noise_multiplier(target, q, steps, delta, method), ""
    except (AccountingError, ValueError) as e:
        return math.nan, str(e)


def calibration_table(params: EWTuneParams) -> pd.DataFrame:
    """The sigma each of EW-Tune's accountants needs for ``TARGET_EPSILON`` at each task
    and delta, beside the sigma in EW-Tune's logs. Tidy: task, delta, q, steps, method,
    kind, sigma, paper_sigma, seconds."""
    paper = paper_table().set_index(["task", "delta", "method"]).sigma
    rows = []
    for task in params.tasks:
        q, steps = task_setting(task)
        for delta in params.deltas:
            for m in CALIBRATED:
                start = time.perf_counter()
                sigma, error = _calibrated(params.target_epsilon, q, steps, delta, m)
                rows.append(
                    {
                        "task": task,
                        "delta": delta,
                        "q": q,
                        "steps": steps,
                        "method": m,
                        "kind": METHODS[m].kind,
                        "sigma": sigma,
                        "paper_sigma": paper.get((task, delta, m), np.nan),
                        "seconds": time.perf_counter() - start,
                        "error": error,
                    }
                )
    return pd.DataFrame(rows)


def sigma_table(calibration: pd.DataFrame) -> pd.DataFrame:
    """One row per task and delta: each accountant's sigma (ours and the paper's) and the
    noise reduction of Edgeworth against PRV and RDP in percent (ours and the paper's)."""
    wide = calibration.pivot_table(
        index=["task", "delta"], columns="method", values=["sigma", "paper_sigma"]
    )
    out = pd.DataFrame(index=wide.index)
    for m in CALIBRATED:
        out[f"sigma_{m}"] = wide[("sigma", m)]
    for m in CALIBRATED:
        out[f"paper_sigma_{m}"] = wide.get(("paper_sigma", m), np.nan)
    for other in ("prv", "rdp"):
        out[f"reduction_vs_{other}_pct"] = noise_reduction(
            out["sigma_edgeworth"], out[f"sigma_{other}"]
        )
        out[f"paper_reduction_vs_{other}_pct"] = noise_reduction(
            out["paper_sigma_edgeworth"], out[f"paper_sigma_{other}"]
        )
    return out


def sigma_overview(sigmas: pd.DataFrame) -> pd.DataFrame:
    """`sigma_table` for reading: one column pair (ours, paper) per quantity."""
    quantities = {
        **{f"\N{GREEK SMALL LETTER SIGMA} {ACCOUNTANT_NAMES[m]}": f"sigma_{m}" for m in CALIBRATED},
        "less noise than PRV (%)": "reduction_vs_prv_pct",
        "less noise than RDP (%)": "reduction_vs_rdp_pct",
    }
    columns = {
        (quantity, source): sigmas[column if source == "ours" else f"paper_{column}"]
        for quantity, column in quantities.items()
        for source in ("ours", "paper")
    }
    return pd.DataFrame(columns, index=sigmas.index)


def audit_table(params: EWTuneParams, calibration: pd.DataFrame) -> pd.DataFrame:
    """What each calibrated sigma (ours and EW-Tune's) really gives: epsilon by the
    Edgeworth estimate, by PLD (the near-exact rigorous value) and by PRV's upper bound,
    and PLD's excess over the target. Tidy per (task, delta, method, source)."""
    rows = []
    for r in calibration.itertuples():
        for source, sigma in [("ours", r.sigma), ("paper", r.paper_sigma)]:
            if not np.isfinite(sigma):
                continue
            eps = {m: _timed_epsilon(r.q, sigma, r.steps, r.delta, m)["epsilon"] for m in (
                "edgeworth", AUDITOR, "prv")}  # fmt: skip
            rows.append(
                {
                    "task": r.task,
                    "delta": r.delta,
                    "steps": r.steps,
                    "method": r.method,
                    "source": source,
                    "sigma": sigma,
                    "epsilon_edgeworth": eps["edgeworth"],
                    "epsilon_pld": eps[AUDITOR],
                    "epsilon_prv_bound": eps["prv"],
                    "pld_excess": eps[AUDITOR] - params.target_epsilon,
                }
            )
    return pd.DataFrame(rows)


def finetune_audit(params: EWTuneParams, delta: float | None = None) -> pd.DataFrame:
    """Where the Edgeworth estimate is accurate: for each fine-tuning-sized (q, T) and
    target epsilon, the sigma Edgeworth calibrates and PLD's epsilon at that sigma, with
    PLD's own sigma for the same target. Tidy: q, steps, target, sigma_edgeworth,
    epsilon_pld, relative_error (Edgeworth's under-count, (PLD - target) / PLD),
    sigma_pld."""
    delta = params.deltas[0] if delta is None else delta
    rows = []
    for q in params.audit_sample_rates:
        for steps in params.audit_steps:
            for target in params.audit_epsilons:
                s_ew, error = _calibrated(target, q, steps, delta, "edgeworth")
                s_pld, error_pld = _calibrated(target, q, steps, delta, AUDITOR)
                eps_pld = (
                    _timed_epsilon(q, s_ew, steps, delta, AUDITOR)["epsilon"]
                    if np.isfinite(s_ew)
                    else math.nan
                )
                rows.append(
                    {
                        "q": q,
                        "steps": steps,
                        "delta": delta,
                        "target": target,
                        "sigma_edgeworth": s_ew,
                        "epsilon_pld": eps_pld,
                        "relative_error": (eps_pld - target) / eps_pld,
                        "sigma_pld": s_pld,
                        "error": "; ".join(e for e in (error, error_pld) if e),
                    }
                )
    return pd.DataFrame(rows)


def describe_audit(audit: pd.DataFrame, finetune: pd.DataFrame, target: float) -> str:
    """The audit in plain words: what the Edgeworth noise levels really give by PLD at
    EW-Tune's settings, and where in the fine-tuning grid Edgeworth is accurate."""
    lines = []
    ew = audit[(audit.method == "edgeworth") & (audit.source == "ours")]
    if len(ew):
        lo, hi = ew.epsilon_pld.min(), ew.epsilon_pld.max()
        lines.append(
            f"At EW-Tune's task settings, the noise Edgeworth calibrates for epsilon = "
            f"{target:g} is, by PLD, ({lo:.2f} to {hi:.2f}, delta)-DP: "
            f"{100 * (lo - target) / target:.0f}% to {100 * (hi - target) / target:.0f}% more "
            "than the target. Quote the PLD number as the guarantee."
        )
    for method in ("prv", "rdp"):
        part = audit[(audit.method == method) & (audit.source == "ours")]
        if len(part):
            hi = part.epsilon_pld.max()
            within = "within" if hi <= target * 1.001 else "ABOVE"
            lines.append(
                f"The noise {method.upper()} calibrates gives, by PLD, epsilon "
                f"{part.epsilon_pld.min():.2f} to {hi:.2f}: {within} the target."
            )
    grid = finetune.dropna(subset=["relative_error"]) if len(finetune) else finetune
    if len(grid):
        ok = grid[grid.relative_error.abs() <= 0.02]
        under = grid[grid.relative_error > 0.02]
        text = (
            f"Fine-tuning grid: Edgeworth is within 2% of PLD in {len(ok)} of {len(grid)} "
            f"settings and under-counts by more in {len(under)}"
        )
        if len(under):
            worst = under.loc[under.relative_error.idxmax()]
            text += (
                f"; the largest under-count is {100 * worst.relative_error:.1f}% of the PLD "
                f"epsilon (q={worst.q:g}, T={int(worst.steps)}, target {worst.target:g})"
            )
        over = grid[grid.relative_error < -0.02]
        if len(over):
            text += f"; in {len(over)} it over-counts (conservative) by more than 2%"
        lines.append(text + ".")
    return "\n".join(lines)


def paper_gains() -> pd.DataFrame:
    """From EW-Tune's logs: accuracy (points) of the Edgeworth-noise model minus the PRV
    and the RDP model, per task and delta."""
    wide = paper_table().pivot_table(index=["task", "delta"], columns="method", values="accuracy")
    return pd.DataFrame(
        {
            "edgeworth_minus_prv": wide["edgeworth"] - wide["prv"],
            "edgeworth_minus_rdp": wide["edgeworth"] - wide["rdp"],
        }
    )
