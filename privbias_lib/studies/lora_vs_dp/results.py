"""Study 3's results: the tidy table, the summary per method, the claim check and the
paper's claims beside them."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ...metrics.memorisation import MIA_ATTACKS
from .params import BASE

# The paper's qualitative findings (no numbers were published for these measures).
PAPER_CLAIMS = [
    ("full", "worst privacy/utility trade-off: leaks most on sensitive tokens"),
    ("dp_full", "private (little leakage) but expensive in time and memory"),
    ("lora", "close to DP-SGD on privacy, keeps utility, cheap"),
    ("dp_lora", "not in the paper (asked for by reviewers)"),
]


# Microsoft dp-transformers anchor (GPT-2 on Reddit, eps = 8, 8 x V100, 3 epochs).
EFFICIENCY_ANCHOR = pd.DataFrame(
    [
        ("full fine-tune, DP", 1944, 3.75, 3.61),
        ("full fine-tune, no DP", 1227, 3.56, 3.46),
        ("LoRA (dim 4, alpha 32), DP", 1128, 3.74, 3.60),
        ("LoRA, no DP", 1006, 3.70, 3.58),
    ],
    columns=["setting", "time_s", "train_loss", "eval_loss"],
)


def tidy_results(runs: list[dict]) -> pd.DataFrame:
    """One row per run x group x metric. Groups: ``<split>/<category>`` token sets,
    ``all`` (leakage, utility), ``mia/<attack>``, ``canary/<repeats>x``, ``cost``,
    ``privacy``. DP rows carry the accountant that produced each epsilon."""
    rows = []
    for r in runs:
        head = {k: r[k] for k in ("run", "model", "method", "label", "rank", "seed")}

        def add(group, metric, value, accountant="", head=head):
            v = math.nan if value is None else float(value)
            rows.append(
                {**head, "subgroup": group, "metric": metric, "value": v, "accountant": accountant}
            )

        rep = r["report"]
        for split in ("train", "test"):
            for cat in ("sensitive", "non_sensitive"):
                for metric in ("n_tokens", "loss", "base_loss", "gain"):
                    add(f"{split}/{cat}", metric, rep[split][cat][metric])
        for metric in ("leakage", "non_sensitive_memorisation", "utility_loss"):
            add("all", metric, rep[metric])
        add("all", "utility_perplexity", rep["utility_perplexity"])
        for metric in ("leakage", "non_sensitive_memorisation"):
            if f"{metric}_ci" in rep:
                lo, hi = rep[f"{metric}_ci"]
                add("all", f"{metric}_ci_low", lo)
                add("all", f"{metric}_ci_high", hi)
        # explicit orders: a payload read back from the run store has its keys sorted
        for attack in MIA_ATTACKS:
            for metric in ("auc", "tpr_at_fpr"):
                add(f"mia/{attack}", metric, r["mia"][attack][metric])
        for c in r["canaries"]:
            group = f"canary/{c['repeats']}x"
            add(group, "exposure", c["exposure"], c["exposure_method"])
            add(group, "max_exposure", math.log2(c["space_size"]))
        if r["cost"] is not None:
            for metric in (
                "wall_time_s",
                "seconds_per_step",
                "steps",
                "peak_memory_mb",
                "trainable_parameters",
                "total_parameters",
                "final_train_loss",
            ):
                add("cost", metric, r["cost"][metric])
        p = r["privacy"]
        if p is not None:
            add("privacy", "epsilon", p["epsilon"], f"{p['accountant']} ({p['kind']})")
            add(
                "privacy",
                "epsilon_bound",
                p["epsilon_bound"],
                f"{p['bound_accountant']} (upper bound)",
            )
            for metric, key in (
                ("target_epsilon", "target_epsilon"),
                ("delta", "delta"),
                ("noise_multiplier", "sigma"),
                ("sample_rate", "q"),
                ("steps", "steps"),
                ("max_grad_norm", "max_grad_norm"),
            ):
                add("privacy", metric, p[key])
    return pd.DataFrame(rows)


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """The study's table: one row per model and method (LoRA per rank), means over seeds:
    leakage with its bootstrap interval, non-sensitive memorisation, utility, exposure per
    canary, MIA AUC per attack, cost and epsilon with its bound."""

    def pick(group, metric):
        part = results[(results.subgroup == group) & (results.metric == metric)]
        return part.groupby(["model", "label"], sort=False)["value"].mean()

    cols = {
        "leakage (nats/token)": pick("all", "leakage"),
        "leakage 95% CI low": pick("all", "leakage_ci_low"),
        "leakage 95% CI high": pick("all", "leakage_ci_high"),
        "non-sensitive memorisation": pick("all", "non_sensitive_memorisation"),
        "utility: test loss (non-sensitive)": pick("all", "utility_loss"),
    }
    for group in sorted(
        {g for g in results.subgroup if g.startswith("canary/")}, key=lambda g: int(g[7:-1])
    ):
        cols[f"exposure ({group[7:]} canary, bits)"] = pick(group, "exposure")
    for attack in ("loss", "zlib", "min_k", "reference"):
        cols[f"MIA AUC ({attack})"] = pick(f"mia/{attack}", "auc")
    cols["MIA TPR@FPR (reference)"] = pick("mia/reference", "tpr_at_fpr")
    cols["s/step"] = pick("cost", "seconds_per_step")
    cols["wall time (s)"] = pick("cost", "wall_time_s")
    cols["peak memory (MB)"] = pick("cost", "peak_memory_mb")
    cols["trainable parameters"] = pick("cost", "trainable_parameters")
    cols["epsilon"] = pick("privacy", "epsilon")
    cols["epsilon bound"] = pick("privacy", "epsilon_bound")
    order = pd.MultiIndex.from_frame(results[["model", "label"]].drop_duplicates())
    table = pd.DataFrame(cols).reindex(order)  # the runs' order: base, full, LoRA, DP
    for metric, column in (("epsilon", "epsilon by"), ("epsilon_bound", "bound by")):
        part = results[(results.subgroup == "privacy") & (results.metric == metric)]
        table[column] = part.groupby(["model", "label"], sort=False)["accountant"].first()
    return table


CLAIM_COLUMNS = [
    "model", "LoRA", "leakage full FT", "leakage DP full", "leakage LoRA",
    "share of full FT's excess leakage LoRA removes", "LoRA ≈ DP on privacy",
    "not compared because",
]  # fmt: skip


def claim_check(table: pd.DataFrame, tolerance: float = 0.25) -> pd.DataFrame:
    """Per model: does "LoRA ≈ DP on privacy" hold? Each LoRA rank's leakage is compared
    with DP full's; it holds when the difference is at most ``tolerance`` times full
    fine-tuning's leakage (the gap DP closes), i.e. LoRA closes at least 75% of that gap.
    A model whose run lacks one of the three methods gets one row saying which."""
    rows = []
    for model, part in table.groupby(level="model", sort=False):
        leak = part["leakage (nats/token)"].droplevel("model")
        loras = [lbl for lbl in leak.index if lbl.startswith("lora")]
        needed = {"full fine-tuning": "full" in leak, "DP full": "dp_full" in leak}
        needed["LoRA"] = bool(loras)
        missing = [name for name, present in needed.items() if not present]
        if missing:
            rows.append(
                {
                    "model": model,
                    "LoRA": ", ".join(loras) or "—",
                    "not compared because": f"no {' and no '.join(missing)} in this run: the "
                    "comparison needs full fine-tuning, DP full and LoRA",
                }
            )
            continue
        full, dp = leak["full"], leak["dp_full"]
        for label in loras:
            gap = full - dp
            closed = (full - leak[label]) / gap if gap > 0 else math.nan
            rows.append(
                {
                    "model": model,
                    "LoRA": label,
                    "leakage full FT": full,
                    "leakage DP full": dp,
                    "leakage LoRA": leak[label],
                    "share of full FT's excess leakage LoRA removes": closed,
                    "LoRA ≈ DP on privacy": bool(closed >= 1 - tolerance)
                    if not math.isnan(closed)
                    else None,
                    "not compared because": ""
                    if not math.isnan(closed)
                    else "full fine-tuning leaks no more than DP full: no gap to close",
                }
            )
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def write_tables(output_dir, table: pd.DataFrame, claims: pd.DataFrame) -> list[Path]:
    """The summary and claim tables as CSV beside ``results.csv``."""
    from ..._io import atomic_path

    paths = []
    for name, frame in (("summary.csv", table.reset_index()), ("claim_check.csv", claims)):
        target = Path(output_dir) / name
        with atomic_path(target) as tmp:
            frame.to_csv(tmp, index=False)
        paths.append(target)
    return paths


def describe_findings(table: pd.DataFrame, claims: pd.DataFrame) -> str:
    """A few sentences on what this run measured, for the notebook's reading."""
    lines = []
    for model, part in table.groupby(level="model", sort=False):
        part = part.droplevel("model")
        leak = part["leakage (nats/token)"]
        util = part["utility: test loss (non-sensitive)"]
        bits = []
        for label in [lbl for lbl in part.index if lbl != BASE]:
            lo, hi = part.loc[label, "leakage 95% CI low"], part.loc[label, "leakage 95% CI high"]
            bits.append(
                f"{label}: leakage {leak[label]:+.3f} [{lo:+.3f}, {hi:+.3f}], "
                f"utility loss {util[label]:.3f}"
            )
        base_util = util.get(BASE, math.nan)
        lines.append(f"{model} (base model's utility loss {base_util:.3f}):")
        lines += [f"  - {b}" for b in bits]
        for column in [c for c in part.columns if c.startswith("exposure (")]:
            values = ", ".join(f"{label} {part.loc[label, column]:.2f}" for label in part.index)
            lines.append(f"  {column}: {values}")
        for _, row in claims[claims.model == model].iterrows():
            share = row["share of full FT's excess leakage LoRA removes"]
            verdict = row["LoRA ≈ DP on privacy"]
            if row["not compared because"]:
                lines.append(
                    f"  'LoRA ≈ DP on privacy' not assessed: {row['not compared because']}"
                )
                continue
            lines.append(
                f"  {row['LoRA']} removes {share:.0%} of full fine-tuning's excess leakage over"
                f" DP full: 'LoRA ≈ DP on privacy' {'holds' if verdict else 'does not hold'}"
                " by the 75% criterion."
            )
    return "\n".join(lines)


def privacy_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per private run: its epsilon and bound (with the accountant that produced
    each), target, delta, sigma, q, steps and clipping norm."""
    rows = results[results.subgroup == "privacy"]
    table = rows.pivot_table(index=["model", "label"], columns="metric", values="value")
    if len(table):
        named_by = rows.groupby(["model", "label", "metric"])["accountant"].first().unstack()
        table["epsilon by"] = named_by["epsilon"]
        table["bound by"] = named_by["epsilon_bound"]
    return table
