"""Study 3: does LoRA limit memorisation of sensitive tokens as much as DP-SGD, and at what
cost? (Das et al. 2025, "Revisiting Privacy, Utility, and Efficiency Trade-offs when
Fine-Tuning Large Language Models".)

Every method fine-tunes the same causal LM on the same CustomerSim-style dialogues for
the same number of epochs and batch size: full fine-tuning, LoRA at several ranks, DP-SGD
on the full model and DP-LoRA. Each trained model is scored against the base model with
the measures of :mod:`privbias_lib.metrics.memorisation`.
"""

from __future__ import annotations

import dataclasses
import html
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..accounting import METHODS as ACCOUNTANTS
from ..accounting import is_upper_bound
from ..metrics.memorisation import MIA_ATTACKS
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
    check_causal_lms_and_device,
    check_model_names,
    quiet_transformers,
    run_environment,
)

METHODS = ("full", "lora", "dp_full", "dp_lora")
METHOD_LABELS = {"full": "full FT", "lora": "LoRA", "dp_full": "DP full", "dp_lora": "DP-LoRA"}
BASE = "base"
SPLIT_LABELS = {"train": "training", "test": "test"}

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


@dataclasses.dataclass(frozen=True)
class LoraVsDpParams(StudyParams):
    """Study 3's notebook parameters (see the notebook's parameters cell)."""

    models: list = dataclasses.field(default_factory=lambda: ["smollm2-135m-instruct"])
    n_train: int = 32
    n_test: int = 32
    data_seed: int = 0
    locale: str = "en_US"
    canary_repeats: list = dataclasses.field(default_factory=lambda: [1, 4])
    canary_digits: int = 3
    exposure_exact_limit: int = 100_000
    exposure_samples: int = 2000
    methods: list = dataclasses.field(default_factory=lambda: list(METHODS))
    lora_ranks: list = dataclasses.field(default_factory=lambda: [2, 8, 32])
    dp_lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: list | None = None
    learning_rates: dict = dataclasses.field(
        default_factory=lambda: {"full": 1e-4, "lora": 1e-3, "dp_full": 1e-4, "dp_lora": 1e-3}
    )
    epochs: int = 3
    batch_size: int = 4
    physical_batch_size: int | None = None
    max_length: int = 256
    target_epsilon: float = 8.0
    delta: float | None = None
    max_grad_norm: float = 1.0
    accountant: str = "pld"
    bound_accountant: str = "prv"
    seeds: list = dataclasses.field(default_factory=lambda: [0])
    eval_batch_size: int = 16
    min_k: float = 0.2
    mia_fpr: float = 0.01
    bootstrap: int = 1000
    device: str | None = None

    def validate(self) -> None:
        super().validate()
        check_model_names(self.models)
        check_int("N_TRAIN", self.n_train, 2)
        check_int("N_TEST", self.n_test, 2)
        check_int("DATA_SEED", self.data_seed, 0)
        if not isinstance(self.locale, str) or not self.locale:
            raise bad("LOCALE", self.locale, "a Faker locale such as 'en_US'")
        from ..data.customersim import MAX_CANARIES

        repeats = self.canary_repeats
        if not isinstance(repeats, list | tuple) or len(repeats) > MAX_CANARIES:
            raise bad("CANARY_REPEATS", repeats, f"a list of at most {MAX_CANARIES} integers")
        for r in repeats:
            check_int("CANARY_REPEATS", r, 1)
        check_int("CANARY_DIGITS", self.canary_digits, 1)
        check_int("EXPOSURE_EXACT_LIMIT", self.exposure_exact_limit, 10)
        check_int("EXPOSURE_SAMPLES", self.exposure_samples, 10)
        for m in check_list("METHODS", self.methods):
            check_choice("METHODS", m, METHODS)
        if "lora" in self.methods:
            for r in check_list("LORA_RANKS", self.lora_ranks):
                check_int("LORA_RANKS", r, 1)
        check_int("DP_LORA_RANK", self.dp_lora_rank, 1)
        check_number("LORA_ALPHA", self.lora_alpha, low=0, open_low=True)
        if self.lora_targets is not None:
            for t in check_list("LORA_TARGETS", self.lora_targets):
                if not isinstance(t, str) or not t:
                    raise bad("LORA_TARGETS", self.lora_targets, "None or module names")
        if not isinstance(self.learning_rates, dict):
            raise bad("LEARNING_RATES", self.learning_rates, "a mapping method -> rate")
        missing = [m for m in self.methods if m not in self.learning_rates]
        if missing:
            raise bad("LEARNING_RATES", self.learning_rates, f"a rate for each of {missing}")
        for m, lr in self.learning_rates.items():
            check_choice("LEARNING_RATES", m, METHODS)
            check_number(f"LEARNING_RATES[{m!r}]", lr, low=0, open_low=True)
        check_int("EPOCHS", self.epochs, 1)
        check_int("BATCH_SIZE", self.batch_size, 1)
        if self.batch_size > self.n_train:
            raise bad("BATCH_SIZE", self.batch_size, f"at most N_TRAIN = {self.n_train}")
        if self.physical_batch_size is not None:
            check_int("PHYSICAL_BATCH_SIZE", self.physical_batch_size, 1)
        check_int("MAX_LENGTH", self.max_length, 8)
        check_number("TARGET_EPSILON", self.target_epsilon, low=0, open_low=True)
        if self.delta is not None:
            check_number("DELTA", self.delta, low=0, high=1, open_low=True)
            if self.delta >= 1:
                raise bad("DELTA", self.delta, "None (1/N) or a number in (0, 1)")
        check_number("MAX_GRAD_NORM", self.max_grad_norm, low=0, open_low=True)
        check_choice("ACCOUNTANT", self.accountant, ACCOUNTANTS)
        bounds = [a for a in ACCOUNTANTS if is_upper_bound(a)]
        check_choice("BOUND_ACCOUNTANT", self.bound_accountant, bounds)
        for s in check_list("SEEDS", self.seeds):
            check_int("SEEDS", s, 0)
        check_int("EVAL_BATCH_SIZE", self.eval_batch_size, 1)
        check_number("MIN_K", self.min_k, low=0, high=1, open_low=True)
        check_number("MIA_FPR", self.mia_fpr, low=0, high=1, open_low=True)
        check_int("BOOTSTRAP", self.bootstrap, 0)
        if self.device is not None:
            check_choice("DEVICE", self.device, ["cpu", "cuda"])


def fail_early(params: LoraVsDpParams) -> None:
    """Checks that need no data: every built-in model is a causal LM; CUDA when asked."""
    check_causal_lms_and_device(params.models, params.device)


# ----------------------------------------------------------------------------- data


@dataclasses.dataclass
class StudyData:
    """The dialogues: ``train`` (with the canary dialogues, what the models train on),
    ``members``/``test`` (the training and test dialogues without canaries, what the
    measures compare) and the canaries."""

    train: pd.DataFrame
    members: pd.DataFrame
    test: pd.DataFrame
    canaries: list

    def fingerprint(self) -> str:
        cols = ["dialogue_id", "text", "spans"]
        frames = [self.train[cols], self.test[cols]]
        return stable_hash(
            {
                "frames": [frame_hash(f.astype(str)) for f in frames],
                "canaries": [dataclasses.asdict(c) for c in self.canaries],
            }
        )


def build_data(params: LoraVsDpParams) -> StudyData:
    """Generate the training and test dialogues and insert the canaries."""
    from ..data.customersim import generate_splits, make_canaries, with_canaries

    members, test = generate_splits(
        params.n_train, params.n_test, seed=params.data_seed, locale=params.locale
    )
    canaries = make_canaries(params.canary_repeats, params.canary_digits, seed=params.data_seed)
    train = with_canaries(members, canaries, seed=params.data_seed, locale=params.locale)
    return StudyData(train=train, members=members, test=test, canaries=canaries)


def alignment_check(tokenizer, df: pd.DataFrame, max_length: int | None = None) -> dict:
    """Do the sensitive-token labels (from the tokenizer's offset mapping) line up with the
    spans? Checked through a second path, the token ids: each run of consecutive
    sensitive tokens is decoded, every span's value must appear in one of them, and every
    run must contain some span's value (or, cut by truncation, part of one). Spans cut off
    by truncation are not checked."""
    from ..data.customersim import sensitive_token_labels

    labels = sensitive_token_labels(tokenizer, df.text, df.spans, max_length=max_length)
    ids = tokenizer(list(df.text), truncation=max_length is not None, max_length=max_length)[
        "input_ids"
    ]
    spans = missed = stray = runs = 0
    for text, text_spans, tokens, lab in zip(df.text, df.spans, ids, labels, strict=True):
        decoded, run = [], []
        for token, label in [*zip(tokens, lab, strict=True), (None, 0)]:
            if label == 1:
                run.append(token)
            elif run:
                decoded.append(tokenizer.decode(run))
                run = []
        kept = tokenizer.decode([t for t, v in zip(tokens, lab, strict=True) if v != -1])
        values = [text[s:e] for s, e, _ in text_spans]
        for value in values:
            if value in kept:  # not cut off by truncation
                spans += 1
                missed += not any(value in d for d in decoded)
        runs += len(decoded)
        # a run cut by truncation holds part of a value
        stray += sum(not any(v in d or d.strip() in v for v in values) for d in decoded)
    n_tokens = sum(len(x) for x in labels)
    return {
        "spans_checked": spans,
        "spans_not_recovered": missed,
        "sensitive_runs": runs,
        "runs_without_a_value": stray,
        "sensitive_token_share": sum(int(v == 1) for x in labels for v in x) / n_tokens,
        "ok": spans > 0 and missed == 0 and stray == 0,
    }


def highlight_tokens(tokenizer, text: str, spans, max_tokens: int = 80) -> pd.DataFrame:
    """The first tokens of one text with their labels, for showing the alignment."""
    from ..data.customersim import sensitive_token_labels

    ids = tokenizer(text)["input_ids"][:max_tokens]
    labels = sensitive_token_labels(tokenizer, [text], [spans])[0][:max_tokens]
    return pd.DataFrame(
        {
            "token": [tokenizer.decode([i]) for i in ids],
            "label": [{1: "sensitive", 0: "", -1: "special"}[v] for v in labels],
        }
    )


_TOKEN_STYLES = {
    "sensitive": "background:#fcc;border-color:#c33",
    "special": "background:#eee;color:#777",
    "": "",
}


def highlight_html(tokens: pd.DataFrame) -> str:
    """`highlight_tokens`'s table as wrapped HTML: one box per token, sensitive tokens
    red, special ones grey; spaces shown as a middle dot, line breaks as a return sign."""
    boxes = []
    for token, label in zip(tokens.token, tokens.label, strict=True):
        shown = html.escape(token).replace(" ", "\N{MIDDLE DOT}").replace("\n", "\N{RETURN SYMBOL}")
        boxes.append(
            '<span style="display:inline-block;border:1px solid #ccc;margin:1px;'
            f'padding:0 2px;white-space:pre;{_TOKEN_STYLES[label]}">{shown}</span>'
        )
    legend = (
        f"<div>the first {len(tokens)} tokens; "
        f'<span style="{_TOKEN_STYLES["sensitive"]}">sensitive</span>, '
        f'<span style="{_TOKEN_STYLES["special"]}">special</span></div>'
    )
    style = "font-family:monospace;font-size:0.8em;line-height:1.9"
    return f'<div style="{style}">{legend}{"".join(boxes)}</div>'


# ----------------------------------------------------------------------------- runs


def plan_runs(params: LoraVsDpParams) -> list[dict]:
    """Every fine-tuning run: model x method (x LoRA rank) x seed."""
    runs = []
    for model in params.models:
        for seed in params.seeds:
            for method in params.methods:
                ranks = {
                    "lora": params.lora_ranks,
                    "dp_lora": [params.dp_lora_rank],
                }.get(method, [None])
                for rank in ranks:
                    label = method if rank is None else f"{method}-r{rank}"
                    runs.append(
                        {
                            "run": f"{model}/{label}/seed={seed}",
                            "model": model,
                            "method": method,
                            "label": label,
                            "rank": rank,
                            "seed": seed,
                        }
                    )
    return runs


def train_config(params: LoraVsDpParams, spec: dict):
    """Same epochs, batch size and length for every method; DP-SGD with Poisson sampling
    and the noise ``ACCOUNTANT`` calibrates for ``TARGET_EPSILON``."""
    from ..training import Full, LoRA, PrivacyConfig, TrainConfig

    private = spec["method"].startswith("dp_")
    trainable = (
        LoRA(
            rank=spec["rank"],
            alpha=params.lora_alpha,
            target_modules=tuple(params.lora_targets) if params.lora_targets else None,
        )
        if spec["rank"] is not None
        else Full()
    )
    privacy = (
        PrivacyConfig(
            target_epsilon=float(params.target_epsilon),
            delta=params.delta,
            max_grad_norm=params.max_grad_norm,
            accountant=params.accountant,
            bound_accountant=params.bound_accountant,
        )
        if private
        else None
    )
    return TrainConfig(
        trainable=trainable,
        learning_rate=float(params.learning_rates[spec["method"]]),
        epochs=params.epochs,
        batch_size=params.batch_size,
        physical_batch_size=params.physical_batch_size,
        max_length=params.max_length,
        seed=spec["seed"],
        device=params.device,
        privacy=privacy,
        progress=False,
    )


def _load(params: LoraVsDpParams, name: str):
    from ..models import load_model

    with quiet_transformers():
        return load_model(name, "causal-lm", device=params.device)


def _canary_scores(params, model, tok, canary, seed: int) -> dict:
    """Exposure of one canary: exact over all 10**digits candidates when that is at most
    ``EXPOSURE_EXACT_LIMIT``, else estimated from ``EXPOSURE_SAMPLES`` random candidates."""
    from ..metrics.memorisation import candidate_logprobs, exposure, exposure_estimate

    digits = len(canary.secret)
    space = canary.candidate_space_size
    context = "Customer: " + canary.prefix
    if space <= params.exposure_exact_limit:
        candidates = [str(i).zfill(digits) for i in range(space)]
        scores = candidate_logprobs(model, tok, context, candidates, device=params.device)
        secret = float(scores[int(canary.secret)])
        value, how = exposure(secret, scores), "exact"
    else:
        rng = np.random.default_rng([params.data_seed, seed, int(canary.canary_id.split("-")[1])])
        sample = [
            "".join(map(str, rng.integers(0, 10, digits))) for _ in range(params.exposure_samples)
        ]
        scores = candidate_logprobs(
            model, tok, context, [canary.secret, *sample], device=params.device
        )
        secret = float(scores[0])
        value, how = exposure_estimate(secret, scores[1:], space), "normal estimate"
    return {
        "canary_id": canary.canary_id,
        "repeats": canary.repeats,
        "space_size": space,
        "exposure": value,
        "exposure_method": how,
        "secret_logprob": secret,
    }


def score_model(params: LoraVsDpParams, model, tok, data: StudyData) -> dict:
    """Per-token log-likelihoods of the member and test dialogues, and canary exposures."""
    from ..metrics.memorisation import token_logprobs

    kw = {
        "max_length": params.max_length,
        "batch_size": params.eval_batch_size,
        "device": params.device,
    }
    return {
        "members": token_logprobs(model, tok, data.members.text, **kw),
        "test": token_logprobs(model, tok, data.test.text, **kw),
        "canaries": [_canary_scores(params, model, tok, c, 0) for c in data.canaries],
    }


def labels_for(params: LoraVsDpParams, tok, data: StudyData) -> dict:
    from ..data.customersim import sensitive_token_labels

    return {
        split: sensitive_token_labels(tok, df.text, df.spans, max_length=params.max_length)
        for split, df in (("members", data.members), ("test", data.test))
    }


def measure(params: LoraVsDpParams, scored: dict, base: dict, labels: dict, data) -> dict:
    """All memorisation, utility and membership measures of one model against the base."""
    from ..metrics.memorisation import (
        memorisation_report,
        mia_report,
        mia_scores,
        text_category_sums,
    )

    sums = {s: text_category_sums(scored[s], base[s], labels[s]) for s in ("members", "test")}
    report = memorisation_report(
        sums["members"], sums["test"], bootstrap=params.bootstrap, seed=params.data_seed
    )
    member = mia_scores(scored["members"], base["members"], data.members.text, min_k=params.min_k)
    nonmember = mia_scores(scored["test"], base["test"], data.test.text, min_k=params.min_k)
    return {
        "report": report,
        "mia": mia_report(member, nonmember, fpr=params.mia_fpr),
        "mia_scores": {"member": member.to_dict("list"), "nonmember": nonmember.to_dict("list")},
        "canaries": scored["canaries"],
    }


def _step_seconds(history) -> float:
    steps = history.step_seconds[1:] or history.step_seconds  # the first step warms up
    return float(np.median(steps)) if steps else math.nan


def train_and_measure(params, spec: dict, data: StudyData, base: dict, labels: dict) -> dict:
    """Fine-tune one model as ``spec`` says and measure it against the base model."""
    from ..repro import set_seed
    from ..training import train_causal_lm

    t0 = time.perf_counter()
    set_seed(spec["seed"])
    model, tok = _load(params, spec["model"])
    result = train_causal_lm(model, tok, data.train, train_config(params, spec))
    h = result.history
    train_seconds = time.perf_counter() - t0
    scored = score_model(params, result.model, tok, data)
    return {
        **spec,
        **measure(params, scored, base, labels, data),
        "cost": {
            "wall_time_s": h.wall_time_s,
            "seconds_per_step": _step_seconds(h),
            "steps": h.steps,
            "peak_memory_mb": h.peak_memory_mb,
            "memory_kind": h.memory_kind,
            "trainable_parameters": h.trainable_parameters,
            "total_parameters": h.total_parameters,
            "final_train_loss": h.summary()["final_loss"],
            "grad_sample_mode": h.grad_sample_mode,
            "frozen_for_dp": list(h.frozen_for_dp),
        },
        "privacy": {**result.privacy.to_dict(), "max_grad_norm": params.max_grad_norm}
        if result.privacy
        else None,
        "seconds": {"train": train_seconds, "measure": time.perf_counter() - t0 - train_seconds},
    }


class BaseScores:
    """The base model's scores per model, computed on first use (a run that is already
    stored never needs them) and kept for the other runs of the same model."""

    def __init__(self, params: LoraVsDpParams, data: StudyData):
        self.params, self.data = params, data
        self._cache: dict[str, tuple[dict, dict]] = {}

    def get(self, model_name: str) -> tuple[dict, dict]:
        if model_name not in self._cache:
            model, tok = _load(self.params, model_name)
            scored = score_model(self.params, model, tok, self.data)
            self._cache[model_name] = (scored, labels_for(self.params, tok, self.data))
            del model
        return self._cache[model_name]


def run_study(
    params: LoraVsDpParams, data: StudyData, store: RunStore, progress: bool = True
) -> list[dict]:
    """The base model's measures and every planned run, reusing finished ones from
    ``store`` (keyed by everything that determines them)."""
    from tqdm.auto import tqdm

    from .. import __version__
    from ..models import model_fingerprint
    from ..repro import set_seed

    # deterministic kernels (and on CUDA the same attention kernel) for every model scored,
    # the base model included, not only from the first training run on
    set_seed(params.data_seed)
    data_hash = data.fingerprint()
    bases = BaseScores(params, data)
    measured = dataclasses.replace(params, output_dir="", seeds=[], models=[], methods=[])
    common = {
        "data": data_hash,
        "version": __version__,
        "where": run_environment(params.device),
        "measures": measured.to_dict(),
    }
    fingerprints = {m: model_fingerprint(m)["sha256"] for m in params.models}
    out = []
    for model_name in params.models:
        fingerprint = fingerprints[model_name]

        def base_run(model_name=model_name):
            t0 = time.perf_counter()
            scored, labels = bases.get(model_name)
            return {
                "run": f"{model_name}/{BASE}",
                "model": model_name,
                "method": BASE,
                "label": BASE,
                "rank": None,
                "seed": None,
                **measure(params, scored, scored, labels, data),
                "cost": None,
                "privacy": None,
                "seconds": {"train": 0.0, "measure": time.perf_counter() - t0},
            }

        key = stable_hash({**common, "model": [model_name, fingerprint], "run": BASE})
        out.append(store.get_or_compute(key, base_run))
    for spec in tqdm(plan_runs(params), desc="study 3 runs", disable=not progress):
        fingerprint = fingerprints[spec["model"]]
        key = stable_hash(
            {
                **common,
                "model": [spec["model"], fingerprint],
                "spec": spec,
                "config": train_config(params, spec).to_dict(),
            }
        )

        def run(spec=spec):
            base, labels = bases.get(spec["model"])
            return train_and_measure(params, spec, data, base, labels)

        out.append(store.get_or_compute(key, run))
    return out


# ----------------------------------------------------------------------------- tables


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


def claim_check(table: pd.DataFrame, tolerance: float = 0.25) -> pd.DataFrame:
    """Per model: does "LoRA ≈ DP on privacy" hold? Each LoRA rank's leakage is compared
    with DP full's; it holds when the difference is at most ``tolerance`` times full
    fine-tuning's leakage (the gap DP closes), i.e. LoRA closes at least 75% of that gap."""
    rows = []
    for model, part in table.groupby(level="model", sort=False):
        leak = part["leakage (nats/token)"].droplevel("model")
        if "full" not in leak or "dp_full" not in leak:
            continue
        full, dp = leak["full"], leak["dp_full"]
        for label in [lbl for lbl in leak.index if lbl.startswith("lora")]:
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
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- figures


def _method_of(label: str) -> str:
    return label.split("-r")[0]


def plot_privacy_utility(table: pd.DataFrame, results: pd.DataFrame):
    """Leakage against utility, one point per method; LoRA ranks joined as a path; the base
    model (no fine-tuning: zero leakage by definition) as a cross."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    models = list(dict.fromkeys(table.index.get_level_values("model")))
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.2), squeeze=False)
    palette = dict(zip(METHODS, sns.color_palette("colorblind", len(METHODS)), strict=True))
    for ax, model in zip(axes[0], models, strict=True):
        part = table.loc[model]
        base = results[
            (results.model == model)
            & (results.label == BASE)
            & (results.subgroup == "all")
            & (results.metric == "utility_loss")
        ]["value"]
        if not base.empty:
            ax.scatter(base.iloc[0], 0.0, marker="x", color="black", s=60, label="base model")
        lora = part[[lbl.startswith("lora") for lbl in part.index]]
        lora = lora.assign(rank=[int(lbl.split("-r")[1]) for lbl in lora.index]).sort_values("rank")
        if len(lora) > 1:
            ax.plot(
                lora["utility: test loss (non-sensitive)"],
                lora["leakage (nats/token)"],
                color=palette["lora"],
                lw=1,
                alpha=0.6,
            )
        for i, (label, row) in enumerate(part.iterrows()):
            if label == BASE:
                continue
            method = _method_of(label)
            x, y = row["utility: test loss (non-sensitive)"], row["leakage (nats/token)"]
            ax.errorbar(
                x,
                y,
                yerr=[[y - row["leakage 95% CI low"]], [row["leakage 95% CI high"] - y]],
                fmt="o",
                color=palette[method],
                capsize=3,
            )
            offset = (5, 4) if i % 2 else (5, -11)  # neighbours' labels alternate up and down
            ax.annotate(label, (x, y), textcoords="offset points", xytext=offset, fontsize=8)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("utility: test loss on non-sensitive tokens (nats, lower is better)")
        ax.set_ylabel("privacy leakage (nats/token, lower is better)")
        ax.set_title(model)
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=palette[m], label=METHOD_LABELS[m])
        for m in METHODS
    ]
    handles.append(plt.Line2D([], [], marker="x", ls="", color="black", label="base model"))
    axes[0][-1].legend(handles=handles, fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_gains(results: pd.DataFrame):
    """Per-token log-likelihood gain over the base model on the four token sets."""
    import seaborn as sns

    part = results[
        (results.metric == "gain")
        & results.subgroup.str.contains("/")
        & (results.label != BASE)
        & ~results.subgroup.str.startswith(("mia", "canary"))
    ].copy()
    part[["split", "tokens"]] = part.subgroup.str.split("/", expand=True)
    part["token set"] = part.split.map(SPLIT_LABELS) + ", " + part.tokens.str.replace("_", "-")
    grid = sns.catplot(
        data=part,
        x="label",
        y="value",
        hue="token set",
        col="model",
        kind="bar",
        height=3.8,
        aspect=1.6,
        palette="Paired",
        errorbar=None,
    )
    grid.set_axis_labels("", "log-likelihood gain over base (nats/token)")
    for ax in grid.axes.flat:
        ax.axhline(0, color="grey", lw=0.5)
        ax.tick_params(axis="x", rotation=30)
    return grid


def plot_exposure(results: pd.DataFrame):
    """Canary exposure against the number of times the canary was inserted."""
    import seaborn as sns

    part = results[(results.metric == "exposure") & results.subgroup.str.startswith("canary/")]
    part = part.assign(repeats=part.subgroup.str[7:-1].astype(int))
    grid = sns.relplot(
        data=part,
        x="repeats",
        y="value",
        hue="label",
        col="model",
        kind="line",
        marker="o",
        height=3.6,
        aspect=1.3,
        errorbar=None,
    )
    top = results[results.metric == "max_exposure"]["value"].max()
    for ax in grid.axes.flat:
        ax.axhline(top, color="grey", ls="--", lw=0.8)
        ax.set_xscale("log", base=2)
    grid.set_axis_labels("times the canary is in the training set", "exposure (bits)")
    return grid


def write_tables(output_dir, table: pd.DataFrame, claims: pd.DataFrame) -> list[Path]:
    """The summary and claim tables as CSV beside ``results.csv``."""
    from .._io import atomic_path

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
            lines.append(
                f"  {row['LoRA']} removes {share:.0%} of full fine-tuning's excess leakage over"
                f" DP full: 'LoRA ≈ DP on privacy' {'holds' if verdict else 'does not hold'}"
                " by the 75% criterion."
            )
    return "\n".join(lines)
