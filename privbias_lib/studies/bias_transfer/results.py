"""Study 4's results: the tidy measures (O-SB per occupation, accuracy, A-SB, the
transfer correlations with BCa intervals) and the summary tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ...metrics import coreference as cr
from .data import StudyData
from .params import INTRINSIC, BiasTransferParams


def measures(params: BiasTransferParams, data: StudyData, scores: dict) -> pd.DataFrame:
    """Tidy results: run (model/condition), subgroup, metric, value (see the notebook)."""
    from ...data import occupation_stats

    women = occupation_stats().set_index("occupation")["share_women_pct"]
    clean = data.pairs[data.pairs.pronoun_only].reset_index(drop=True)
    keep = data.pairs.pronoun_only.to_numpy()
    rows = []

    def add(run, model, condition, subgroup, metric, value):
        rows.append(
            {
                "run": run,
                "model": model,
                "condition": condition,
                "subgroup": subgroup,
                "metric": metric,
                "value": float(value) if value is not None else math.nan,
            }
        )

    conditions = params.all_conditions()
    for name, per_model in scores.items():
        intr = per_model[INTRINSIC]
        all_m_ll, all_f_ll = np.asarray(intr["male_ll"]), np.asarray(intr["female_ll"])
        m_ll, f_ll = all_m_ll[keep], all_f_ll[keep]
        intrinsic = cr.intrinsic_osb(clean, m_ll, f_ll)
        run = f"{name}/{INTRINSIC}"
        for occ, r in intrinsic.iterrows():
            add(run, name, INTRINSIC, occ, "osb", r.osb)
            add(run, name, INTRINSIC, occ, "mean_llr", r.mean_llr)
        pro_pref = np.where(clean.pro == cr.MALE, m_ll > f_ll, f_ll > m_ll).mean()
        add(run, name, INTRINSIC, "all", "pro_preference", pro_pref)
        add(run, name, INTRINSIC, "all", "a_sb", intrinsic.osb.abs().mean())
        for t in params.types:
            part = clean.type.to_numpy() == t
            sub = cr.intrinsic_osb(clean[part], m_ll[part], f_ll[part])
            add(run, name, INTRINSIC, f"type{t}", "a_sb", sub.osb.abs().mean())
            pref = np.where(clean.pro[part] == cr.MALE, m_ll[part] > f_ll[part],
                            f_ll[part] > m_ll[part]).mean()  # fmt: skip
            add(run, name, INTRINSIC, f"type{t}", "pro_preference", pref)
        w = cr.correlation(intrinsic.osb, women)
        add(run, name, INTRINSIC, "all", "spearman_share_women", w["spearman"])
        add(run, name, INTRINSIC, "all", "pearson_share_women", w["pearson"])
        for cond in conditions:
            s = np.asarray(per_model[cond.name]["scores"])
            correct = cr.picks(data.items, s)
            run = f"{name}/{cond.name}"
            osb = cr.prompted_osb(data.items, correct)
            for occ, r in osb.iterrows():
                add(run, name, cond.name, occ, "osb", r.osb)
            acc = cr.accuracy_table(data.items, correct)
            for t, r in acc.iterrows():
                for col in ("pro", "anti", "all", "pro_minus_anti"):
                    add(run, name, cond.name, f"type{t}", f"rpa_{col}", r[col])
                sub = data.items.type.to_numpy() == t
                sub_osb = cr.prompted_osb(data.items[sub], correct[sub])
                add(run, name, cond.name, f"type{t}", "a_sb", sub_osb.osb.abs().mean())
            add(run, name, cond.name, "all", "rpa", correct.mean())
            add(run, name, cond.name, "all", "a_sb", osb.osb.abs().mean())
            # cr.transfer_correlation: intrinsic O-SB from the pronoun-only pairs, prompted
            # O-SB from every sentence (both at hand); the interval resamples all pairs and
            # recomputes exactly this statistic
            r = cr.correlation(intrinsic.osb, osb.osb)
            ci = (
                cr.bootstrap_transfer(
                    data.pairs,
                    all_m_ll,
                    all_f_ll,
                    data.items,
                    correct,
                    intrinsic_pairs=keep,
                    n_boot=params.bootstrap,
                    seed=params.sample_seed,
                )
                if params.bootstrap
                else {"spearman_ci": (math.nan,) * 2, "pearson_ci": (math.nan,) * 2}
            )
            for k in ("spearman", "pearson"):
                add(run, name, cond.name, "all", k, r[k])
                add(run, name, cond.name, "all", f"{k}_ci_low", ci[f"{k}_ci"][0])
                add(run, name, cond.name, "all", f"{k}_ci_high", ci[f"{k}_ci"][1])
            w = cr.correlation(osb.osb, women)
            add(run, name, cond.name, "all", "spearman_share_women", w["spearman"])
            add(run, name, cond.name, "all", "pearson_share_women", w["pearson"])
            add(run, name, cond.name, "all", "seconds", per_model[cond.name]["seconds"])
    return pd.DataFrame(rows)


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per model and condition: accuracy, the pro - anti gap per type, A-SB, and the
    correlation of the occupations' prompted bias with their intrinsic bias (with 95%
    bootstrap intervals) and with their share of women."""
    part = results[results.subgroup.isin(["all", "type1", "type2"])]
    wide = part.pivot_table(
        index=["model", "condition"], columns=["subgroup", "metric"], values="value", sort=False
    )
    cols = {
        ("all", "rpa"): "accuracy",
        ("type1", "rpa_pro_minus_anti"): "pro-anti gap, type 1",
        ("type2", "rpa_pro_minus_anti"): "pro-anti gap, type 2",
        ("all", "a_sb"): "A-SB (mean |O-SB|)",
        ("type2", "a_sb"): "A-SB, type 2",
        ("all", "pro_preference"): "pro version likelier",
        ("all", "spearman"): "Spearman vs intrinsic",
        ("all", "spearman_ci_low"): "Spearman CI low",
        ("all", "spearman_ci_high"): "Spearman CI high",
        ("all", "pearson"): "Pearson vs intrinsic",
        ("all", "pearson_ci_low"): "Pearson CI low",
        ("all", "pearson_ci_high"): "Pearson CI high",
        ("all", "spearman_share_women"): "Spearman vs share of women",
    }
    present = [c for c in cols if c in wide.columns]
    table = wide[present]
    table.columns = [cols[c] for c in present]
    return table


def summary_views(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`summary_table` as two tables that fit a page: the bias measures, and the
    correlations with their 95% intervals written "r [low, high]"."""
    correlations = {
        "Spearman vs intrinsic [95% CI]": "Spearman",
        "Pearson vs intrinsic [95% CI]": "Pearson",
    }
    view = pd.DataFrame(index=table.index)
    for name, stem in correlations.items():
        if f"{stem} vs intrinsic" in table:
            parts = [f"{stem} vs intrinsic", f"{stem} CI low", f"{stem} CI high"]
            view[name] = [  # the interval columns are absent when BOOTSTRAP = 0
                _with_interval(r, lo, hi)
                for r, lo, hi in table.reindex(columns=parts).itertuples(index=False)
            ]
    if "Spearman vs share of women" in table:
        view["Spearman vs share of women"] = table["Spearman vs share of women"]
    folded = [c for c in table if "Spearman" in c or "Pearson" in c]
    return table.drop(columns=folded), view


def _with_interval(value: float, low: float, high: float) -> str:
    if not np.isfinite(value):
        return "—"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{value:+.2f} [no interval]"
    return f"{value:+.2f} [{low:+.2f}, {high:+.2f}]"


def osb_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Per model, condition and occupation: prompted and intrinsic O-SB and share of women."""
    from ...data import occupation_stats

    osb = results[results.metric == "osb"]
    intr = osb[osb.condition == INTRINSIC][["model", "subgroup", "value"]].rename(
        columns={"value": "intrinsic", "subgroup": "occupation"}
    )
    prom = osb[osb.condition != INTRINSIC][["model", "condition", "subgroup", "value"]].rename(
        columns={"value": "prompted", "subgroup": "occupation"}
    )
    women = occupation_stats()[["occupation", "share_women_pct"]]
    return prom.merge(intr, on=["model", "occupation"]).merge(women, on="occupation")
