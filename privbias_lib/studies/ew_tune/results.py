"""Study 2's results: the training runs as tidy rows, the accuracy table, and every
number of both parts in one tidy table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .params import CALIBRATED, NON_PRIVATE


def training_rows(runs: list[dict]) -> pd.DataFrame:
    """Each run's accuracy, cost and privacy as tidy rows (metric, value, accountant)."""
    rows = []
    for r in runs:
        method = r["accountant"] or NON_PRIVATE
        base = {"part": "training", "run": r["run"], "method": method, "seed": r["seed"]}
        items = [
            ("val_accuracy", r["val_accuracy"], ""),
            ("val_loss", r["val_loss"], ""),
            ("train_seconds", r["seconds"], ""),
            ("steps", r["history"]["steps"], ""),
        ]
        p = r["privacy"]
        if p is not None:
            items += [
                ("noise_multiplier", p["sigma"], ""),
                ("sample_rate", p["q"], ""),
                ("delta", p["delta"], ""),
                ("planned_steps", p["planned_steps"], ""),
                ("target_epsilon", p["target_epsilon"], ""),
                ("epsilon", p["epsilon"], f"{p['accountant']} ({p['kind']})"),
                ("epsilon_bound", p["epsilon_bound"], f"{p['bound_accountant']} (upper bound)"),
            ]
        for metric, value, acc in items:
            rows.append({**base, "metric": metric, "value": float(value), "accountant": acc})
    return pd.DataFrame(rows)


def accuracy_table(training: pd.DataFrame) -> pd.DataFrame:
    """Per method: sigma, epsilon by its own accountant and by PLD (means over seeds),
    and the validation accuracy's mean and standard deviation over seeds (percent)."""
    wide = training.pivot_table(index=["method", "seed"], columns="metric", values="value")
    acc = wide.val_accuracy * 100
    out = pd.DataFrame(
        {
            "seeds": acc.groupby(level="method").size(),
            "accuracy_mean": acc.groupby(level="method").mean(),
            "accuracy_sd": acc.groupby(level="method").std(ddof=1),
        }
    )
    for col in ("noise_multiplier", "epsilon", "epsilon_bound", "steps"):
        if col in wide:
            out[col] = wide[col].groupby(level="method").mean()
    order = [m for m in (NON_PRIVATE, *CALIBRATED) if m in out.index]
    order += [m for m in out.index if m not in order]
    return out.reindex(order)


def tidy_results(
    curves: pd.DataFrame,
    calibration: pd.DataFrame,
    audit: pd.DataFrame,
    finetune: pd.DataFrame,
    training: pd.DataFrame,
) -> pd.DataFrame:
    """Every number of the study in one tidy table: part, setting, method, source, seed,
    metric, value, accountant (who produced an epsilon, and whether it is a bound)."""
    frames = []
    if len(curves):
        c = curves.assign(
            part="curves",
            setting=lambda d: (
                d.curve
                + ": q="
                + d.q.round(6).astype(str)
                + " T="
                + d.steps.astype(str)
                + " sigma="
                + d.sigma.round(4).astype(str)
            ),
            metric="epsilon",
            value=curves.epsilon,
            accountant=curves.method + " (" + curves.kind + ")",
            reason=curves.error,
        )
        frames.append(c)
    if len(calibration):
        frames.append(
            calibration.assign(
                part="calibration",
                setting=lambda d: d.task + " delta=" + d.delta.astype(str),
                metric="sigma",
                value=calibration.sigma,
                accountant=calibration.method + " (" + calibration.kind + ")",
                reason=calibration.get("error", ""),
            )
        )
    if len(audit):
        long = audit.melt(
            id_vars=["task", "delta", "method", "source", "sigma"],
            value_vars=["epsilon_edgeworth", "epsilon_pld", "epsilon_prv_bound"],
            var_name="metric",
            value_name="value",
        )
        by = {"epsilon_edgeworth": "edgeworth (estimate)", "epsilon_pld": "pld (upper bound)",
              "epsilon_prv_bound": "prv (upper bound)"}  # fmt: skip
        frames.append(
            long.assign(
                part="audit",
                setting=lambda d: (
                    d.task
                    + " delta="
                    + d.delta.astype(str)
                    + " sigma="
                    + d.sigma.round(6).astype(str)
                ),
                accountant=long.metric.map(by),
                metric="epsilon",
            )
        )
    if len(finetune):
        # per grid cell: Edgeworth's sigma, PLD's epsilon at it, PLD's own sigma, the error
        items = [
            ("sigma", "sigma_edgeworth", "edgeworth", "edgeworth (estimate)"),
            ("epsilon", "epsilon_pld", "edgeworth", "pld (upper bound)"),
            ("relative_error", "relative_error", "edgeworth", ""),
            ("sigma", "sigma_pld", "pld", "pld (upper bound)"),
        ]
        for metric, col, method, acc in items:
            frames.append(
                finetune.assign(
                    part="finetune_audit",
                    setting=lambda d: (
                        "q="
                        + d.q.astype(str)
                        + " T="
                        + d.steps.astype(str)
                        + " delta="
                        + d.delta.astype(str)
                        + " target="
                        + d.target.map("{:g}".format)  # 8, not 8.0, however it was written
                    ),
                    method=method,
                    metric=metric,
                    value=finetune[col],
                    accountant=acc,
                    reason=finetune.get("error", ""),
                )
            )
    if len(training):
        frames.append(training.assign(setting="training"))
    cols = ["part", "run", "setting", "method", "source", "seed", "subgroup", "metric", "value",
            "accountant", "reason"]  # fmt: skip
    out = pd.concat(frames, ignore_index=True)
    for c in cols:
        if c not in out:
            out[c] = np.nan if c == "seed" else ""
    text = ["run", "source", "accountant", "reason"]
    out[text] = out[text].fillna("")
    # a run is one computation: a training run, or an accountant at one setting
    computed = out.run == ""
    out.loc[computed, "run"] = (
        out.part
        + "/"
        + out.setting
        + "/"
        + out.method
        + out.source.map(lambda s: f"/{s}" if s else "")
    )[computed]
    out["subgroup"] = "all"  # this study has no identity groups
    return out[cols]
