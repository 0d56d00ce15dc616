"""Study 3's verdicts: does full fine-tuning leak the most, is LoRA about as private as
DP-SGD (and at what utility), and is DP-SGD the expensive one?"""

from __future__ import annotations

import math

import pandas as pd

from ...verdicts import Verdict
from .params import BASE
from .results import CANARY_INFO

LEAK, LOW, HIGH = "leakage (nats/token)", "leakage 95% CI low", "leakage 95% CI high"
UTILITY = "utility: test loss (non-sensitive)"
MATCHED_GAIN = 0.75  # LoRA counts as at full fine-tuning's utility with 75% of its gain


def _method(label: str) -> str:
    return label.split("-r")[0]


def full_leaks_most(table: pd.DataFrame) -> Verdict:
    claim = "full fine-tuning leaks the most on sensitive tokens"
    bits, outcomes = [], []
    for model, part in table.groupby(level="model", sort=False):
        part = part.droplevel("model").drop(index=BASE, errors="ignore")
        if "full" not in part.index or len(part) < 2:
            continue
        others = part.drop(index="full")
        full = part.loc["full"]
        bits.append(
            f"{model}: full {full[LEAK]:+.3f} [{full[LOW]:+.3f}, {full[HIGH]:+.3f}], next "
            f"{others[LEAK].max():+.3f} ({others[LEAK].idxmax()})"
        )
        if full[LOW] > others[HIGH].max():
            outcomes.append("reproduced")
        elif full[LEAK] > others[LEAK].max():
            outcomes.append("inconclusive")
        else:
            outcomes.append("not reproduced")
    if not outcomes:
        return Verdict(
            claim, "—", "not assessed", "the run lacks full fine-tuning or another method"
        )
    ours = "; ".join(bits)
    if all(o == "reproduced" for o in outcomes):
        return Verdict(claim, ours, "reproduced", "its interval lies above every other method's")
    if "not reproduced" in outcomes:
        return Verdict(claim, ours, "not reproduced", "another method leaks as much or more")
    return Verdict(claim, ours, "inconclusive", "highest, but the intervals overlap")


def lora_like_dp(table: pd.DataFrame, claims: pd.DataFrame) -> Verdict:
    claim = "LoRA is about as private as DP-SGD (at the same training budget)"
    compared = claims[claims["not compared because"] == ""]
    if compared.empty:
        why = claims["not compared because"].iloc[0] if len(claims) else "no claim rows"
        return Verdict(claim, "—", "not assessed", why)
    bits, held, matched = [], [], []
    for _, row in compared.iterrows():
        part = table.loc[row["model"]]
        base, full, lora = (part.loc[k, UTILITY] for k in (BASE, "full", row["LoRA"]))
        gain = (base - lora) / (base - full) if base > full else math.nan
        share = row["share of full FT's excess leakage LoRA removes"]
        bits.append(
            f"{row['model']} {row['LoRA']}: removes {share:.0%} of full FT's excess leakage "
            f"over {row['DP run']}, with {gain:.0%} of its utility gain"
        )
        held.append(bool(row["LoRA ≈ DP on privacy"]))
        matched.append(gain >= MATCHED_GAIN)
    ours = "; ".join(bits) + " (same epochs and batch size for every method)"
    if not any(matched):
        return Verdict(
            claim, ours, "inconclusive",
            "LoRA learned much less than full fine-tuning here, so its low leakage may just be "
            "less learning: the claim needs a comparison at matched utility",
        )  # fmt: skip
    fair = [h for h, m in zip(held, matched, strict=True) if m]
    if all(fair):
        return Verdict(
            claim, ours, "reproduced",
            "it removes most of full FT's excess leakage while keeping most of its utility gain",
        )  # fmt: skip
    if not any(fair):
        return Verdict(
            claim, ours, "not reproduced",
            "keeping most of full FT's utility gain, LoRA leaks clearly more than DP",
        )  # fmt: skip
    return Verdict(claim, ours, "inconclusive", "some ranks hold, others not")


def dp_costs_more(table: pd.DataFrame) -> Verdict:
    claim = "DP-SGD on the full model is the expensive method (time per step)"
    bits, slower = [], []
    for model, part in table.groupby(level="model", sort=False):
        part = part.droplevel("model")
        if "dp_full" in part.index and "full" in part.index:
            ratio = part.loc["dp_full", "s/step"] / part.loc["full", "s/step"]
            bits.append(f"{model}: DP full {ratio:.1f}x the seconds per step of full fine-tuning")
            slower.append(ratio > 1.2)
    if not slower:
        return Verdict(
            claim, "—", "not assessed",
            "the run lacks DP full or full fine-tuning (the cpu profile leaves DP full out to "
            "fit 15 minutes: add it with -p METHODS '[full, lora, dp_full, dp_lora]')",
        )  # fmt: skip
    ours = "; ".join(bits)
    if all(slower):
        return Verdict(claim, ours, "reproduced", "per-example gradients cost time at every model")
    return Verdict(claim, ours, "not reproduced", "not clearly slower here")


def _pairs(diffs: pd.DataFrame | None, other) -> pd.DataFrame | None:
    """LoRA's differences from the runs ``other(label)`` selects, where both reach."""
    if diffs is None or diffs.empty:
        return diffs
    return diffs[diffs.a.str.startswith("lora") & diffs.b.map(other) & diffs.difference.notna()]


def lora_below_full_at_matched_utility(diffs: pd.DataFrame) -> Verdict:
    """Is LoRA's lower leakage more than less learning? LoRA minus full fine-tuning's
    leakage at the same utility, with its paired bootstrap interval, at every level both
    reach."""
    claim = "LoRA mitigates memorisation: it leaks less than full fine-tuning (same utility)"
    part = _pairs(diffs, lambda b: b == "full")
    if part is None or part.empty:
        return Verdict(
            claim, "—", "not assessed", "no utility level reached by both LoRA and full fine-tuning"
        )
    bits = [
        f"{r.a} - full at {r.share:.0%} of full FT's utility gain: {r.difference:+.3f} "
        f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
        for r in part.itertuples()
    ]
    below = (part.ci_high < 0).to_numpy()
    above = (part.ci_low > 0).to_numpy()
    ours = "; ".join(bits) + " (nats/token, 95% bootstrap over dialogues)"
    if below.all():
        return Verdict(claim, ours, "reproduced", "LoRA leaks less at every utility both reach")
    if above.any():
        return Verdict(
            claim, ours, "not reproduced", "at some utility LoRA leaks more than full fine-tuning"
        )
    if below.any():
        return Verdict(
            claim,
            ours,
            "inconclusive",
            "LoRA leaks less at some utility levels; at others the interval holds 0",
        )
    return Verdict(
        claim,
        ours,
        "inconclusive",
        "at the same utility the interval of LoRA - full fine-tuning holds 0: LoRA's "
        "lower leakage at the same budget may be just less learning",
    )


def lora_like_dp_at_matched_utility(matched: pd.DataFrame, diffs: pd.DataFrame) -> Verdict:
    """ "LoRA ≈ DP" where both reach the same utility: LoRA closes at least 75% of full
    fine-tuning's excess leakage over DP at that utility (the matched-budget criterion),
    judged with the interval of LoRA - DP."""
    claim = "LoRA is about as private as DP-SGD while keeping utility (same utility)"
    part = _pairs(diffs, lambda b: b.startswith("dp_"))
    if part is None or part.empty:
        best = ""
        if matched is not None and not matched.empty:
            dp = matched[matched.method.str.startswith("dp_") & matched.reached]
            best = (
                f" (the DP runs reach at most {dp.share.max():.0%} of it)"
                if len(dp)
                else " (the DP runs reach none of the levels)"
            )
        return Verdict(
            claim,
            "—",
            "not assessed",
            f"no DP run reaches the utility levels of full fine-tuning's gain that LoRA "
            f"reaches{best}: DP learned too little here to be compared",
        )
    leak = matched.set_index(["model", "share", "label"]).leakage
    bits, outcomes = [], []
    for r in part.itertuples():
        full = leak.get((r.model, r.share, "full"), math.nan)
        dp = leak.get((r.model, r.share, r.b), math.nan)
        gap = full - dp
        allowed = (1 - MATCHED_GAIN) * gap
        bits.append(
            f"{r.a} - {r.b} at {r.share:.0%}: {r.difference:+.3f} [{r.ci_low:+.3f}, "
            f"{r.ci_high:+.3f}] (full FT's excess {gap:+.3f})"
        )
        if not gap > 0:
            outcomes.append("no gap")
        elif r.ci_high <= allowed:
            outcomes.append("reproduced")
        elif r.ci_low > allowed:
            outcomes.append("not reproduced")
        else:
            outcomes.append("inconclusive")
    ours = "; ".join(bits)
    judged = [o for o in outcomes if o != "no gap"]
    if not judged:
        return Verdict(
            claim,
            ours,
            "not assessed",
            "where DP reaches, full fine-tuning leaks no more than DP: there is no "
            "leakage for LoRA to avoid at those utilities",
        )
    if all(o == "reproduced" for o in judged):
        return Verdict(
            claim,
            ours,
            "reproduced",
            "LoRA removes at least 75% of full FT's excess leakage at the same utility",
        )
    if all(o == "not reproduced" for o in judged):
        return Verdict(claim, ours, "not reproduced", "LoRA leaks clearly more than DP there")
    return Verdict(claim, ours, "inconclusive", "the intervals cover both")


def verdicts(
    table: pd.DataFrame,
    claims: pd.DataFrame,
    matched: pd.DataFrame | None = None,
    diffs: pd.DataFrame | None = None,
) -> list[Verdict]:
    out = [full_leaks_most(table), lora_like_dp(table, claims)]
    if matched is not None:
        out += [
            lora_like_dp_at_matched_utility(matched, diffs),
            lora_below_full_at_matched_utility(diffs),
        ]
    return [*out, dp_costs_more(table)]


def leakage_onset(traj: pd.DataFrame, label: str = "full") -> pd.DataFrame:
    """Per model, the first checkpoint where ``label``'s leakage interval lies above zero,
    with the share of its final utility gain reached there (no row when it never does)."""
    rows = []
    for model, part in traj[traj.label == label].groupby("model", sort=False):
        part = part.sort_values("step")
        base, final = part.utility_loss.iloc[0], part.utility_loss.iloc[-1]
        above = part[part.leakage_ci_low > 0]
        if len(above):
            first = above.iloc[0]
            share = (base - first.utility_loss) / (base - final) if base > final else math.nan
            rows.append(
                {
                    "model": model,
                    "step": int(first.step),
                    "leakage": first.leakage,
                    "utility_loss": first.utility_loss,
                    "share_of_gain": share,
                }
            )
    return pd.DataFrame(rows)


def _dp_curve(table: pd.DataFrame) -> list[str]:
    """DP-LoRA's share of full fine-tuning's utility gain at each epsilon, per model."""
    lines = []
    for model, part in table.groupby(level="model", sort=False):
        part = part.droplevel("model")
        util = part[UTILITY]
        dp = [label for label in part.index if label.startswith("dp_lora")]
        if not dp or BASE not in util or "full" not in util or not util[BASE] > util["full"]:
            continue
        gain = util[BASE] - util["full"]
        bits = ", ".join(
            f"ε = {part.loc[label, 'epsilon']:.3g}: {(util[BASE] - util[label]) / gain:.0%}"
            for label in sorted(dp, key=lambda lbl: part.loc[lbl, "epsilon"])
        )
        lines.append(f"- {model}: DP-LoRA reaches {bits} of full fine-tuning's utility gain.")
    return lines


def _positive_control(table: pd.DataFrame, canaries: pd.DataFrame | None) -> list[str]:
    """Does full fine-tuning expose a canary well above chance, and the others on it?"""
    if canaries is None or canaries.empty or "full" not in canaries.columns:
        return []
    best = canaries["full"].idxmax()
    row = canaries.loc[best]
    chance = row["chance (bits)"]
    others = [c for c in canaries.columns if c not in ("full", BASE, *CANARY_INFO)]
    seen = "; ".join(f"{c} {row[c]:.2f}" for c in others)
    # an exact exposure e puts the secret at rank |R| 2^-e: a uniform rank does at least as
    # well with probability 2^-e, the p-value of "memorised" against chance
    p_value = 2.0 ** -row["full"]
    verdict = "above" if p_value <= 0.05 else "not clearly above"
    return [
        f"- The positive control: full fine-tuning exposes the canary inserted {best} times at "
        f"{row['full']:.2f} bits, {verdict} the chance level {chance:.2f} (p = {p_value:.3g} "
        f"under a uniform rank; largest possible {row['largest possible (bits)']:.2f}). The "
        f"other methods on the same canary: {seen}."
    ]


def answer(table: pd.DataFrame, comparison, canaries: pd.DataFrame | None = None) -> str:
    """The study's answer in words, from the numbers: LoRA against DP and against full
    fine-tuning at matched utility, where full fine-tuning starts to leak, the canary that
    shows memorisation can be seen, DP-LoRA's utility against epsilon and each method's
    cost."""
    lines = []
    diffs, matched = comparison.differences, comparison.matched
    for v in (
        lora_like_dp_at_matched_utility(matched, diffs),
        lora_below_full_at_matched_utility(diffs),
    ):
        lines.append(f"- {v.claim}: **{v.outcome}** — {v.because}.")
    onset = leakage_onset(comparison.trajectories)
    for r in onset.itertuples():
        lines.append(
            f"- {r.model}: full fine-tuning's leakage is first clearly above zero at step "
            f"{r.step}, having reached {r.share_of_gain:.0%} of its final utility gain (test "
            f"loss {r.utility_loss:.2f}, leakage {r.leakage:+.3f} nats/token)."
        )
    traj = comparison.trajectories
    if onset.empty and not traj.empty and "full" in set(traj.label):
        lines.append("- Full fine-tuning's leakage interval never lies above zero here.")
    lines += _positive_control(table, canaries)
    lines += _dp_curve(table)
    for model, part in table.groupby(level="model", sort=False):
        part = part.droplevel("model").drop(index=BASE, errors="ignore")
        costs = "; ".join(
            f"{label}: {row['s/step']:.2f} s/step, {row['peak memory (MB)']:,.0f} MB, "
            f"{row['trainable parameters']:,.0f} trained parameters"
            for label, row in part.iterrows()
        )
        lines.append(f"- Cost on {model} — {costs}.")
    return "\n".join(lines)
