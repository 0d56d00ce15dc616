"""Study 1's runs: the plan (the privacy sweep under each recipe, the tuned recipe's
trials, then the distribution experiment), each run's training recipe, and one run (train,
then score the validation and test splits).

Two recipes per epsilon. *Shared*: the non-private recipe reused, as the paper did.
*Tuned*: a random search on the validation split (Papernot & Steinke): the number of trials
K is drawn from a geometric distribution of mean ``TUNING_TRIALS``, each trial a setting drawn
from ``TUNING_GRID``, all trained on ``TUNING_SEED`` at that epsilon; the trial with the best
validation AUC is the tuned model for that seed and its setting is trained on the other
seeds. The plan is adaptive: the final runs appear once the trials are done."""

from __future__ import annotations

import time

import pandas as pd

from ...metrics import auc
from ...models import quiet_transformers
from ...store import Run
from .baseline import STRENGTHS
from .data import distribution_train_set
from .params import DPBiasParams

NON_PRIVATE = "none"
SWEEP, DISTRIBUTION, TUNING = "privacy_sweep", "distribution", "tuning"
BASELINE = "baseline"
SHARED, TUNED_RECIPE = "shared", "tuned"


def _label(epsilon: float | None) -> str:
    return NON_PRIVATE if epsilon is None else f"{epsilon:g}"


# A tuned batch (256 or 512) runs as even chunks of at most this many comments of similar
# length: the same clipped sum and noise, about twice as fast at 512
# (benchmarks/length_chunks.py); the shared recipe's batch of 64 is never split.
LENGTH_CHUNKS = 128


def train_config(params: DPBiasParams, epsilon: float | None, seed: int, hyper: dict | None = None):
    """The paper's recipe: top layers + pooler + classifier, AdamW, plateau schedule,
    early stopping on validation F1; DP-SGD with Poisson sampling when ``epsilon``.
    ``hyper`` (a tuned setting) replaces the learning rate, batch size, epochs and clipping
    norm, and picks the best epoch by validation AUC, the search's own criterion."""
    from ...training import PrivacyConfig, TopLayers, TrainConfig

    hyper = hyper or {}
    privacy = None
    if epsilon is not None:
        privacy = PrivacyConfig(
            target_epsilon=float(epsilon),
            delta=params.delta,
            max_grad_norm=float(hyper.get("MAX_GRAD_NORM", params.max_grad_norm)),
            accountant=params.accountant,
            bound_accountant=params.bound_accountant,
        )
    return TrainConfig(
        trainable=TopLayers(params.top_layers, cache_frozen=params.cache_frozen),
        learning_rate=float(hyper.get("LEARNING_RATE", params.learning_rate)),
        scheduler=params.scheduler,
        epochs=int(hyper.get("EPOCHS", params.epochs)),
        batch_size=int(hyper.get("BATCH_SIZE", params.batch_size)),
        physical_batch_size=params.physical_batch_size,
        length_chunks=LENGTH_CHUNKS,
        max_length=params.max_length,
        seed=seed,
        device=params.device,
        validation_metric="auc" if hyper else params.validation_metric,
        early_stopping_patience=params.early_stopping_patience,
        privacy=privacy,
        progress=False,
    )


def trial_settings(params: DPBiasParams, epsilon: float) -> list[dict]:
    """The tuned recipe's trials at ``epsilon``: K ~ Geometric(mean ``TUNING_TRIALS``)
    settings drawn uniformly from ``TUNING_GRID``, reproducibly from ``TUNING_SEED``."""
    import numpy as np

    from .params import TUNED

    rng = np.random.default_rng([params.tuning_seed, round(epsilon * 1000)])
    trials = int(rng.geometric(1 / params.tuning_trials))
    names = sorted(params.tuning_grid)
    out = []
    for _ in range(trials):
        out.append(
            {n: TUNED[n](params.tuning_grid[n][rng.integers(len(params.tuning_grid[n]))])
             for n in names}
        )  # fmt: skip
    return out


def _spec(experiment, recipe, run, epsilon, seed, share=None, rate=None, hyper=None) -> dict:
    return {
        "experiment": experiment,
        "recipe": recipe,
        "run": run,
        "epsilon": epsilon,
        "seed": seed,
        "share": share,
        "positive_rate": rate,
        "hyper": hyper,
    }


def plan_runs(params: DPBiasParams, done: dict[str, dict] | None = None) -> list[dict]:
    """Every training run of the study, in order: the privacy sweep (the non-private
    reference, then each epsilon under the shared recipe), the tuned recipe's trials and,
    once ``done`` holds them all, its final runs; then the distribution experiment
    (non-private and DP at ``DIST_EPSILON``, shared recipe: a tuned pair would need its own
    search on each of its smaller training sets, where the sweep's chosen setting samples
    at a several times larger rate; the notebook says so)."""
    done = done or {}
    runs = [_spec(BASELINE, "", "baseline/frozen-features-logistic-regression", None, 0)]
    for seed in params.seeds:
        for eps in [None] * params.include_non_private:
            runs.append(_spec(SWEEP, SHARED, f"sweep/eps={_label(eps)}/seed={seed}", eps, seed))
        if SHARED in params.recipes:
            for eps in params.epsilons:
                name = f"sweep/eps={_label(eps)}/seed={seed}"
                runs.append(_spec(SWEEP, SHARED, name, eps, seed))
    if TUNED_RECIPE in params.recipes:
        for eps in params.epsilons:
            trials = [
                _spec(TUNING, TUNED_RECIPE, f"tuning/eps={_label(eps)}/trial={k}", eps,
                      params.tuning_seed, hyper=hyper)
                for k, hyper in enumerate(trial_settings(params, eps), 1)
            ]  # fmt: skip
            runs += trials
            if not all(t["run"] in done for t in trials):
                continue  # the final runs follow from the trials' validation scores
            best = chosen_trial([done[t["run"]] for t in trials])
            for seed in params.seeds:
                if seed != params.tuning_seed:  # the chosen trial is that seed's model
                    name = f"tuned/eps={_label(eps)}/seed={seed}"
                    runs.append(_spec(SWEEP, TUNED_RECIPE, name, eps, seed, hyper=best["hyper"]))
    if params.dist_group is not None:
        for share in params.dist_shares:
            for rate in params.dist_positive_rates:
                for seed in params.dist_seeds:
                    for eps in (None, params.dist_epsilon):
                        name = (
                            f"dist/{params.dist_group}/share={share:g}/pos={rate:g}/"
                            f"eps={_label(eps)}/seed={seed}"
                        )
                        runs.append(_spec(DISTRIBUTION, SHARED, name, eps, seed, share, rate))
    return runs


def chosen_trial(trials: list[dict]) -> dict:
    """The trial with the best validation AUC (the first of equals)."""
    return max(trials, key=lambda t: (t["val_auc"], -trials.index(t)))


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
    config = train_config(params, spec["epsilon"], spec["seed"], spec.get("hyper"))
    result = train_classifier(model, tok, train, config, validation=validation)

    def score(part: pd.DataFrame) -> list[float]:
        probs = predict_proba(
            result.model,
            tok,
            part.text.tolist(),
            max_length=params.max_length,
            frozen_top_layers=params.top_layers if params.cache_frozen else None,
        )[:, 1]
        return [round(float(s), 7) for s in probs]

    scores, val_scores = score(test), score(validation)
    return {
        **spec,
        "train_size": len(train),
        "scores": scores,
        "val_scores": val_scores,
        "val_auc": auc(validation.label.to_numpy(), val_scores),
        "history": result.history.summary(),
        "epochs": result.history.epochs,
        "privacy": result.privacy.to_dict() if result.privacy else None,
        "seconds": time.perf_counter() - t0,
    }


def plan(params: DPBiasParams, done: dict[str, dict] | None = None) -> list[Run]:
    """:func:`plan_runs` as runs of the store: each keyed by its spec, its training
    configuration and, for the distribution runs, how their training set is drawn."""
    runs = []
    for spec in plan_runs(params, done):
        if spec["experiment"] == BASELINE:
            what = {"C": list(STRENGTHS), "top": params.top_layers, "length": params.max_length}
            runs.append(Run(spec["run"], spec, params.model, what))
            continue
        cfg = train_config(params, spec["epsilon"], spec["seed"], spec["hyper"])
        config = {"train": cfg.to_dict()}
        if spec["experiment"] == DISTRIBUTION:
            config["dist"] = [params.dist_group, params.dist_train_size]
        runs.append(Run(spec["run"], spec, params.model, config))
    return runs
