"""The tuned recipe's bookkeeping: which trial each epsilon chose, the tuned models it
yields, and what the whole search cost in privacy (every trial composed by PLD, and
Papernot & Steinke's random-search bound)."""

from __future__ import annotations

import functools

import pandas as pd

from ...accounting.tuning import Trial, composed_epsilon, random_search_epsilon
from .params import DPBiasParams
from .runs import SWEEP, TUNED_RECIPE, TUNING, _label, chosen_trial


def tuned_models(params: DPBiasParams, runs: list[dict]) -> list[dict]:
    """The records the study reports as models: every sweep run (shared recipe, and the
    tuned recipe's final runs) and, per epsilon, the chosen trial as the tuning seed's
    tuned model (when that seed is one of ``SEEDS``)."""
    out = [r for r in runs if r["experiment"] == SWEEP]
    if params.tuning_seed in params.seeds:
        for eps, trials in trials_by_epsilon(runs).items():
            best = chosen_trial(trials)
            out.append({**best, "experiment": SWEEP, "run": f"tuned/eps={eps}/seed={best['seed']}"})
    return out


def trials_by_epsilon(runs: list[dict]) -> dict[str, list[dict]]:
    by: dict[str, list[dict]] = {}
    for r in runs:
        if r["experiment"] == TUNING:
            by.setdefault(_label(r["epsilon"]), []).append(r)
    return by


def _trial(record: dict) -> Trial:
    p = record["privacy"]
    return Trial(q=float(p["q"]), sigma=float(p["sigma"]), steps=int(p["steps"]))


@functools.lru_cache(maxsize=256)
def _costs(trials: tuple[Trial, ...], final: Trial | None, delta: float, mean: float):
    composed = composed_epsilon([*trials, *([final] if final else [])], delta)
    searched = random_search_epsilon(trials, delta, mean=mean, shape=1.0, final=final)
    return composed, searched


def tuning_cost_rows(params: DPBiasParams, runs: list[dict]) -> pd.DataFrame:
    """Per tuned model: the trials its search ran, and the epsilon of the whole procedure —
    its search and, for a seed other than the tuning seed, its own training run — by PLD
    over every run composed and by the random-search bound (Theorem 2, geometric K)."""
    rows = []
    trials = trials_by_epsilon(runs)
    for model in tuned_models(params, runs):
        if model["recipe"] != TUNED_RECIPE or model["privacy"] is None:
            continue
        eps = _label(model["epsilon"])
        tried = tuple(_trial(t) for t in trials.get(eps, []))
        if not tried:
            continue
        final = None if model["seed"] == params.tuning_seed else _trial(model)
        delta = float(model["privacy"]["delta"])
        composed, searched = _costs(tried, final, delta, float(params.tuning_trials))
        common = {"run": model["run"], "experiment": SWEEP, "epsilon": eps,
                  "seed": model["seed"], "recipe": TUNED_RECIPE}  # fmt: skip
        rows += [
            {**common, "metric": "tuning_trials", "value": float(len(tried)), "accountant": ""},
            {**common, "metric": "tuning_epsilon_composed", "value": composed,
             "accountant": "pld (upper bound), every trial and run composed"},
            {**common, "metric": "tuning_epsilon_search", "value": searched,
             "accountant": "rdp (upper bound), Papernot-Steinke random search, geometric K"},
        ]  # fmt: skip
    return pd.DataFrame(rows)


def tuning_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per epsilon (tuned recipe): the trials run, the setting chosen, the chosen model's
    own epsilon and the whole procedure's epsilon by both bounds (mean over seeds; the
    tuning seed's model has no separate final run, so its procedure costs less)."""
    tuned = results[(results.recipe == TUNED_RECIPE) & (results.experiment == SWEEP)]
    if tuned.empty:
        return pd.DataFrame()
    metrics = ["tuning_trials", "epsilon", "tuning_epsilon_composed", "tuning_epsilon_search",
               "learning_rate", "batch_size", "epochs", "max_grad_norm"]  # fmt: skip
    rows = tuned[(tuned.subgroup == "overall") & tuned.metric.isin(metrics)]
    wide = rows.pivot_table(index="epsilon", columns="metric", values="value", aggfunc="mean")
    order = sorted(wide.index, key=float)
    wide = wide.reindex(index=order, columns=[m for m in metrics if m in wide])
    return wide.rename(columns=TUNING_COLUMNS).rename_axis("target epsilon")


TUNING_COLUMNS = {
    "tuning_trials": "trials K",
    "epsilon": "epsilon of the model's own run (calibrating accountant)",
    "tuning_epsilon_composed": "epsilon of the whole procedure: every run composed (PLD)",
    "tuning_epsilon_search": "epsilon of the whole procedure: random search (RDP, P&S)",
    "learning_rate": "chosen learning rate",
    "batch_size": "chosen batch size",
    "epochs": "chosen epochs",
    "max_grad_norm": "chosen clipping norm",
}


def baseline_auc(results: pd.DataFrame) -> float:
    """The frozen-feature logistic regression's overall test AUC (NaN if it did not run)."""
    rows = results[(results.experiment == "baseline") & (results.metric == "overall_auc")]
    return float(rows.value.iloc[0]) if len(rows) else float("nan")


def describe_tuning(results: pd.DataFrame) -> str:
    """What tuning changed, in words: per epsilon, the overall AUC under each recipe
    (mean over seeds), and where the tuned recipe stands against the frozen-feature
    baseline and the non-private model."""
    sweep = results[(results.experiment == SWEEP) & (results.metric == "overall_auc")]
    if TUNED_RECIPE not in set(sweep.recipe):
        return "The tuned recipe did not run (RECIPES)."
    mean = sweep.groupby(["recipe", "epsilon"]).value.mean()
    lines = ["Overall test AUC, mean over seeds (shared -> tuned recipe):"]
    for eps in sorted({e for r, e in mean.index if r == TUNED_RECIPE}, key=float):
        shared = mean.get(("shared", eps), float("nan"))
        lines.append(f"  epsilon {eps}: {shared:.3f} -> {mean[(TUNED_RECIPE, eps)]:.3f}")
    base, none = baseline_auc(results), mean.get(("shared", "none"), float("nan"))
    top = max((e for r, e in mean.index if r == TUNED_RECIPE), key=float)
    lines.append(
        f"Non-private model {none:.3f}; logistic regression on frozen features (non-private) "
        f"{base:.3f}; the tuned recipe at epsilon {top}: {mean[(TUNED_RECIPE, top)]:.3f}."
    )
    return "\n".join(lines)
