"""Study 1 — does DP fine-tuning make a classifier more biased against identity groups?

Islam et al. (2024): fine-tune the top encoder layer, pooler and classifier of a
pre-trained encoder non-privately and with DP-SGD at several epsilons, then compare
AUC-based bias metrics per identity subgroup (:mod:`privbias_lib.metrics.bias`). A
second experiment varies one subgroup's share and positive rate in the training data.
"""

from __future__ import annotations

import dataclasses
import io
import math
import time
from typing import Any

import numpy as np
import pandas as pd

from ..metrics import AUC_METRICS, bias_metrics, bootstrap_auc_ci, power_mean
from ..notebook import (
    RunStore,
    StudyParams,
    bad,
    check_choice,
    check_int,
    check_list,
    check_number,
    frame_hash,
    stable_hash,
)
from ._common import (
    check_classifier_and_device,
    check_top_layers,
    quiet_transformers,
    run_environment,
)

DATASETS = ("redditbias", "jigsaw", "measuring-hate-speech")
SCHEDULERS = ("constant", "linear", "plateau")
VALIDATION_METRICS = ("f1", "auc", "accuracy", "loss")
ACCOUNTANTS = ("pld", "prv", "rdp", "edgeworth", "gdp", "prv-estimate")
NON_PRIVATE = "none"
SWEEP, DISTRIBUTION = "privacy_sweep", "distribution"


@dataclasses.dataclass(frozen=True)
class DPBiasParams(StudyParams):
    """Study 1's notebook parameters (see the notebook's parameters cell)."""

    dataset: str = "redditbias"
    data_source: str | None = None
    groups: list | None = None
    max_train_examples: int | None = None
    max_test_examples: int | None = None
    split_seed: int = 0
    model: str = "minilm-l6"
    top_layers: int = 1
    cache_frozen: bool = True
    max_length: int = 128
    epsilons: list = dataclasses.field(default_factory=lambda: [0.5, 1, 3, 6, 9])
    include_non_private: bool = True
    seeds: list = dataclasses.field(default_factory=lambda: [0, 1, 2])
    delta: float | None = 1e-6
    max_grad_norm: float = 1.0
    accountant: str = "pld"
    bound_accountant: str = "pld"
    epochs: int = 10
    batch_size: int = 64
    physical_batch_size: int | None = 32
    learning_rate: float = 1e-3
    scheduler: str = "plateau"
    validation_metric: str = "f1"
    early_stopping_patience: int | None = 3
    threshold: float = 0.5
    bootstrap: int = 200
    dist_group: str | None = None
    dist_shares: list = dataclasses.field(default_factory=list)
    dist_positive_rates: list = dataclasses.field(default_factory=list)
    dist_train_size: int = 2000
    dist_epsilon: float = 1.0
    dist_seeds: list = dataclasses.field(default_factory=lambda: [0])
    device: str | None = None

    def validate(self) -> None:
        super().validate()
        check_choice("DATASET", self.dataset, DATASETS)
        if self.data_source is not None and not isinstance(self.data_source, str):
            raise bad("DATA_SOURCE", self.data_source, "None, a hub id or a local file")
        if self.dataset == "redditbias" and self.data_source is not None:
            raise bad("DATA_SOURCE", self.data_source, "None for the offline RedditBias")
        if self.groups is not None:
            for g in check_list("GROUPS", self.groups):
                if g not in self.known_groups():
                    raise bad("GROUPS", self.groups, f"a subset of {self.known_groups()}")
        for name in ("max_train_examples", "max_test_examples"):
            if getattr(self, name) is not None:
                check_int(name.upper(), getattr(self, name), 100)
        check_int("SPLIT_SEED", self.split_seed, 0)
        if not isinstance(self.model, str) or not self.model:
            raise bad("MODEL", self.model, "a built-in model name, hub id or folder")
        check_int("TOP_LAYERS", self.top_layers, 1)
        if not isinstance(self.cache_frozen, bool):
            raise bad("CACHE_FROZEN", self.cache_frozen, "True or False")
        check_int("MAX_LENGTH", self.max_length, 8)
        for e in check_list("EPSILONS", self.epsilons, allow_empty=True):
            check_number("EPSILONS", e, low=0, open_low=True)
        if not isinstance(self.include_non_private, bool):
            raise bad("INCLUDE_NON_PRIVATE", self.include_non_private, "True or False")
        if not self.epsilons or not self.include_non_private:
            raise bad(
                "EPSILONS",
                self.epsilons,
                "at least one epsilon and INCLUDE_NON_PRIVATE=True "
                "(the DP effect is measured against the non-private model)",
            )
        for s in check_list("SEEDS", self.seeds):
            check_int("SEEDS", s, 0)
        if self.delta is not None:
            check_number("DELTA", self.delta, low=0, open_low=True, high=0.1)
        check_number("MAX_GRAD_NORM", self.max_grad_norm, low=0, open_low=True)
        check_choice("ACCOUNTANT", self.accountant, ACCOUNTANTS)
        check_choice("BOUND_ACCOUNTANT", self.bound_accountant, ("pld", "prv", "rdp"))
        check_int("EPOCHS", self.epochs, 1)
        check_int("BATCH_SIZE", self.batch_size, 2)
        if self.physical_batch_size is not None:
            check_int("PHYSICAL_BATCH_SIZE", self.physical_batch_size, 1)
        check_number("LEARNING_RATE", self.learning_rate, low=0, open_low=True)
        check_choice("SCHEDULER", self.scheduler, SCHEDULERS)
        check_choice("VALIDATION_METRIC", self.validation_metric, VALIDATION_METRICS)
        if self.early_stopping_patience is not None:
            check_int("EARLY_STOPPING_PATIENCE", self.early_stopping_patience, 1)
        check_number("THRESHOLD", self.threshold, low=0, high=1)
        check_int("BOOTSTRAP", self.bootstrap, 0)
        if self.bootstrap == 1:
            raise bad("BOOTSTRAP", 1, "0 (no intervals) or at least 2 replicates")
        if self.dist_group is not None:
            check_choice("DIST_GROUP", self.dist_group, self.groups or self.known_groups())
            for s in check_list("DIST_SHARES", self.dist_shares):
                check_number("DIST_SHARES", s, low=0, open_low=True, high=0.95)
            for r in check_list("DIST_POSITIVE_RATES", self.dist_positive_rates):
                check_number("DIST_POSITIVE_RATES", r, low=0, open_low=True, high=0.95)
            check_int("DIST_TRAIN_SIZE", self.dist_train_size, 2 * self.batch_size)
            check_number("DIST_EPSILON", self.dist_epsilon, low=0, open_low=True)
            for s in check_list("DIST_SEEDS", self.dist_seeds):
                check_int("DIST_SEEDS", s, 0)
        if self.device is not None:
            check_choice("DEVICE", self.device, ("cpu", "cuda"))

    def known_groups(self) -> list[str]:
        from ..data.hub import JIGSAW_GROUPS, MHS_GROUPS
        from ..data.redditbias import GROUPS

        return list(
            {"redditbias": GROUPS, "jigsaw": JIGSAW_GROUPS, "measuring-hate-speech": MHS_GROUPS}[
                self.dataset
            ]
        )

    @property
    def subgroups(self) -> list[str]:
        return list(self.groups or self.known_groups())


# ----------------------------------------------------------------------------- data


def load_study_data(params: DPBiasParams) -> pd.DataFrame:
    """The labelled comments with ``group_<name>`` columns and a train/validation/test
    ``split`` (70/15/15, stratified by group and label, as the paper's MHS split)."""
    from ..data import load_jigsaw, load_measuring_hate_speech, load_redditbias, stratified_split

    groups = tuple(params.subgroups)
    if params.dataset == "redditbias":
        df = load_redditbias(groups)
    elif params.dataset == "jigsaw":
        df = load_jigsaw(params.data_source or "google/jigsaw_unintended_bias", groups=groups)
    else:
        src = params.data_source or "ucberkeley-dlab/measuring-hate-speech"
        df = load_measuring_hate_speech(src, groups=groups)
    df = stratified_split(
        df, {"train": 0.7, "validation": 0.15, "test": 0.15}, seed=params.split_seed
    )
    keep = []
    for split, limit in [
        ("train", params.max_train_examples),
        ("validation", params.max_test_examples),
        ("test", params.max_test_examples),
    ]:
        part = df[df.split == split]
        if limit is not None and len(part) > limit:
            part = _stratified_cap(part, limit, params.split_seed).assign(split=split)
        keep.append(part)
    out = pd.concat(keep).reset_index(drop=True)
    out.attrs["groups"] = list(groups)
    for split in ("train", "validation", "test"):
        part = out[out.split == split]
        if part.label.nunique() < 2:
            raise ValueError(f"the {split} split has only one class: use more data")
    return out


def _stratified_cap(part: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """Exactly ``limit`` rows of ``part``, stratified by group and label up to the
    rounding of each stratum (which is settled by a seeded draw)."""
    from ..data import stratified_split

    marked = stratified_split(
        part, {"keep": limit / len(part), "drop": 1 - limit / len(part)}, seed=seed
    )
    kept, dropped = marked[marked.split == "keep"], marked[marked.split == "drop"]
    if len(kept) > limit:
        kept = kept.sample(n=limit, random_state=seed)
    elif len(kept) < limit:
        kept = pd.concat([kept, dropped.sample(n=limit - len(kept), random_state=seed)])
    return kept


def data_summary(data: pd.DataFrame) -> pd.DataFrame:
    """Examples and positive rate per split and subgroup."""
    rows = []
    for split in ("train", "validation", "test"):
        part = data[data.split == split]
        for g in data.attrs["groups"]:
            m = part[f"group_{g}"]
            rows.append(
                {
                    "split": split,
                    "subgroup": g,
                    "examples": int(m.sum()),
                    "positive_rate": float(part.label[m].mean()) if m.any() else math.nan,
                }
            )
        rows.append(
            {
                "split": split,
                "subgroup": "all",
                "examples": len(part),
                "positive_rate": float(part.label.mean()),
            }
        )
    return pd.DataFrame(rows)


def distribution_train_set(
    train: pd.DataFrame, group: str, share: float, positive_rate: float, size: int, seed: int
) -> pd.DataFrame:
    """``size`` training examples of which a ``share`` belongs to ``group``, with the
    given ``positive_rate`` inside it; the rest are drawn from the other examples at
    their natural mix. Raises ValueError if the training split is too small."""
    member = train[f"group_{group}"].to_numpy(bool)
    n_g = round(share * size)
    n_pos = round(positive_rate * n_g)
    need = {"positives": (n_pos, member & (train.label == 1).to_numpy())}
    need["negatives"] = (n_g - n_pos, member & (train.label == 0).to_numpy())
    need["other examples"] = (size - n_g, ~member)
    rng = np.random.default_rng(seed)
    parts = []
    for what, (n, mask) in need.items():
        have = int(mask.sum())
        if n > have:
            raise ValueError(
                f"DIST_TRAIN_SIZE={size}, share {share}, positive rate {positive_rate}: "
                f"needs {n} {group} {what} but the training split has {have}"
                if what != "other examples"
                else f"DIST_TRAIN_SIZE={size}: needs {n} examples outside {group}, has {have}"
            )
        parts.append(np.flatnonzero(mask)[rng.permutation(have)[:n]])
    idx = np.sort(np.concatenate(parts))
    return train.iloc[idx]


def check_distribution(params: DPBiasParams, data: pd.DataFrame) -> None:
    """Fail before any training if a distribution setting cannot be drawn."""
    if params.dist_group is None:
        return
    train = data[data.split == "train"]
    for share in params.dist_shares:
        for rate in params.dist_positive_rates:
            distribution_train_set(train, params.dist_group, share, rate, params.dist_train_size, 0)


# ----------------------------------------------------------------------------- runs


def _label(epsilon: float | None) -> str:
    return NON_PRIVATE if epsilon is None else f"{epsilon:g}"


def train_config(params: DPBiasParams, epsilon: float | None, seed: int):
    """The paper's recipe: top layers + pooler + classifier, AdamW, plateau schedule,
    early stopping on validation F1; DP-SGD with Poisson sampling when ``epsilon``."""
    from ..training import PrivacyConfig, TopLayers, TrainConfig

    privacy = None
    if epsilon is not None:
        privacy = PrivacyConfig(
            target_epsilon=float(epsilon),
            delta=params.delta,
            max_grad_norm=params.max_grad_norm,
            accountant=params.accountant,
            bound_accountant=params.bound_accountant,
        )
    return TrainConfig(
        trainable=TopLayers(params.top_layers, cache_frozen=params.cache_frozen),
        learning_rate=params.learning_rate,
        scheduler=params.scheduler,
        epochs=params.epochs,
        batch_size=params.batch_size,
        physical_batch_size=params.physical_batch_size,
        max_length=params.max_length,
        seed=seed,
        device=params.device,
        validation_metric=params.validation_metric,
        early_stopping_patience=params.early_stopping_patience,
        privacy=privacy,
        progress=False,
    )


def plan_runs(params: DPBiasParams) -> list[dict]:
    """Every training run of the study, in order: the privacy sweep, then the
    distribution experiment (non-private and DP at ``DIST_EPSILON`` per setting)."""
    runs = []
    for seed in params.seeds:
        for eps in [None, *params.epsilons]:
            runs.append(
                {
                    "experiment": SWEEP,
                    "run": f"sweep/eps={_label(eps)}/seed={seed}",
                    "epsilon": eps,
                    "seed": seed,
                    "share": None,
                    "positive_rate": None,
                }
            )
    if params.dist_group is not None:
        for share in params.dist_shares:
            for rate in params.dist_positive_rates:
                for seed in params.dist_seeds:
                    for eps in (None, params.dist_epsilon):
                        runs.append(
                            {
                                "experiment": DISTRIBUTION,
                                "run": f"dist/{params.dist_group}/share={share:g}/"
                                f"pos={rate:g}/eps={_label(eps)}/seed={seed}",
                                "epsilon": eps,
                                "seed": seed,
                                "share": share,
                                "positive_rate": rate,
                            }
                        )
    return runs


def _run_key(params: DPBiasParams, spec: dict, data_hash: str, model_hash: Any) -> str:
    from .. import __version__

    cfg = train_config(params, spec["epsilon"], spec["seed"]).to_dict()
    return stable_hash(
        {
            "spec": spec,
            "config": cfg,
            "data": data_hash,
            "model": [params.model, model_hash],
            "version": __version__,
            "where": run_environment(params.device),
            # only the distribution runs depend on how their training set is drawn
            **(
                {"dist": [params.dist_group, params.dist_train_size]}
                if spec["experiment"] == DISTRIBUTION
                else {}
            ),
        }
    )


def train_and_score(params: DPBiasParams, spec: dict, data: pd.DataFrame) -> dict:
    """Train one model as ``spec`` says and score the test split; a JSON-able record."""
    from ..models import load_model
    from ..repro import set_seed
    from ..training import predict_proba, train_classifier

    train = data[data.split == "train"]
    if spec["experiment"] == DISTRIBUTION:
        train = distribution_train_set(
            train,
            params.dist_group,
            spec["share"],
            spec["positive_rate"],
            params.dist_train_size,
            spec["seed"],
        )
    validation = data[data.split == "validation"]
    test = data[data.split == "test"]
    t0 = time.perf_counter()
    set_seed(spec["seed"])  # the classifier head is initialised at load
    with quiet_transformers():  # its "classifier weights newly initialised" report
        model, tok = load_model(params.model, "classification", num_labels=2, device=params.device)
    config = train_config(params, spec["epsilon"], spec["seed"])
    result = train_classifier(model, tok, train, config, validation=validation)
    scores = predict_proba(
        result.model,
        tok,
        test.text.tolist(),
        max_length=params.max_length,
        frozen_top_layers=params.top_layers if params.cache_frozen else None,
    )[:, 1]
    return {
        **spec,
        "train_size": len(train),
        "scores": [round(float(s), 7) for s in scores],
        "history": result.history.summary(),
        "epochs": result.history.epochs,
        "privacy": result.privacy.to_dict() if result.privacy else None,
        "seconds": time.perf_counter() - t0,
    }


def run_study(
    params: DPBiasParams, data: pd.DataFrame, store: RunStore, progress: bool = True
) -> list[dict]:
    """Every planned run, reusing finished ones from ``store`` (same parameters, data
    and model give the same key); each new run is stored as soon as it ends."""
    from tqdm.auto import tqdm

    from ..models import model_fingerprint

    data_hash = frame_hash(data[["id", "text", "label", "split"]])
    model_hash = model_fingerprint(params.model)["sha256"]
    out = []
    runs = plan_runs(params)
    for spec in tqdm(runs, desc="study 1 runs", disable=not progress, mininterval=10):
        key = _run_key(params, spec, data_hash, model_hash)
        out.append(store.get_or_compute(key, lambda spec=spec: train_and_score(params, spec, data)))
    return out


# ----------------------------------------------------------------------------- results


def results_table(params: DPBiasParams, runs: list[dict], data: pd.DataFrame) -> pd.DataFrame:
    """Tidy results: one row per run x subgroup x metric, with bootstrap intervals for
    the AUC metrics, plus each run's privacy (epsilon with its accountant) and cost."""
    test = data[data.split == "test"]
    labels = test.label.to_numpy()
    groups = {g: test[f"group_{g}"].to_numpy(bool) for g in params.subgroups}
    frames = []
    for r in runs:
        scores = np.asarray(r["scores"])
        table = bias_metrics(labels, scores, groups, threshold=params.threshold)
        if params.bootstrap:
            ci = bootstrap_auc_ci(
                labels, scores, groups, n_boot=params.bootstrap, seed=r["seed"]
            ).rename(columns={"lower": "ci_lower", "upper": "ci_upper"})
            ci = ci.rename(columns={"n_boot": "ci_n_boot", "reason": "ci_reason"})
            table = table.merge(ci, on=["subgroup", "metric"], how="left")
        else:
            table = table.assign(ci_lower=np.nan, ci_upper=np.nan, ci_n_boot=np.nan)
            table["ci_reason"] = ""
        table["ci_reason"] = table["ci_reason"].fillna("")
        table["accountant"] = ""
        frames.append(_with_run(table, r))
        frames.append(_with_run(_run_rows(r), r))
    out = pd.concat(frames, ignore_index=True)
    cols = [
        "experiment", "run", "epsilon", "seed", "share", "positive_rate", "train_size",
        "subgroup", "metric", "value", "reason", "ci_lower", "ci_upper", "ci_n_boot",
        "ci_reason", "accountant", "n_pos", "n_neg",
    ]  # fmt: skip
    return out[cols]


def _with_run(table: pd.DataFrame, r: dict) -> pd.DataFrame:
    return table.assign(
        experiment=r["experiment"],
        run=r["run"],
        epsilon=_label(r["epsilon"]),
        seed=r["seed"],
        share=r["share"] if r["share"] is not None else np.nan,
        positive_rate=r["positive_rate"] if r["positive_rate"] is not None else np.nan,
        train_size=r["train_size"],
    )


def _nan_if_none(x) -> float:
    return np.nan if x is None else float(x)


def _run_rows(r: dict) -> pd.DataFrame:
    """A run's privacy and cost as rows of subgroup "overall"."""
    h, p = r["history"], r["privacy"]
    rows = [
        ("train_seconds", r["seconds"], ""),
        ("steps", h["steps"], ""),
        ("best_epoch", h["best_epoch"] if h["best_epoch"] is not None else np.nan, ""),
    ]
    if p is not None:
        rows += [
            ("epsilon", p["epsilon"], f"{p['accountant']} ({p['kind']})"),
            ("epsilon_bound", p["epsilon_bound"], f"{p['bound_accountant']} (upper bound)"),
            ("noise_multiplier", p["sigma"], ""),
            ("sample_rate", p["q"], ""),
            ("delta", p["delta"], ""),
            ("planned_steps", p["planned_steps"], ""),
            ("target_epsilon", _nan_if_none(p["target_epsilon"]), ""),
            ("poisson_sampling", float(p["sampling"] == "poisson"), p["sampling"]),
        ]
    return pd.DataFrame(
        {
            "subgroup": "overall",
            "metric": [m for m, _, _ in rows],
            "value": [float(v) for _, v, _ in rows],
            "accountant": [a for _, _, a in rows],
            "reason": "",
            "ci_lower": np.nan,
            "ci_upper": np.nan,
            "ci_n_boot": np.nan,
            "ci_reason": "",
            "n_pos": np.nan,
            "n_neg": np.nan,
        }
    )


def epsilon_order(labels) -> list[str]:
    """Epsilon labels sorted: "none" first, then increasing epsilon."""
    labels = set(labels)
    nums = sorted((x for x in labels if x != NON_PRIVATE), key=float)
    return ([NON_PRIVATE] if NON_PRIVATE in labels else []) + nums


def epsilon_table(results: pd.DataFrame, subgroups: list[str]) -> pd.DataFrame:
    """The paper's layout: one row per epsilon, Subgroup/BPSN/BNSP AUC per subgroup and
    the overall AUC, means over seeds."""
    sweep = results[results.experiment == SWEEP]
    metrics = [*AUC_METRICS, "overall_auc"]
    rows = sweep[sweep.metric.isin(metrics)]
    wide = rows.pivot_table(
        index="epsilon", columns=["metric", "subgroup"], values="value", aggfunc="mean"
    )
    cols = [(m, g) for m in AUC_METRICS for g in subgroups] + [("overall_auc", "overall")]
    wide = wide.reindex(columns=pd.MultiIndex.from_tuples(cols))
    return wide.reindex(epsilon_order(wide.index))


def dp_change(results: pd.DataFrame) -> pd.DataFrame:
    """DP-induced change of each AUC metric per subgroup, epsilon and seed: the DP
    model's value minus the non-private model's of the same seed (and setting)."""
    keys = ["experiment", "seed", "share", "positive_rate", "subgroup", "metric"]
    auc = results[results.metric.isin([*AUC_METRICS, "overall_auc"])].copy()
    auc[["share", "positive_rate"]] = auc[["share", "positive_rate"]].fillna(-1)
    base = auc[auc.epsilon == NON_PRIVATE][[*keys, "value"]].rename(columns={"value": "base"})
    dp = auc[auc.epsilon != NON_PRIVATE].merge(base, on=keys, how="left")
    dp["change"] = dp["value"] - dp["base"]
    dp[["share", "positive_rate"]] = dp[["share", "positive_rate"]].replace(-1, np.nan)
    return dp[[*keys, "epsilon", "value", "base", "change"]]


def privacy_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per private run: the target, epsilon by the calibrating accountant and by the
    rigorous bound (each named), sigma, q, delta, the sampling scheme and the steps
    actually taken beside those planned."""
    rows = results[(results.subgroup == "overall") & (results.epsilon != NON_PRIVATE)]
    wanted = [
        "target_epsilon", "epsilon", "epsilon_bound", "noise_multiplier", "sample_rate",
        "delta", "steps", "planned_steps",
    ]  # fmt: skip
    text = ["epsilon", "epsilon_bound", "poisson_sampling"]
    rows = rows[rows.metric.isin([*wanted, *text])]
    wide = rows.pivot_table(
        index=["experiment", "run"], columns="metric", values="value", aggfunc="first"
    ).reindex(columns=wanted)
    acc = rows[rows.metric.isin(text)].pivot_table(
        index=["experiment", "run"], columns="metric", values="accountant", aggfunc="first"
    )
    wide["accountant"] = acc["epsilon"]
    wide["bound_by"] = acc["epsilon_bound"]
    wide["sampling"] = acc["poisson_sampling"]
    wide[["steps", "planned_steps"]] = wide[["steps", "planned_steps"]].astype(int)
    out = wide.reset_index()
    return out[["experiment", "run", *wanted, "accountant", "bound_by", "sampling"]]


# ------------------------------------------------------------------- the paper's numbers

_PAPER_TABLES = {
    "jigsaw": (
        ["male", "female", "transgender", "white", "black", "asian"],
        """
none|.895 .898 .797 .798 .810 .887|.886 .901 .838 .780 .792 .922|.956 .948 .940 .963 .960 .924|.946
0.5|.799 .819 .789 .735 .729 .871|.777 .813 .810 .692 .758 .855|.892 .881 .858 .904 .862 .888|.872
1|.816 .830 .818 .739 .742 .881|.787 .821 .809 .674 .751 .854|.909 .897 .891 .924 .886 .912|.886
3|.845 .846 .828 .761 .770 .886|.818 .844 .800 .696 .755 .869|.935 .920 .929 .948 .927 .930|.913
6|.852 .851 .830 .765 .775 .885|.824 .848 .794 .704 .753 .873|.939 .925 .936 .951 .934 .931|.918
9|.855 .854 .834 .767 .776 .884|.828 .851 .792 .709 .754 .876|.940 .927 .939 .952 .937 .930|.920
""",
    ),
    "measuring-hate-speech": (
        ["men", "women", "transgender", "white", "black", "asian"],
        """
none|.824 .815 .880 .817 .883 .858|.841 .821 .910 .857 .811 .920|.845 .868 .807 .821 .918 .769|.855
0.5|.744 .748 .847 .761 .846 .789|.733 .721 .843 .802 .751 .875|.809 .831 .790 .751 .872 .683|.790
1|.759 .761 .849 .776 .858 .809|.750 .745 .859 .803 .763 .885|.819 .832 .785 .778 .883 .704|.802
3|.768 .772 .852 .781 .860 .793|.779 .769 .868 .812 .764 .883|.811 .834 .783 .788 .896 .707|.814
6|.777 .777 .857 .786 .866 .823|.781 .772 .875 .819 .775 .896|.822 .841 .789 .792 .898 .723|.819
9|.771 .768 .833 .769 .860 .799|.779 .767 .865 .811 .768 .892|.813 .832 .769 .778 .893 .694|.813
""",
    ),
}


def paper_results(dataset: str) -> pd.DataFrame:
    """The paper's per-epsilon means over 3 seeds (bert-base-uncased), tidy: epsilon,
    subgroup, metric, value."""
    if dataset not in _PAPER_TABLES:
        raise ValueError(f"the paper has no results for {dataset!r}; it has {list(_PAPER_TABLES)}")
    groups, text = _PAPER_TABLES[dataset]
    rows = []
    for line in io.StringIO(text.strip()):
        eps, *blocks = line.strip().split("|")
        for metric, block in zip(AUC_METRICS, blocks[:3], strict=True):
            for g, v in zip(groups, block.split(), strict=True):
                rows.append((eps, g, metric, float(v)))
        rows.append((eps, "overall", "overall_auc", float(blocks[3])))
    return pd.DataFrame(rows, columns=["epsilon", "subgroup", "metric", "value"])


def paper_epsilon_table(dataset: str) -> pd.DataFrame:
    """The paper's table in the same layout as :func:`epsilon_table`."""
    df = paper_results(dataset).assign(experiment=SWEEP)
    groups = _PAPER_TABLES[dataset][0]
    return epsilon_table(df, groups)


def direction_summary(changes: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per metric: the mean DP-induced change over subgroups and seeds at each epsilon,
    and the share of (subgroup, epsilon) cells where DP lowered the metric; the paper's
    figures beside ours when ``paper`` (from :func:`paper_results`) is given."""
    ours = changes[changes.experiment == SWEEP]
    cell = ours.groupby(["metric", "subgroup", "epsilon"]).change.mean().reset_index()
    out = cell.groupby("metric").agg(
        mean_change=("change", "mean"), share_lowered=("change", lambda c: float((c < 0).mean()))
    )
    if paper is not None:
        base = paper[paper.epsilon == NON_PRIVATE][["subgroup", "metric", "value"]]
        p = paper[paper.epsilon != NON_PRIVATE].merge(
            base, on=["subgroup", "metric"], suffixes=("", "_base")
        )
        p["change"] = p["value"] - p["value_base"]
        out["paper_mean_change"] = p.groupby("metric").change.mean()
        out["paper_share_lowered"] = p.groupby("metric").change.apply(
            lambda c: float((c < 0).mean())
        )
    return out.reindex([*AUC_METRICS, "overall_auc"])


SUMMARY_METRICS = (*(f"power_mean_{m}" for m in AUC_METRICS), "overall_auc", "jigsaw_summary")
GAP_METRICS = (
    "parity_gap", "equal_opportunity_gap", "equalized_odds_gap", "positive_aeg", "negative_aeg",
)  # fmt: skip


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per epsilon (privacy sweep, mean over seeds): the power mean (p = -5) of each AUC
    metric over subgroups, the overall AUC and the Jigsaw summary of each run."""
    rows = results[(results.experiment == SWEEP) & results.metric.isin(SUMMARY_METRICS)]
    wide = rows.pivot_table(index="epsilon", columns="metric", values="value", aggfunc="mean")
    return wide.reindex(index=epsilon_order(wide.index), columns=list(SUMMARY_METRICS))


def paper_summary_table(dataset: str) -> pd.DataFrame:
    """:func:`summary_table` computed from the paper's per-epsilon means (the paper
    reports the AUCs only; the power means here are of its seed-averaged values)."""
    paper = paper_results(dataset)
    out = {}
    for eps, part in paper.groupby("epsilon"):
        row = {}
        for m in AUC_METRICS:
            row[f"power_mean_{m}"] = power_mean(part[part.metric == m].value.to_numpy())
        row["overall_auc"] = float(part[part.metric == "overall_auc"].value.iloc[0])
        row["jigsaw_summary"] = 0.25 * row["overall_auc"] + 0.75 * float(
            np.mean([row[f"power_mean_{m}"] for m in AUC_METRICS])
        )
        out[eps] = row
    wide = pd.DataFrame.from_dict(out, orient="index")
    return wide.reindex(index=epsilon_order(wide.index), columns=list(SUMMARY_METRICS))


def gap_table(results: pd.DataFrame) -> pd.DataFrame:
    """Threshold gaps and average equality gaps per epsilon and subgroup (privacy sweep,
    mean over seeds): rows epsilon, columns (metric, subgroup)."""
    rows = results[(results.experiment == SWEEP) & results.metric.isin(GAP_METRICS)]
    wide = rows.pivot_table(
        index="epsilon", columns=["metric", "subgroup"], values="value", aggfunc="mean"
    )
    return wide.reindex(index=epsilon_order(wide.index), columns=list(GAP_METRICS), level=0)


# ----------------------------------------------------------------------------- figures


def plot_metrics_vs_epsilon(results: pd.DataFrame):
    """Each AUC metric against epsilon per subgroup; error bars: spread over seeds."""
    import seaborn as sns

    rows = results[(results.experiment == SWEEP) & results.metric.isin(AUC_METRICS)]
    order = epsilon_order(rows.epsilon.unique())
    grid = sns.catplot(
        data=rows, x="epsilon", y="value", hue="subgroup", col="metric", kind="point",
        order=order, col_order=list(AUC_METRICS), errorbar="sd", dodge=0.4, height=3.4,
        aspect=1.1, markersize=4, linewidth=1.2,
    )  # fmt: skip
    grid.set_axis_labels("epsilon (none = non-private)", "AUC")
    grid.set_titles("{col_name}")
    return grid


def plot_dp_change(changes: pd.DataFrame):
    """DP-induced change (DP minus non-private, same seed) per subgroup and epsilon."""
    import seaborn as sns

    rows = changes[(changes.experiment == SWEEP) & changes.metric.isin(AUC_METRICS)]
    grid = sns.catplot(
        data=rows, x="epsilon", y="change", hue="subgroup", col="metric", kind="bar",
        order=epsilon_order(rows.epsilon.unique()), col_order=list(AUC_METRICS),
        errorbar="sd", height=3.4, aspect=1.1,
    )  # fmt: skip
    for ax in grid.axes.flat:
        ax.axhline(0, color="black", linewidth=0.8)
    grid.set_axis_labels("epsilon", "change in AUC (DP - non-private)")
    grid.set_titles("{col_name}")
    return grid


def plot_gaps(results: pd.DataFrame):
    """Threshold gaps (subgroup minus background, at the threshold) and average
    equality gaps against epsilon per subgroup; error bars: spread over seeds."""
    import seaborn as sns

    rows = results[(results.experiment == SWEEP) & results.metric.isin(GAP_METRICS)]
    grid = sns.catplot(
        data=rows, x="epsilon", y="value", hue="subgroup", col="metric", kind="point",
        order=epsilon_order(rows.epsilon.unique()), col_order=list(GAP_METRICS), col_wrap=3,
        errorbar="sd", dodge=0.4, height=3.2, aspect=1.1, markersize=4, linewidth=1.2,
        sharey=False,
    )  # fmt: skip
    for ax in grid.axes.flat:
        ax.axhline(0, color="black", linewidth=0.8)
    grid.set_axis_labels("epsilon (none = non-private)", "gap (subgroup - background)")
    grid.set_titles("{col_name}")
    return grid


def plot_distribution(changes: pd.DataFrame, group: str):
    """The DP-induced change of ``group``'s AUC metrics against its training share."""
    import seaborn as sns

    rows = changes[
        (changes.experiment == DISTRIBUTION)
        & (changes.subgroup == group)
        & changes.metric.isin(AUC_METRICS)
    ]
    grid = sns.relplot(
        data=rows, x="share", y="change", hue="positive_rate", col="metric", kind="line",
        marker="o", errorbar="sd", col_order=list(AUC_METRICS), height=3.4, aspect=1.1,
        palette="viridis",
    )  # fmt: skip
    for ax in grid.axes.flat:
        ax.axhline(0, color="black", linewidth=0.8)
    grid.set_axis_labels(f"share of '{group}' in the training data", "change (DP - non-private)")
    grid.set_titles("{col_name}")
    return grid


def distribution_summary(changes: pd.DataFrame, group: str) -> pd.DataFrame:
    """Mean DP-induced change of ``group``'s metrics per (share, positive rate)."""
    rows = changes[(changes.experiment == DISTRIBUTION) & (changes.subgroup == group)]
    return rows.pivot_table(
        index=["positive_rate", "share"], columns="metric", values="change", aggfunc="mean"
    ).reindex(columns=list(AUC_METRICS))


def fail_early(params: DPBiasParams) -> None:
    """Checks that need no data: the model/task pairing, the device and TOP_LAYERS."""
    check_classifier_and_device(params.model, params.device)
    check_top_layers(params.model, params.top_layers)


# slopes below this (AUC per 10 points of share) are reported as flat: with one or two
# seeds and a few hundred test comments per group they are within the runs' noise
FLAT_SLOPE = 0.02


def _trend(slope: float, first: float, last: float) -> str:
    """'about flat', or whether the change rises or falls with the share, and what that
    means when the change keeps its sign (a drop shrinking or growing, a gain likewise)."""
    if abs(slope) < FLAT_SLOPE:
        return "about flat"
    trend = f"the change {'rises' if slope > 0 else 'falls'} with the share"
    if first < 0 and last < 0:
        trend += f" (a drop {'shrinks' if slope > 0 else 'grows'})"
    elif first > 0 and last > 0:
        trend += f" (a gain {'grows' if slope > 0 else 'shrinks'})"
    return trend


def describe_distribution(changes: pd.DataFrame, group: str) -> str:
    """A plain-language statement of what the distribution experiment found: for each
    metric and positive rate, the DP-induced change at the smallest and the largest
    share and the least-squares slope per 10 points of share (under ``FLAT_SLOPE``:
    "about flat")."""
    table = distribution_summary(changes, group)
    if table.empty:
        return f"no distribution runs for {group!r}"
    lines = [f"DP-induced change of '{group}' metrics (DP minus non-private, mean over seeds):"]
    for rate, part in table.groupby(level="positive_rate"):
        shares = part.index.get_level_values("share").to_numpy(float)
        for metric in AUC_METRICS:
            y = part[metric].to_numpy(float)
            ok = ~np.isnan(y)
            if ok.sum() < 2:
                lines.append(f"  positive rate {rate:g}, {metric}: too few defined values")
                continue
            slope = np.polyfit(shares[ok], y[ok], 1)[0] * 0.1
            trend = _trend(slope, y[ok][0], y[ok][-1])
            lines.append(
                f"  positive rate {rate:g}, {metric}: {y[ok][0]:+.3f} at share "
                f"{shares[ok][0]:g} -> {y[ok][-1]:+.3f} at {shares[ok][-1]:g} "
                f"({slope:+.3f} per 10 points of share: {trend})"
            )
    return "\n".join(lines)
