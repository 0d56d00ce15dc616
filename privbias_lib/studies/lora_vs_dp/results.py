"""Study 3's results: the tidy table, the summary per method, the claim check and the
paper's claims beside them."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ...metrics.memorisation import MIA_ATTACKS, chance_exposure
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


def tidy_results(runs: list[dict], params=None) -> pd.DataFrame:
    """One row per run x group x metric. Groups: ``<split>/<category>`` token sets,
    ``all`` (leakage, utility), ``mia/<attack>``, ``canary/<repeats>x``, ``cost``,
    ``privacy``; with ``params``, ``checkpoint/<step>`` (the trajectory, on its subset of
    dialogues) and ``matched/<share>`` (at that share of full fine-tuning's utility gain,
    for the runs that reach it).
    DP rows carry the accountant that produced each epsilon."""
    rows = []
    for r in runs:
        head = {k: r[k] for k in HEAD}

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
            add(group, "chance_exposure", chance_exposure(c["space_size"]))
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
    if params is not None:
        rows += _trajectory_rows(runs, params)
    return pd.DataFrame(rows)


HEAD = ("run", "model", "method", "label", "rank", "seed")  # a run's columns in every row

TRAJECTORY_METRICS = (
    "utility_loss",
    "leakage",
    "leakage_ci_low",
    "leakage_ci_high",
    "non_sensitive_memorisation",
)
MATCHED_METRICS = (
    "utility_level",
    "leakage",
    "leakage_ci_low",
    "leakage_ci_high",
    "non_sensitive_memorisation",
    "mia_auc_reference",
)


def _trajectory_rows(runs: list[dict], params) -> list[dict]:
    """``checkpoint/<step>`` rows of every run's trajectory and ``matched/<share>`` rows of
    the levels it reaches."""
    from .trajectory import compare

    heads = {(r["model"], r["label"]): {k: r[k] for k in HEAD} for r in runs}
    comparison = compare(runs, params)
    traj, matched = comparison.trajectories, comparison.matched
    extra = [c for c in traj.columns if c.startswith(("mia_auc_", "exposure_"))]
    reached = matched[matched.reached] if len(matched) else matched
    rows = []
    for frame, group, metrics in (
        (traj, lambda t: f"checkpoint/{int(t.step)}", (*TRAJECTORY_METRICS, *extra)),
        (reached, lambda m: f"matched/{m.share:g}", MATCHED_METRICS),
    ):
        for _, t in frame.iterrows():
            head = {**heads[t.model, t.label], "subgroup": group(t)}
            rows += [{**head, "metric": m, "value": float(t[m]), "accountant": ""} for m in metrics]
    return rows


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
    "model", "LoRA", "DP run", "leakage full FT", "leakage DP", "leakage LoRA",
    "share of full FT's excess leakage LoRA removes", "LoRA ≈ DP on privacy",
    "not compared because",
]  # fmt: skip


def dp_reference(labels, target_epsilon: float = 8.0) -> str | None:
    """The DP run LoRA is compared with: DP full, else DP-LoRA at ``target_epsilon``, else
    the first DP-LoRA run."""
    labels = list(labels)
    if "dp_full" in labels:
        return "dp_full"
    dp = [lbl for lbl in labels if lbl.startswith("dp_lora")]
    same = [lbl for lbl in dp if lbl.endswith(f"-eps{target_epsilon:g}")]
    return (same or dp or [None])[0]


def claim_check(
    table: pd.DataFrame, target_epsilon: float = 8.0, tolerance: float = 0.25
) -> pd.DataFrame:
    """Per model: does "LoRA ≈ DP on privacy" hold after the same training budget? Each LoRA
    rank's leakage is compared with the DP run's (:func:`dp_reference`: DP full, else DP-LoRA
    at ``target_epsilon``); it holds when the difference is at most ``tolerance`` times full
    fine-tuning's excess over DP, i.e. LoRA closes at least 75% of that gap. A model whose
    run lacks one of the three gets one row saying which."""
    rows = []
    for model, part in table.groupby(level="model", sort=False):
        leak = part["leakage (nats/token)"].droplevel("model")
        loras = [lbl for lbl in leak.index if lbl.startswith("lora")]
        dp_label = dp_reference(leak.index, target_epsilon)
        needed = {"full fine-tuning": "full" in leak, "DP run": dp_label is not None}
        needed["LoRA"] = bool(loras)
        missing = [name for name, present in needed.items() if not present]
        if missing:
            rows.append(
                {
                    "model": model,
                    "LoRA": ", ".join(loras) or "—",
                    "not compared because": f"no {' and no '.join(missing)} in this run: the "
                    "comparison needs full fine-tuning, a DP run and LoRA",
                }
            )
            continue
        full, dp = leak["full"], leak[dp_label]
        for label in loras:
            gap = full - dp
            closed = (full - leak[label]) / gap if gap > 0 else math.nan
            rows.append(
                {
                    "model": model,
                    "LoRA": label,
                    "DP run": dp_label,
                    "leakage full FT": full,
                    "leakage DP": dp,
                    "leakage LoRA": leak[label],
                    "share of full FT's excess leakage LoRA removes": closed,
                    "LoRA ≈ DP on privacy": bool(closed >= 1 - tolerance)
                    if not math.isnan(closed)
                    else None,
                    "not compared because": ""
                    if not math.isnan(closed)
                    else f"full fine-tuning leaks no more than {dp_label}: no gap to close",
                }
            )
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def write_tables(output_dir, table: pd.DataFrame, claims: pd.DataFrame, comparison=None):
    """The summary and claim tables as CSV beside ``results.csv``; with ``comparison``
    (:func:`~.trajectory.compare`) also the trajectories, each run at the matched-utility
    levels and LoRA's paired differences there."""
    from ..._io import atomic_path

    frames = {"summary.csv": table.reset_index(), "claim_check.csv": claims}
    if comparison is not None:
        frames["trajectories.csv"] = comparison.trajectories
        frames["matched_utility.csv"] = comparison.matched
        frames["matched_differences.csv"] = comparison.differences
    paths = []
    for name, frame in frames.items():
        target = Path(output_dir) / name
        with atomic_path(target) as tmp:
            frame.to_csv(tmp, index=False)
        paths.append(target)
    return paths


def matched_table(matched: pd.DataFrame) -> pd.DataFrame:
    """Leakage at matched utility as the notebook shows it: one row per model and share of
    full fine-tuning's utility gain, one column per run, "estimate [low, high]" or "not
    reached"."""
    if matched.empty:
        return pd.DataFrame()

    def cell(r):
        if not r.reached:
            return "not reached"
        if math.isnan(r.leakage_ci_low):
            return f"{r.leakage:+.3f}"
        return f"{r.leakage:+.3f} [{r.leakage_ci_low:+.3f}, {r.leakage_ci_high:+.3f}]"

    shown = matched.assign(cell=[cell(r) for r in matched.itertuples()])
    wide = shown.pivot_table(
        index=["model", "share", "utility_level"],
        columns="label",
        values="cell",
        aggfunc="first",
        sort=False,
    )
    wide = wide[list(dict.fromkeys(matched.label))]
    wide.index = wide.index.set_names(["model", "share of full FT's gain", "test loss"])
    return wide


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
            holds = "holds" if verdict else "does not hold"
            lines.append(
                f"  {row['LoRA']} removes {share:.0%} of full fine-tuning's excess leakage over"
                f" {row['DP run']}: 'LoRA ≈ DP on privacy' {holds} by the 75% criterion."
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


CANARY_INFO = ("candidates", "chance (bits)", "largest possible (bits)")  # then one per run


def canary_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per canary: times inserted, candidate space, the exposure expected by chance
    and the largest possible, then each run's exposure (means over seeds)."""
    part = results[results.subgroup.str.startswith("canary/")]
    if part.empty:
        return pd.DataFrame()
    wide = part.pivot_table(index="subgroup", columns="metric", values="value", aggfunc="first")
    runs = part[part.metric == "exposure"].pivot_table(
        index="subgroup", columns="label", values="value", sort=False
    )
    order = list(dict.fromkeys(part.label))
    table = pd.DataFrame(
        {
            "times inserted": [
                int(g.removeprefix("canary/").removesuffix("x")) for g in wide.index
            ],
            "candidates": (2 ** wide["max_exposure"]).round().astype(int).to_numpy(),
            "chance (bits)": wide["chance_exposure"].to_numpy(),
            "largest possible (bits)": wide["max_exposure"].to_numpy(),
        },
        index=wide.index,
    ).join(runs[[c for c in order if c in runs.columns]])
    return table.sort_values("times inserted").set_index("times inserted")
