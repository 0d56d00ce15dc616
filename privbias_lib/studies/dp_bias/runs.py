"""Study 1's runs: the plan (privacy sweep, then the distribution experiment), each run's
training recipe, and one run (train, then score the test split)."""

from __future__ import annotations

import time

import pandas as pd

from ...models import quiet_transformers
from ...store import Run
from .data import distribution_train_set
from .params import DPBiasParams

NON_PRIVATE = "none"
SWEEP, DISTRIBUTION = "privacy_sweep", "distribution"


def _label(epsilon: float | None) -> str:
    return NON_PRIVATE if epsilon is None else f"{epsilon:g}"


def train_config(params: DPBiasParams, epsilon: float | None, seed: int):
    """The paper's recipe: top layers + pooler + classifier, AdamW, plateau schedule,
    early stopping on validation F1; DP-SGD with Poisson sampling when ``epsilon``."""
    from ...training import PrivacyConfig, TopLayers, TrainConfig

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
        for eps in [None] * params.include_non_private + list(params.epsilons):
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


def train_and_score(params: DPBiasParams, spec: dict, data: pd.DataFrame) -> dict:
    """Train one model as ``spec`` says and score the test split; a JSON-able record."""
    from ...models import load_model
    from ...repro import set_seed
    from ...training import predict_proba, train_classifier

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


def plan(params: DPBiasParams) -> list[Run]:
    """:func:`plan_runs` as runs of the store: each keyed by its spec, its training
    configuration and, for the distribution runs, how their training set is drawn."""
    runs = []
    for spec in plan_runs(params):
        config = {"train": train_config(params, spec["epsilon"], spec["seed"]).to_dict()}
        if spec["experiment"] == DISTRIBUTION:
            config["dist"] = [params.dist_group, params.dist_train_size]
        runs.append(Run(spec["run"], spec, params.model, config))
    return runs
