"""Study 4: does a causal LM's intrinsic gender bias predict its bias when prompted?
(Mackraz, Sivakumar et al., "Evaluating Gender Bias Transfer between Pre-trained and
Prompt-Adapted Language Models", 2024.)

For every model: the intrinsic per-occupation selection bias from the likelihoods of each
WinoBias pair's two versions, then the prompted co-reference question under every
condition (zero-shot, few-shot with a chosen number of solved examples and share of
pro-stereotypical ones, a "be fair" and a "be stereotypical" instruction), and the
correlation across the 40 occupations between intrinsic and prompted bias.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pandas as pd

from ..metrics import coreference as cr
from ..notebook import (
    RunStore,
    StudyParams,
    bad,
    check_choice,
    check_int,
    check_list,
    frame_hash,
    stable_hash,
)
from ..prompting import Condition, choose_examples, prompt_texts, score_answers
from ._common import (
    check_causal_lms_and_device,
    check_model_names,
    quiet_transformers,
    run_environment,
)

INTRINSIC = "intrinsic"
# What the paper reports (Mistral-7B-Instruct, Falcon-7B-Instruct, Llama-3-8B/70B-Instruct):
PAPER_CLAIMS = pd.DataFrame(
    [
        ("zero- and few-shot", "rho >= 0.94"),
        ("fair / biased instruction", "rho >= 0.92"),
        ("few-shot count and stereotypical mix varied", "rho >= 0.97"),
        ("A-SB, type 2, intrinsic", "27.7%"),
        ("A-SB, type 2, zero-shot with fair instruction", "9.47%"),
        ("A-SB, type 2, few-shot with fair instruction", "4.16%"),
    ],
    columns=["setting", "paper"],
)


@dataclasses.dataclass(frozen=True)
class BiasTransferParams(StudyParams):
    """Study 4's notebook parameters (see the notebook's parameters cell)."""

    models: list = dataclasses.field(default_factory=lambda: ["smollm2-135m-instruct"])
    split: str = "test"
    types: list = dataclasses.field(default_factory=lambda: [1, 2])
    pairs_per_occupation: int | None = None
    sample_seed: int = 0
    chat: str = "auto"
    conditions: list = dataclasses.field(default_factory=lambda: [{"name": "zero-shot"}])
    sweep_shots: list = dataclasses.field(default_factory=list)
    sweep_pro_shares: list = dataclasses.field(default_factory=list)
    few_shot_seed: int = 0
    batch_size: int = 16
    bootstrap: int = 1000
    device: str | None = None

    def validate(self) -> None:
        super().validate()
        check_model_names(self.models)
        check_choice("SPLIT", self.split, ["dev", "test"])
        for t in check_list("TYPES", self.types):
            check_choice("TYPES", t, [1, 2])
        if self.pairs_per_occupation is not None:
            check_int("PAIRS_PER_OCCUPATION", self.pairs_per_occupation, 1)
        check_int("SAMPLE_SEED", self.sample_seed, 0)
        check_choice("CHAT", self.chat, ["auto", "always", "never"])
        for c in check_list("CONDITIONS", self.conditions):
            try:
                Condition.from_dict(c)
            except (TypeError, ValueError) as e:
                raise bad("CONDITIONS", c, f"a valid condition ({e})") from e
        for k in check_list("SWEEP_SHOTS", self.sweep_shots, allow_empty=True):
            check_int("SWEEP_SHOTS", k, 1)
        for s in check_list("SWEEP_PRO_SHARES", self.sweep_pro_shares, allow_empty=True):
            if not isinstance(s, int | float) or isinstance(s, bool) or not 0 <= s <= 1:
                raise bad("SWEEP_PRO_SHARES", self.sweep_pro_shares, "shares in [0, 1]")
        if bool(self.sweep_shots) != bool(self.sweep_pro_shares):
            raise bad("SWEEP_SHOTS", self.sweep_shots, "given together with SWEEP_PRO_SHARES")
        names = [c["name"] for c in self.conditions]
        if len(set(names)) != len(names):
            raise bad("CONDITIONS", names, "conditions with distinct names")
        check_int("FEW_SHOT_SEED", self.few_shot_seed, 0)
        check_int("BATCH_SIZE", self.batch_size, 1)
        check_int("BOOTSTRAP", self.bootstrap, 0)
        if self.device is not None:
            check_choice("DEVICE", self.device, ["cpu", "cuda"])

    def all_conditions(self) -> list[Condition]:
        """The named conditions, then the sweep (shots x pro share, no instruction) minus
        settings a named condition already covers."""
        named = [Condition.from_dict(c) for c in self.conditions]
        seen = {(c.shots, c.pro_share, c.instruction) for c in named}
        sweep = []
        for k in self.sweep_shots:
            for share in self.sweep_pro_shares:
                if (k, share, None) not in seen:
                    sweep.append(Condition(f"{k}-shot, {share:.0%} pro", k, share))
                    seen.add((k, share, None))
        return named + sweep


def fail_early(params: BiasTransferParams) -> None:
    """Checks that need no data: every built-in model is a causal LM; CUDA when asked."""
    check_causal_lms_and_device(params.models, params.device)


# ----------------------------------------------------------------------------- data


@dataclasses.dataclass
class StudyData:
    """The sentences scored (both versions of every sampled pair), the pair table and the
    pool the few-shot examples come from (the other split)."""

    items: pd.DataFrame
    pairs: pd.DataFrame
    pool: pd.DataFrame

    def fingerprint(self) -> str:
        return frame_hash(self.items[["id", "sentence", "occupation", "other_occupation"]])


def load_data(params: BiasTransferParams) -> StudyData:
    """WinoBias pairs of ``SPLIT`` and ``TYPES`` — all, or ``PAIRS_PER_OCCUPATION`` per gold
    occupation (every occupation stays in, drawn reproducibly) — with both versions of each
    pair; few-shot examples come from the other split."""
    from ..data import load_winobias

    df = load_winobias(params.split)
    df = df[df.type.isin(params.types) & df.pair_id.notna()]
    table = cr.pairs(df)
    if params.pairs_per_occupation is not None:
        k, seed = params.pairs_per_occupation, params.sample_seed
        parts = [
            g.sample(min(len(g), k), random_state=seed) for _, g in table.groupby("occupation")
        ]
        table = pd.concat(parts).sort_values("pair_id").reset_index(drop=True)
    items = df[df.pair_id.isin(table.pair_id)].reset_index(drop=True)
    other = "dev" if params.split == "test" else "test"
    pool = load_winobias(other)
    pool = pool[pool.pair_id.notna()].reset_index(drop=True)
    return StudyData(items=items, pairs=table, pool=pool)


# ----------------------------------------------------------------------------- scoring


def _uses_chat(params: BiasTransferParams, tokenizer) -> bool:
    has = bool(getattr(tokenizer, "chat_template", None))
    return {"auto": has, "always": True, "never": False}[params.chat]


def intrinsic_scores(params, model, tok, data: StudyData) -> dict:
    """Sentence log-likelihood of each pair's male and female version (plain text)."""
    from ..metrics.memorisation import token_logprobs

    by_id = data.items.set_index("id").sentence
    texts = by_id.loc[data.pairs.male_id].tolist() + by_id.loc[data.pairs.female_id].tolist()
    lps = token_logprobs(model, tok, texts, batch_size=params.batch_size, device=params.device)
    ll = [float(lp.sum()) for lp in lps]
    n = len(data.pairs)
    return {"male_ll": ll[:n], "female_ll": ll[n:]}


def prompted_scores(params, model, tok, data: StudyData, condition: Condition) -> dict:
    """Each sentence's two answers (gold, other) scored under ``condition``."""
    chat = _uses_chat(params, tok)
    examples = choose_examples(data.pool, condition, params.few_shot_seed)
    texts = prompt_texts(data.items, examples, condition, tok, chat)
    t0 = time.perf_counter()
    scores = score_answers(
        model, tok, texts, chat=chat, batch_size=params.batch_size, device=params.device
    )
    return {
        "scores": scores.tolist(),
        "chat": chat,
        "examples": examples.id.tolist(),
        "seconds": time.perf_counter() - t0,
    }


def run_study(
    params: BiasTransferParams, data: StudyData, store: RunStore, progress: bool = True
) -> dict:
    """Intrinsic and prompted scores for every model and condition, reusing stored ones."""
    from tqdm.auto import tqdm

    from .. import __version__
    from ..models import load_model, model_fingerprint
    from ..repro import set_seed

    set_seed(params.sample_seed)  # deterministic kernels
    conditions = params.all_conditions()
    out: dict = {}
    common = {
        "data": data.fingerprint(),
        "version": __version__,
        "where": run_environment(params.device),
        "batch": params.batch_size,
    }
    bar = tqdm(
        total=len(params.models) * (1 + len(conditions)), desc="study 4", disable=not progress
    )
    for name in params.models:
        fingerprint = model_fingerprint(name)["sha256"]
        loaded: list = []

        def model(name=name, loaded=loaded):
            if not loaded:
                with quiet_transformers():
                    loaded.extend(load_model(name, "causal-lm", device=params.device))
            return loaded

        base = {**common, "model": [name, fingerprint], "chat": params.chat}
        out[name] = {
            INTRINSIC: store.get_or_compute(
                stable_hash({**base, "run": INTRINSIC}),
                lambda: intrinsic_scores(params, *model(), data),
            )
        }
        bar.update()
        for cond in conditions:
            key = stable_hash(
                {**base, "condition": dataclasses.asdict(cond), "seed": params.few_shot_seed}
            )
            out[name][cond.name] = store.get_or_compute(
                key, lambda cond=cond: prompted_scores(params, *model(), data, cond)
            )
            bar.update()
        loaded.clear()
    bar.close()
    return out


# ----------------------------------------------------------------------------- measures


def measures(params: BiasTransferParams, data: StudyData, scores: dict) -> pd.DataFrame:
    """Tidy results: run (model/condition), subgroup, metric, value (see the notebook)."""
    from ..data import occupation_stats

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
    from ..data import occupation_stats

    osb = results[results.metric == "osb"]
    intr = osb[osb.condition == INTRINSIC][["model", "subgroup", "value"]].rename(
        columns={"value": "intrinsic", "subgroup": "occupation"}
    )
    prom = osb[osb.condition != INTRINSIC][["model", "condition", "subgroup", "value"]].rename(
        columns={"value": "prompted", "subgroup": "occupation"}
    )
    women = occupation_stats()[["occupation", "share_women_pct"]]
    return prom.merge(intr, on=["model", "occupation"]).merge(women, on="occupation")


def plot_scatter(results: pd.DataFrame, conditions: list[str]):
    """Intrinsic against prompted O-SB per occupation, coloured by the share of women:
    one row per condition, one column per model."""
    import matplotlib.pyplot as plt

    frame = osb_frame(results)
    frame = frame[frame.condition.isin(conditions)]
    models = list(dict.fromkeys(frame.model))
    fig, axes = plt.subplots(
        len(conditions), len(models), figsize=(3.6 * len(models) + 1.4, 2.7 * len(conditions)),
        squeeze=False, sharex=True, sharey=True,
    )  # fmt: skip
    for i, cond in enumerate(conditions):
        for j, model in enumerate(models):
            ax = axes[i][j]
            part = frame[(frame.model == model) & (frame.condition == cond)]
            sc = ax.scatter(
                part.intrinsic, part.prompted, c=part.share_women_pct, cmap="coolwarm_r",
                vmin=0, vmax=100, s=18,
            )  # fmt: skip
            ax.axhline(0, color="grey", lw=0.5)
            ax.axvline(0, color="grey", lw=0.5)
            ax.set_title(f"{model}: {cond}", fontsize=9)
            if i == len(conditions) - 1:
                ax.set_xlabel("intrinsic O-SB")
            if j == 0:
                ax.set_ylabel("prompted O-SB")
    fig.colorbar(sc, ax=axes, label="share of women (%)", shrink=0.5)
    return fig


def plot_sweep(results: pd.DataFrame, params: BiasTransferParams):
    """Correlation with intrinsic bias and A-SB against the number of shots, per share of
    pro-stereotypical examples (zero-shot as 0)."""
    import seaborn as sns

    conds = {c.name: c for c in params.all_conditions() if c.instruction is None}
    part = results[
        results.condition.isin(conds)
        & (results.subgroup == "all")
        & results.metric.isin(["spearman", "a_sb"])
    ].copy()
    part["shots"] = part.condition.map(lambda c: conds[c].shots)
    part["pro share"] = part.condition.map(
        lambda c: "zero-shot" if conds[c].shots == 0 else f"{conds[c].pro_share:.0%}"
    )
    part["metric"] = part.metric.map({"spearman": "Spearman vs intrinsic", "a_sb": "A-SB"})
    grid = sns.relplot(
        data=part, x="shots", y="value", hue="pro share", col="metric", row="model",
        kind="line", marker="o", height=2.8, aspect=1.4, facet_kws={"sharey": False},
    )  # fmt: skip
    grid.set_titles(template="{row_name}\n{col_name}", size=9)
    grid.set_axis_labels("solved examples (shots)", "")
    return grid
