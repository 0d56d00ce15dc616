"""Study 2 — EW-Tune: the Edgeworth accountant, the noise it calibrates, and what that
noise really costs in privacy.

Part A is pure computation (:mod:`privbias_lib.accounting`): epsilon curves of every
accountant, the noise multiplier each needs for a target epsilon at EW-Tune's four task
settings, and the audit of those noise levels by PLD. Part B fine-tunes one model with
each accountant's noise and compares accuracy (Behnia et al. 2022).
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pandas as pd

from ..accounting import METHODS, epsilon, noise_multiplier
from ..notebook import (
    ParameterError,
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

# EW-Tune's training sets, batch and epochs: q = B / N, T = EPOCHS * floor(N / B)
TASK_SIZES = {"mnli": 392_702, "qnli": 104_743, "qqp": 363_849, "sst2": 67_349}
EW_BATCH, EW_EPOCHS = 2000, 20
CALIBRATED = ("edgeworth", "prv", "rdp")  # the three accountants EW-Tune compared
ACCOUNTANT_NAMES = {"edgeworth": "Edgeworth", "prv": "PRV", "rdp": "RDP", "pld": "PLD"}
AUDITOR = "pld"  # the near-exact rigorous reference
NON_PRIVATE = "none"
DATASETS = ("redditbias", "glue")
TRAINABLES = ("top_layers", "lora")

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


# ----------------------------------------------------------------------------- params


@dataclasses.dataclass(frozen=True)
class EWTuneParams(StudyParams):
    """Study 2's notebook parameters (see the notebook's parameters cell)."""

    tasks: list = dataclasses.field(default_factory=lambda: list(TASK_SIZES))
    deltas: list = dataclasses.field(default_factory=lambda: [1e-5, 1e-6])
    target_epsilon: float = 8.0
    curve_methods: list = dataclasses.field(default_factory=lambda: list(METHODS))
    curve_tasks: list = dataclasses.field(default_factory=lambda: list(TASK_SIZES))
    curve_steps: list = dataclasses.field(default_factory=list)
    curve_sigmas: list = dataclasses.field(default_factory=list)
    audit_sample_rates: list = dataclasses.field(default_factory=list)
    audit_steps: list = dataclasses.field(default_factory=list)
    audit_epsilons: list = dataclasses.field(default_factory=list)
    run_training: bool = True
    dataset: str = "redditbias"
    glue_task: str = "sst2"
    data_source: str | None = None
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    split_seed: int = 0
    model: str = "minilm-l6"
    trainable: str = "top_layers"
    top_layers: int = 1
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: list = dataclasses.field(default_factory=lambda: ["query", "value"])
    max_length: int = 128
    epochs: int = 2
    batch_size: int = 64
    physical_batch_size: int | None = None
    learning_rate: float = 1e-3
    non_private_learning_rate: float | None = None
    max_grad_norm: float = 1.0
    train_epsilon: float = 8.0
    train_delta: float | None = 1e-5
    train_accountants: list = dataclasses.field(default_factory=lambda: list(CALIBRATED))
    include_non_private: bool = True
    seeds: list = dataclasses.field(default_factory=lambda: [0, 1, 2])
    device: str | None = None

    def validate(self) -> None:
        super().validate()
        for t in check_list("TASKS", self.tasks):
            check_choice("TASKS", t, list(TASK_SIZES))
        for d in check_list("DELTAS", self.deltas):
            check_number("DELTAS", d, low=0, open_low=True, high=0.1)
        check_number("TARGET_EPSILON", self.target_epsilon, low=0, open_low=True, high=100)
        for m in check_list("CURVE_METHODS", self.curve_methods):
            check_choice("CURVE_METHODS", m, list(METHODS))
        for needed in ("edgeworth", AUDITOR):
            if needed not in self.curve_methods:
                raise bad("CURVE_METHODS", self.curve_methods, f"a list including {needed!r}")
        for t in check_list("CURVE_TASKS", self.curve_tasks):
            check_choice("CURVE_TASKS", t, list(TASK_SIZES))
        for s in check_list("CURVE_STEPS", self.curve_steps):
            check_int("CURVE_STEPS", s, 1)
        for s in check_list("CURVE_SIGMAS", self.curve_sigmas):
            check_number("CURVE_SIGMAS", s, low=0.3, high=100)
        for q in check_list("AUDIT_SAMPLE_RATES", self.audit_sample_rates):
            check_number("AUDIT_SAMPLE_RATES", q, low=0, open_low=True, high=1)
        for s in check_list("AUDIT_STEPS", self.audit_steps):
            check_int("AUDIT_STEPS", s, 1)
        for e in check_list("AUDIT_EPSILONS", self.audit_epsilons):
            check_number("AUDIT_EPSILONS", e, low=0, open_low=True, high=100)
        if not isinstance(self.run_training, bool):
            raise bad("RUN_TRAINING", self.run_training, "True or False")
        check_choice("DATASET", self.dataset, DATASETS)
        check_choice("GLUE_TASK", self.glue_task, list(TASK_SIZES))
        if self.data_source is not None and not isinstance(self.data_source, str):
            raise bad("DATA_SOURCE", self.data_source, "None, a hub id or a local folder")
        if self.dataset == "redditbias" and self.data_source is not None:
            raise bad("DATA_SOURCE", self.data_source, "None for the offline RedditBias")
        for name in ("max_train_examples", "max_eval_examples"):
            if getattr(self, name) is not None:
                check_int(name.upper(), getattr(self, name), 100)
        check_int("SPLIT_SEED", self.split_seed, 0)
        if not isinstance(self.model, str) or not self.model:
            raise bad("MODEL", self.model, "a built-in model name, hub id or folder")
        check_choice("TRAINABLE", self.trainable, TRAINABLES)
        check_int("TOP_LAYERS", self.top_layers, 1)
        check_int("LORA_RANK", self.lora_rank, 1)
        check_number("LORA_ALPHA", self.lora_alpha, low=0, open_low=True)
        for t in check_list("LORA_TARGETS", self.lora_targets):
            if not isinstance(t, str) or not t:
                raise bad("LORA_TARGETS", self.lora_targets, "a list of module names")
        check_int("MAX_LENGTH", self.max_length, 8)
        check_int("EPOCHS", self.epochs, 1)
        check_int("BATCH_SIZE", self.batch_size, 2)
        if self.max_train_examples is not None and self.batch_size > self.max_train_examples:
            raise bad("BATCH_SIZE", self.batch_size, f"at most MAX_TRAIN_EXAMPLES = "
                      f"{self.max_train_examples}")  # fmt: skip
        if self.physical_batch_size is not None:
            check_int("PHYSICAL_BATCH_SIZE", self.physical_batch_size, 1)
        check_number("LEARNING_RATE", self.learning_rate, low=0, open_low=True)
        if self.non_private_learning_rate is not None:
            check_number(
                "NON_PRIVATE_LEARNING_RATE", self.non_private_learning_rate, low=0, open_low=True
            )
        check_number("MAX_GRAD_NORM", self.max_grad_norm, low=0, open_low=True)
        check_number("TRAIN_EPSILON", self.train_epsilon, low=0, open_low=True, high=100)
        if self.train_delta is not None:
            check_number("TRAIN_DELTA", self.train_delta, low=0, open_low=True, high=0.1)
        for m in check_list("TRAIN_ACCOUNTANTS", self.train_accountants):
            check_choice("TRAIN_ACCOUNTANTS", m, list(METHODS))
        if not isinstance(self.include_non_private, bool):
            raise bad("INCLUDE_NON_PRIVATE", self.include_non_private, "True or False")
        for s in check_list("SEEDS", self.seeds):
            check_int("SEEDS", s, 0)
        if self.device is not None:
            check_choice("DEVICE", self.device, ("cpu", "cuda"))

    @property
    def num_labels(self) -> int:
        from ..data.hub import GLUE_LABELS

        return GLUE_LABELS[self.glue_task] if self.dataset == "glue" else 2


def fail_early(params: EWTuneParams) -> None:
    """Checks that need no data: the model/task pairing and the device."""
    if params.run_training:
        check_classifier_and_device(params.model, params.device)
        if params.trainable == "top_layers":
            check_top_layers(params.model, params.top_layers)


# ----------------------------------------------------------------------------- part A


def _timed_epsilon(q: float, sigma: float, steps: int, delta: float, method: str) -> dict:
    from ..accounting import AccountingError

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
    from ..accounting import AccountingError

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


# ----------------------------------------------------------------------------- part B


def load_training_data(params: EWTuneParams) -> pd.DataFrame:
    """Labelled examples with a ``split`` (train / validation). RedditBias: one row per
    distinct comment (comments filed under two groups with the same label kept once,
    those with conflicting labels dropped), split 80/20 stratified by label. GLUE: the
    task's train and validation splits (MNLI: validation_matched) from the hub or a
    local copy."""
    from ..data import load_glue, load_redditbias, stratified_split

    if params.dataset == "redditbias":
        df = load_redditbias()[["id", "text", "label"]]
        agree = df.groupby("text").label.transform("nunique") == 1
        df = df[agree].drop_duplicates("text").reset_index(drop=True)
        df = stratified_split(
            df.assign(group="all"), {"train": 0.8, "validation": 0.2}, seed=params.split_seed
        ).drop(columns="group")
        df["text_pair"] = None
    else:
        src = params.data_source or "nyu-mll/glue"
        val = "validation_matched" if params.glue_task == "mnli" else "validation"
        parts = [
            load_glue(params.glue_task, split, src).assign(split=name)
            for name, split in [("train", "train"), ("validation", val)]
        ]
        df = pd.concat(parts, ignore_index=True)
    keep = []
    for split, limit in [
        ("train", params.max_train_examples),
        ("validation", params.max_eval_examples),
    ]:
        part = df[df.split == split]
        if limit is not None and len(part) > limit:
            part = part.sample(n=limit, random_state=params.split_seed).sort_index()
        keep.append(part)
    out = pd.concat(keep).reset_index(drop=True)
    for split in ("train", "validation"):
        if out[out.split == split].label.nunique() < 2:
            raise ValueError(f"the {split} split has only one class: use more data")
    return out


def data_fingerprint(data: pd.DataFrame) -> str:
    """Hash of everything a run reads from the data, second sentences of pairs included."""
    cols = data[["id", "text", "label", "split"]].assign(
        text_pair=data["text_pair"].fillna("") if "text_pair" in data else ""
    )
    return frame_hash(cols)


def _has_pairs(data: pd.DataFrame) -> bool:
    return "text_pair" in data.columns and data.text_pair.notna().any()


def train_steps(params: EWTuneParams, n_train: int) -> int:
    """EW-Tune's step count for ``n_train`` examples: EPOCHS * floor(N / BATCH_SIZE), the
    T its accounting (and Part A) uses."""
    if n_train < params.batch_size:
        raise ParameterError(
            f"parameter BATCH_SIZE = {params.batch_size} is larger than the {n_train} "
            "training examples"
        )
    return params.epochs * (n_train // params.batch_size)


def train_config(params: EWTuneParams, accountant: str | None, seed: int, n_train: int):
    """EW-Tune's T = EPOCHS * floor(N / B) steps, AdamW, constant learning rate; DP-SGD
    with Poisson sampling and
    the noise ``accountant`` calibrates for ``TRAIN_EPSILON`` (PLD bounds every run).
    ``accountant`` None trains non-privately, at ``NON_PRIVATE_LEARNING_RATE`` when set
    (clipped, noisy DP steps usually want a larger rate than plain ones)."""
    from ..training import LoRA, PrivacyConfig, TopLayers, TrainConfig

    privacy = None
    if accountant is not None:
        privacy = PrivacyConfig(
            target_epsilon=float(params.train_epsilon),
            delta=params.train_delta,
            max_grad_norm=params.max_grad_norm,
            accountant=accountant,
            bound_accountant=AUDITOR,
        )
    if params.trainable == "lora":
        trainable = LoRA(
            rank=params.lora_rank,
            alpha=params.lora_alpha,
            target_modules=tuple(params.lora_targets),
        )
    else:
        trainable = TopLayers(params.top_layers, cache_frozen=True)
    lr = params.learning_rate
    if accountant is None and params.non_private_learning_rate is not None:
        lr = params.non_private_learning_rate
    return TrainConfig(
        trainable=trainable,
        learning_rate=lr,
        epochs=params.epochs,
        max_steps=train_steps(params, n_train),
        batch_size=params.batch_size,
        physical_batch_size=params.physical_batch_size,
        max_length=params.max_length,
        seed=seed,
        device=params.device,
        validation_metric="accuracy",
        privacy=privacy,
        progress=False,
    )


def plan_runs(params: EWTuneParams) -> list[dict]:
    """Every training run: the non-private reference, then one run per accountant, per seed."""
    if not params.run_training:
        return []
    methods = ([None] if params.include_non_private else []) + list(params.train_accountants)
    return [
        {"run": f"{m or NON_PRIVATE}/seed={seed}", "accountant": m, "seed": seed}
        for seed in params.seeds
        for m in methods
    ]


def train_and_evaluate(params: EWTuneParams, spec: dict, data: pd.DataFrame) -> dict:
    """Train one model as ``spec`` says; its validation accuracy and privacy record."""
    from ..models import load_model
    from ..repro import set_seed
    from ..training import train_classifier

    train = data[data.split == "train"]
    validation = data[data.split == "validation"]
    t0 = time.perf_counter()
    set_seed(spec["seed"])
    with quiet_transformers():
        model, tok = load_model(
            params.model, "classification", num_labels=params.num_labels, device=params.device
        )
    config = train_config(params, spec["accountant"], spec["seed"], len(train))
    result = train_classifier(
        model,
        tok,
        train,
        config,
        validation=validation,
        pair_column="text_pair" if _has_pairs(data) else None,
    )
    last = result.history.epochs[-1]
    return {
        **spec,
        "train_size": len(train),
        "val_accuracy": last["val_accuracy"],
        "val_loss": last["val_loss"],
        "history": result.history.summary(),
        "privacy": result.privacy.to_dict() if result.privacy else None,
        "seconds": time.perf_counter() - t0,
    }


def run_training(
    params: EWTuneParams, data: pd.DataFrame, store: RunStore, progress: bool = True
) -> list[dict]:
    """Every planned run, reusing finished ones from ``store``."""
    from tqdm.auto import tqdm

    from .. import __version__
    from ..models import model_fingerprint

    data_hash = data_fingerprint(data)
    model_hash = model_fingerprint(params.model)["sha256"]
    n_train = int((data.split == "train").sum())
    out = []
    for spec in tqdm(plan_runs(params), desc="study 2 runs", disable=not progress):
        cfg = train_config(params, spec["accountant"], spec["seed"], n_train).to_dict()
        key = stable_hash(
            {"spec": spec, "config": cfg, "data": data_hash, "model": [params.model, model_hash],
             "labels": params.num_labels, "version": __version__,
             "where": run_environment(params.device)}
        )  # fmt: skip
        train = lambda spec=spec: train_and_evaluate(params, spec, data)  # noqa: E731
        out.append(store.get_or_compute(key, train))
    return out


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
                        + d.target.astype(str)
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


# ----------------------------------------------------------------------------- figures


def _spaced(values, min_ratio: float = 1.2) -> list[float]:
    """Sorted ``values`` without those closer than ``min_ratio`` to the previous one kept
    (tick positions on a log axis whose labels would overlap, e.g. 1000 and 1040)."""
    kept: list[float] = []
    for v in sorted(values):
        if not kept or v >= kept[-1] * min_ratio:
            kept.append(v)
    return kept


def plot_curves(curves: pd.DataFrame):
    """Epsilon against steps (left) and against sigma (right) per accountant, one row
    per task; estimates dashed, upper bounds solid."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker as mticker
    import seaborn as sns

    tasks = list(dict.fromkeys(curves.task))
    fig, axes = plt.subplots(len(tasks), 2, figsize=(9.5, 2.9 * len(tasks)), squeeze=False)
    for row, task in enumerate(tasks):
        for col, (curve, x) in enumerate([("vs steps", "steps"), ("vs sigma", "sigma")]):
            ax = axes[row, col]
            part = curves[(curves.task == task) & (curves.curve == curve)]
            sns.lineplot(
                data=part, x=x, y="epsilon", hue="method", style="kind", markers=True,
                dashes={"upper bound": "", "estimate": (3, 2)}, ax=ax,
                legend=row == 0 and col == 1,
            )  # fmt: skip
            q, fixed = part.q.iloc[0], part.sigma.iloc[0] if x == "steps" else part.steps.iloc[0]
            what = "sigma" if x == "steps" else "T"
            delta = part.delta.iloc[0]
            ax.set_title(f"{task}: q={q:.4f}, {what}={fixed:g}, δ={delta:g}", fontsize=10)
            if x == "steps":  # log axis, labelled at the steps computed, no minor labels
                ax.set_xscale("log")
                ax.xaxis.set_major_locator(mticker.FixedLocator(_spaced(part.steps.unique())))
                ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_formatter(mticker.NullFormatter())
                ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    if axes[0, 1].get_legend() is not None:
        sns.move_legend(axes[0, 1], "upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    fig.tight_layout()
    return fig


def plot_finetune_audit(finetune: pd.DataFrame):
    """Edgeworth's under-count (PLD epsilon at its sigma vs the target) against steps."""
    import seaborn as sns

    grid = sns.relplot(
        data=finetune, x="steps", y="relative_error", hue="target", col="q", kind="line",
        marker="o", height=3.4, aspect=1.2, palette="viridis",
    )  # fmt: skip
    for ax in grid.axes.flat:
        ax.set_xscale("log")
        ax.axhline(0, color="black", linewidth=0.8)
    grid.set_axis_labels("steps T", "(PLD eps - target) / PLD eps")
    return grid


def plot_accuracy(training: pd.DataFrame):
    """Validation accuracy per method, one point per seed."""
    import seaborn as sns

    rows = training[training.metric == "val_accuracy"].assign(accuracy=lambda d: 100 * d.value)
    order = [m for m in (NON_PRIVATE, *CALIBRATED) if m in set(rows.method)]
    order += sorted(set(rows.method) - set(order))
    grid = sns.catplot(
        data=rows, x="method", y="accuracy", kind="strip", order=order, height=3.4, aspect=1.4,
        size=7,
    )  # fmt: skip
    grid.set_axis_labels("noise calibrated by", "validation accuracy (%)")
    return grid


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
