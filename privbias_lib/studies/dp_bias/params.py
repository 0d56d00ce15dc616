"""Study 1's parameters (their defaults are the notebook's ``parameters`` cell)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ...params import Device, Distinct, Listing, PositiveNumber, Seed, Seeds, StudyParams, bad

DATASETS = ("redditbias", "jigsaw", "measuring-hate-speech")
SCHEDULERS = ("constant", "linear", "plateau")
VALIDATION_METRICS = ("f1", "auc", "accuracy", "loss")
ACCOUNTANTS = ("pld", "prv", "rdp", "edgeworth", "gdp", "prv-estimate")
BOUND_ACCOUNTANTS = ("pld", "prv", "rdp")
RECIPES = ("shared", "tuned")
# what the tuned recipe searches over, and the type of each value
TUNED = {"LEARNING_RATE": float, "BATCH_SIZE": int, "EPOCHS": int, "MAX_GRAD_NORM": float}

Cap = Annotated[int, Field(ge=100)] | None
Share = Annotated[float, Field(gt=0, le=0.95)]


class DPBiasParams(StudyParams):
    """Study 1: fine-tune non-privately and at every epsilon, measure bias per group."""

    dataset: Literal[DATASETS] = Field(
        description="redditbias (offline) | jigsaw | measuring-hate-speech (hub)"
    )
    data_source: Annotated[str, Field(min_length=1)] | None = Field(
        description="a hub id or local file for the hub datasets (None: the default hub id)"
    )
    groups: Annotated[list[str], Field(min_length=1), Distinct] | None = Field(
        description="identity groups measured (None: every group of the dataset)"
    )
    max_train_examples: Cap = Field(description="cap on the training split (None: all)")
    max_test_examples: Cap = Field(description="cap on the validation and test split each")
    split_seed: Seed = Field(description="seed of the stratified 70/15/15 split")
    model: Annotated[str, Field(min_length=1)] = Field(
        description="encoder: a built-in name, a Hugging Face id or a local folder"
    )
    top_layers: Annotated[int, Field(ge=1)] = Field(
        description="top encoder layers that train (with the pooler and the classifier)"
    )
    cache_frozen: bool = Field(description="run the frozen bottom once per example")
    max_length: Annotated[int, Field(ge=8)] = Field(description="tokens per comment")
    epsilons: Annotated[list[PositiveNumber], Field(min_length=1), Distinct] = Field(
        description="privacy levels of the DP models"
    )
    include_non_private: bool = Field(description="train the non-private reference too")
    seeds: Seeds = Field(description="training seeds of the privacy sweep")
    delta: Annotated[float, Field(gt=0, le=0.1)] | None = Field(description="DP delta (None: 1/N)")
    max_grad_norm: PositiveNumber = Field(description="per-example clipping norm C")
    accountant: Literal[ACCOUNTANTS] = Field(description="calibrates the noise")
    bound_accountant: Literal[BOUND_ACCOUNTANTS] = Field(
        description="an independent rigorous upper bound reported beside it"
    )
    epochs: Annotated[int, Field(ge=1)] = Field(description="training epochs")
    batch_size: Annotated[int, Field(ge=2)] = Field(description="expected batch size B = qN")
    physical_batch_size: Annotated[int, Field(ge=1)] | None = Field(
        description="examples per forward pass (None: the whole batch)"
    )
    learning_rate: PositiveNumber = Field(description="AdamW learning rate")
    scheduler: Literal[SCHEDULERS] = Field(description="learning-rate schedule")
    validation_metric: Literal[VALIDATION_METRICS] = Field(
        description="picks the best epoch on the validation split"
    )
    early_stopping_patience: Annotated[int, Field(ge=1)] | None = Field(
        description="epochs without improvement before stopping (None: never stop early)"
    )
    threshold: Annotated[float, Field(ge=0, le=1)] = Field(
        description="score threshold of the threshold metrics"
    )
    bootstrap: Annotated[int, Field(ge=0)] = Field(
        description="bootstrap replicates of the AUC intervals (0: none)"
    )
    recipes: Listing[Literal[RECIPES]] = Field(
        description="shared: every epsilon reuses the non-private recipe (as the paper); "
        "tuned: per epsilon, a random search on the validation split"
    )
    tuning_grid: dict[Literal[tuple(TUNED)], Listing[PositiveNumber]] = Field(
        description="the tuned recipe's search space: values of LEARNING_RATE, BATCH_SIZE, "
        "EPOCHS and MAX_GRAD_NORM (one missing keeps the shared value)"
    )
    tuning_trials: Annotated[float, Field(ge=1)] = Field(
        description="mean number of trials per epsilon; the number is drawn from a "
        "geometric distribution (Papernot & Steinke's random search)"
    )
    tuning_seed: Seed = Field(description="seed of the trials and of their draw")
    dist_group: str | None = Field(
        description="group of the distribution experiment (None: skip it)"
    )
    dist_shares: Annotated[list[Share], Distinct] = Field(
        description="the group's shares of the training set"
    )
    dist_positive_rates: Annotated[list[Share], Distinct] = Field(
        description="the group's positive rates"
    )
    dist_train_size: Annotated[int, Field(ge=1)] = Field(
        description="training examples per distribution setting"
    )
    dist_epsilon: PositiveNumber = Field(description="epsilon of the distribution runs")
    dist_seeds: Seeds = Field(description="seeds of the distribution runs")
    device: Device = Field(description="None: CUDA when available, else CPU")

    @model_validator(mode="after")
    def _consistent(self) -> DPBiasParams:
        if self.dataset == "redditbias" and self.data_source is not None:
            raise bad("DATA_SOURCE", self.data_source, "None for the offline RedditBias")
        known = self.known_groups()
        if self.groups is not None and not set(self.groups) <= set(known):
            raise bad("GROUPS", self.groups, f"a subset of {known}")
        if self.bootstrap == 1:
            raise bad("BOOTSTRAP", 1, "0 (no intervals) or at least 2 replicates")
        for name, values in self.tuning_grid.items():
            if TUNED[name] is int and any(float(v) != int(v) for v in values):
                raise bad("TUNING_GRID", self.tuning_grid, f"whole numbers for {name}")
            if name == "BATCH_SIZE" and min(values) < 2:
                raise bad("TUNING_GRID", self.tuning_grid, "BATCH_SIZE values of at least 2")
        if self.dist_group is not None:
            if self.dist_group not in self.subgroups:
                raise bad("DIST_GROUP", self.dist_group, f"one of {self.subgroups}")
            if self.dataset == "redditbias" and self.subgroups == [self.dist_group]:
                raise bad(
                    "DIST_GROUP", self.dist_group,
                    "None when GROUPS holds only that group (RedditBias has comments of the "
                    "chosen groups only: the experiment needs comments outside it)",
                )  # fmt: skip
            for name in ("dist_shares", "dist_positive_rates"):
                if not getattr(self, name):
                    raise bad(name.upper(), getattr(self, name), "at least one entry")
            if self.dist_train_size < 2 * self.batch_size:
                raise bad("DIST_TRAIN_SIZE", self.dist_train_size, ">= 2 * BATCH_SIZE")
        return self

    def known_groups(self) -> list[str]:
        from ...data.hub import JIGSAW_GROUPS, MHS_GROUPS
        from ...data.redditbias import GROUPS

        by_dataset = {"redditbias": GROUPS, "jigsaw": JIGSAW_GROUPS}
        return list(by_dataset.get(self.dataset, MHS_GROUPS))

    @property
    def subgroups(self) -> list[str]:
        return list(self.groups or self.known_groups())
