"""Study 2, Part B's runs: the non-private reference and one model per accountant and
seed, each with EW-Tune's step count and the noise its accountant calibrates."""

from __future__ import annotations

import time

import pandas as pd

from ...models import quiet_transformers
from ...params import ParameterError
from ...store import Run
from .data import _has_pairs
from .params import AUDITOR, NON_PRIVATE, EWTuneParams


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
    from ...training import LoRA, PrivacyConfig, TopLayers, TrainConfig

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
    from ...models import load_model
    from ...repro import set_seed
    from ...training import train_classifier

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


def plan(params: EWTuneParams, n_train: int) -> list[Run]:
    """:func:`plan_runs` as runs of the store, keyed by spec, training configuration and
    the number of labels."""
    return [
        Run(
            spec["run"],
            spec,
            params.model,
            {
                "train": train_config(params, spec["accountant"], spec["seed"], n_train).to_dict(),
                "labels": params.num_labels,
            },
        )
        for spec in plan_runs(params)
    ]
