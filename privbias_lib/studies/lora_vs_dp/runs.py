"""Study 3's runs: the base model's measures, then every method (x LoRA rank) x seed
fine-tuned on the same dialogues and measured against the base model."""

from __future__ import annotations

import math
import time

import numpy as np

from ...models import quiet_transformers
from ...store import Run
from .data import StudyData
from .params import BASE, LoraVsDpParams


def _variants(params: LoraVsDpParams, method: str) -> list[tuple[int | None, float | None]]:
    """(LoRA rank, target epsilon) of each run of ``method``."""
    if method == "lora":
        return [(rank, None) for rank in params.lora_ranks]
    if method == "dp_lora":
        return [(params.dp_lora_rank, float(e)) for e in params.dp_lora_epsilons]
    if method == "dp_full":
        return [(None, float(params.target_epsilon))]
    return [(None, None)]


def run_label(method: str, rank: int | None, epsilon: float | None) -> str:
    """``full``, ``lora-r8``, ``dp_full``, ``dp_lora-r8-eps64``."""
    label = method if rank is None else f"{method}-r{rank}"
    return f"{label}-eps{epsilon:g}" if method == "dp_lora" else label


def plan_runs(params: LoraVsDpParams) -> list[dict]:
    """Every fine-tuning run: model x method (x LoRA rank, x DP-LoRA epsilon) x seed."""
    runs = []
    for model in params.models:
        for seed in params.seeds:
            for method in params.methods:
                for rank, eps in _variants(params, method):
                    label = run_label(method, rank, eps)
                    runs.append(
                        {
                            "run": f"{model}/{label}/seed={seed}",
                            "model": model,
                            "method": method,
                            "label": label,
                            "rank": rank,
                            "seed": seed,
                            "epsilon": eps,
                        }
                    )
    return runs


def train_config(params: LoraVsDpParams, spec: dict):
    """Same epochs, batch size and length for every method; DP-SGD with Poisson sampling
    and the noise ``ACCOUNTANT`` calibrates for the run's epsilon (``TARGET_EPSILON`` for
    DP full, each of ``DP_LORA_EPSILONS`` for DP-LoRA)."""
    from ...training import Full, LoRA, PrivacyConfig, TrainConfig

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
            target_epsilon=float(spec["epsilon"]),
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
    from ...models import load_model

    with quiet_transformers():
        return load_model(name, "causal-lm", device=params.device)


def _canary_scores(params, model, tok, canary, seed: int) -> dict:
    """Exposure of one canary: exact over all 10**digits candidates when that is at most
    ``EXPOSURE_EXACT_LIMIT``, else estimated from ``EXPOSURE_SAMPLES`` random candidates."""
    from ...metrics.memorisation import candidate_logprobs, exposure, exposure_estimate

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


def score_model(params: LoraVsDpParams, model, tok, data: StudyData, subset=None) -> dict:
    """Per-token log-likelihoods of the member and test dialogues (only those of
    ``subset``, indices per split, when given) and canary exposures."""
    from ...metrics.memorisation import token_logprobs

    kw = {
        "max_length": params.max_length,
        "batch_size": params.eval_batch_size,
        "device": params.device,
    }
    out = {}
    for split, df in (("members", data.members), ("test", data.test)):
        texts = df.text if subset is None else df.text.iloc[subset[split]]
        out[split] = token_logprobs(model, tok, texts, **kw)
    out["canaries"] = [_canary_scores(params, model, tok, c, 0) for c in data.canaries]
    return out


def labels_for(params: LoraVsDpParams, tok, data: StudyData) -> dict:
    from ...data.customersim import sensitive_token_labels

    return {
        split: sensitive_token_labels(tok, df.text, df.spans, max_length=params.max_length)
        for split, df in (("members", data.members), ("test", data.test))
    }


def measure(params: LoraVsDpParams, scored: dict, base: dict, labels: dict, data) -> dict:
    """All memorisation, utility and membership measures of one model against the base."""
    from ...metrics.memorisation import (
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


def trajectory_subset(params: LoraVsDpParams, data: StudyData) -> dict[str, np.ndarray]:
    """The member and test dialogues measured at every checkpoint."""
    from .trajectory import subset_indices

    return {
        split: subset_indices(len(df), params.trajectory_texts, params.data_seed, split)
        for split, df in (("members", data.members), ("test", data.test))
    }


def planned_steps(params: LoraVsDpParams, data: StudyData) -> int:
    """Optimiser steps of a run (the last checkpoint of its trajectory)."""
    from ...training.batches import steps_per_epoch

    return params.epochs * steps_per_epoch(len(data.train), params.batch_size)


def train_and_measure(params, spec: dict, data: StudyData, base: dict, labels: dict) -> dict:
    """Fine-tune one model as ``spec`` says, measured on the trajectory's dialogues at
    its checkpoints, and at the end against the base model on every dialogue."""
    from ...repro import set_seed
    from ...training import train_causal_lm
    from . import trajectory as tr

    t0 = time.perf_counter()
    subset = trajectory_subset(params, data)
    texts = {"members": list(data.members.text), "test": list(data.test.text)}
    sub_base, sub_labels, sub_texts = (tr.restrict(x, subset) for x in (base, labels, texts))

    def point(step, scored_subset):
        return tr.point(step, scored_subset, sub_base, sub_labels, sub_texts, params.min_k)

    points = [point(0, sub_base)]
    steps = tr.checkpoint_steps(planned_steps(params, data), params.trajectory_points)
    set_seed(spec["seed"])
    model, tok = _load(params, spec["model"])

    def checkpoint(trained, step):
        points.append(point(step, score_model(params, trained, tok, data, subset)))

    result = train_causal_lm(
        model,
        tok,
        data.train,
        train_config(params, spec),
        checkpoints=steps[:-1],
        on_checkpoint=checkpoint,
    )
    h = result.history
    train_seconds = time.perf_counter() - t0
    scored = score_model(params, result.model, tok, data)
    points.append(point(h.steps, tr.restrict(scored, subset)))  # the end, from all texts
    return {
        **spec,
        **measure(params, scored, base, labels, data),
        "trajectory": points,
        "cost": {
            "wall_time_s": h.wall_time_s - h.checkpoint_seconds,
            "seconds_per_step": _step_seconds(h),
            "steps": h.steps,
            "peak_memory_mb": h.peak_memory_mb,
            "memory_kind": h.memory_kind,
            "trainable_parameters": h.trainable_parameters,
            "total_parameters": h.total_parameters,
            "final_train_loss": h.summary()["final_loss"],
            "grad_sample_mode": h.grad_sample_mode,
            "frozen_for_dp": list(h.frozen_for_dp),
            "checkpoint_seconds": h.checkpoint_seconds,
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


# what a model's measures depend on besides the data (hashed separately) and its training:
# they enter every run's key, so a run is reused by any parameter set that shares them
MEASURE_PARAMETERS = (
    "MAX_LENGTH", "EVAL_BATCH_SIZE", "EXPOSURE_EXACT_LIMIT", "EXPOSURE_SAMPLES", "DATA_SEED",
    "MIN_K", "MIA_FPR", "BOOTSTRAP", "TRAJECTORY_POINTS", "TRAJECTORY_TEXTS",
)  # fmt: skip


def plan(params: LoraVsDpParams) -> list[Run]:
    """The base model of each model, then every fine-tuning run; every key holds the
    measurement parameters (what the measures depend on), a run's also its training."""
    values = params.to_dict()
    measures = {name: values[name] for name in MEASURE_PARAMETERS}
    runs = []
    for model in params.models:
        spec = {
            "run": f"{model}/{BASE}",
            "model": model,
            "method": BASE,
            "label": BASE,
            "rank": None,
            "seed": None,
            "epsilon": None,
        }
        runs.append(Run(spec["run"], spec, model, {"measures": measures}))
    for spec in plan_runs(params):
        config = {"measures": measures, "train": train_config(params, spec).to_dict()}
        runs.append(Run(spec["run"], spec, spec["model"], config))
    return runs


def base_measures(params: LoraVsDpParams, spec: dict, data: StudyData, bases) -> dict:
    """The base model measured against itself (zero leakage by definition): the origin
    of every comparison, and its utility."""
    t0 = time.perf_counter()
    scored, labels = bases.get(spec["model"])
    return {
        **spec,
        **measure(params, scored, scored, labels, data),
        "cost": None,
        "privacy": None,
        "seconds": {"train": 0.0, "measure": time.perf_counter() - t0},
    }
