"""Study 4's verdicts: does intrinsic bias predict prompted bias as strongly as the paper
found (Spearman rho >= 0.94 zero-/few-shot, >= 0.92 with instructions, >= 0.97 across the
few-shot sweep), and does a fairness instruction lower the bias's size?"""

from __future__ import annotations

import math

import pandas as pd

from ...verdicts import Verdict
from .params import INTRINSIC, BiasTransferParams

# (which conditions, the paper's claim, its threshold on rho)
CLAIMS = [
    ("zero- and few-shot", "zero- and few-shot prompting", 0.94),
    ("instructed", 'a "be fair" or "be stereotypical" instruction', 0.92),
    ("sweep", "the few-shot count and stereotypical mix varied", 0.97),
]


def _groups(params: BiasTransferParams) -> dict[str, list[str]]:
    named = {c.name for c in params.all_conditions()[: len(params.conditions)]}
    groups: dict[str, list[str]] = {"zero- and few-shot": [], "instructed": [], "sweep": []}
    for c in params.all_conditions():
        if c.instruction is not None:
            groups["instructed"].append(c.name)
        elif c.name in named:
            groups["zero- and few-shot"].append(c.name)
        else:
            groups["sweep"].append(c.name)
    return groups


def transfer_verdict(rows: pd.DataFrame, what: str, threshold: float) -> Verdict:
    """``rows``: one per (model, condition) with spearman, spearman_ci_low/high."""
    claim = f"intrinsic bias predicts prompted bias under {what}: Spearman rho >= {threshold}"
    if rows.empty:
        return Verdict(claim, "—", "not assessed", f"no condition of this kind ran ({what})")
    shown = "; ".join(
        f"{r.model} {r.condition}: {r.spearman:+.2f} [{r.spearman_ci_low:+.2f}, "
        f"{r.spearman_ci_high:+.2f}]"
        for r in rows.itertuples()
    )
    ours = f"Spearman rho over the occupations, 95% BCa interval: {shown}"
    lows, highs = rows.spearman_ci_low.to_numpy(float), rows.spearman_ci_high.to_numpy(float)
    if any(math.isnan(v) for v in (*lows, *highs)):
        return Verdict(claim, ours, "inconclusive", "no bootstrap interval (BOOTSTRAP = 0)")
    if (highs < threshold).all():
        positive = (lows > 0).mean()
        if positive >= 0.5:
            return Verdict(
                claim, ours, "direction only",
                f"positive in {positive:.0%} of the settings, but every interval lies below "
                f"{threshold}: a transfer far weaker than the paper's",
            )  # fmt: skip
        return Verdict(
            claim, ours, "not reproduced",
            f"every interval lies below {threshold} and most include zero: no clear transfer",
        )  # fmt: skip
    if (lows > 0).all():
        return Verdict(
            claim, ours, "reproduced",
            f"every interval is above zero and reaches the paper's {threshold}",
        )  # fmt: skip
    return Verdict(claim, ours, "inconclusive", "the intervals are too wide to tell")


def verdicts(params: BiasTransferParams, results: pd.DataFrame) -> list[Verdict]:
    """The paper's transfer claims and its fairness-instruction claim, against our run."""
    overall = results[results.subgroup == "all"]
    wide = overall.pivot_table(
        index=["model", "condition"], columns="metric", values="value", sort=False
    ).reset_index()
    for col in ("spearman", "spearman_ci_low", "spearman_ci_high"):
        if col not in wide:
            wide[col] = math.nan
    out = []
    groups = _groups(params)
    for key, what, threshold in CLAIMS:
        rows = wide[wide.condition.isin(groups[key])]
        out.append(transfer_verdict(rows, what, threshold))
    out.append(_fair_instruction(results))
    return out


def _fair_instruction(results: pd.DataFrame) -> Verdict:
    claim = (
        "a fairness instruction lowers the size of the bias (A-SB, type 2: 27.7% intrinsic, "
        "9.47% zero-shot fair, 4.16% few-shot fair)"
    )
    asb = results[(results.metric == "a_sb") & (results.subgroup == "type2")]
    fair = [c for c in asb.condition.unique() if c != INTRINSIC and "fair" in c]
    if asb.empty or not fair:
        return Verdict(claim, "—", "not assessed", "no type-2 sentence or no fair condition ran")
    bits, lower = [], []
    for model, part in asb.groupby("model", sort=False):
        by = part.set_index("condition").value
        if INTRINSIC not in by:
            continue
        for c in fair:
            if c in by:
                bits.append(f"{model}: {by[INTRINSIC]:.2f} intrinsic -> {by[c]:.2f} {c}")
                lower.append(by[c] < by[INTRINSIC])
    ours = "A-SB (mean |O-SB|), type 2: " + "; ".join(bits)
    if not lower:
        return Verdict(claim, ours, "not assessed", "no model has both measures")
    because = (
        "our A-SB is the mean absolute occupation bias, not the paper's (unpublished) "
        "aggregate, so only the direction compares; no interval on it"
    )
    if all(lower):
        return Verdict(
            claim, ours, "direction only", "lower under every fair condition; " + because
        )
    if not any(lower):
        return Verdict(claim, ours, "not reproduced", "higher under every fair condition")
    return Verdict(claim, ours, "inconclusive", "lower under some fair conditions, not others")
