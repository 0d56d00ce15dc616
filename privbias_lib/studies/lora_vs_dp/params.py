"""Study 3's parameters (their defaults are the notebook's ``parameters`` cell)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ...accounting import METHODS as ACCOUNTANTS
from ...accounting import is_upper_bound
from ...data.customersim import CANARY_FORMATS, MAX_CANARIES
from ...params import Device, Listing, PositiveNumber, Seed, Seeds, StudyParams, bad

METHODS = ("full", "lora", "dp_full", "dp_lora")
METHOD_LABELS = {"full": "full FT", "lora": "LoRA", "dp_full": "DP full", "dp_lora": "DP-LoRA"}
BASE = "base"
SPLIT_LABELS = {"train": "training", "test": "test"}
BOUND_ACCOUNTANTS = tuple(a for a in ACCOUNTANTS if is_upper_bound(a))

Positive = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(gt=0, le=1)]
Method = Literal[METHODS]


class LoraVsDpParams(StudyParams):
    """Study 3: full fine-tuning, LoRA, DP-SGD and DP-LoRA on the same dialogues."""

    models: Listing[Annotated[str, Field(min_length=1)]] = Field(
        description="causal LMs: built-in names (offline), Hugging Face ids or folders"
    )
    n_train: Annotated[int, Field(ge=2)] = Field(description="training dialogues")
    n_test: Annotated[int, Field(ge=2)] = Field(description="test dialogues (fresh personal data)")
    data_seed: Seed = Field(description="seed of the generated dialogues and canaries")
    locale: Annotated[str, Field(min_length=1)] = Field(description="Faker locale, e.g. en_US")
    canary_repeats: Annotated[list[Positive], Field(max_length=MAX_CANARIES)] = Field(
        description="one canary per entry, inserted that many times"
    )
    canary_digits: Positive = Field(description="digits of each canary's secret")
    canary_format: Literal[CANARY_FORMATS] = Field(
        description="'line': the canary sentence alone; 'dialogue': a dialogue ending with it"
    )
    exposure_exact_limit: Annotated[int, Field(ge=10)] = Field(
        description="exposure is exact up to this candidate-space size, else estimated"
    )
    exposure_samples: Annotated[int, Field(ge=10)] = Field(
        description="sampled candidates of the exposure estimate"
    )
    methods: Listing[Method] = Field(description="methods compared")
    lora_ranks: Listing[Positive] = Field(description="LoRA ranks (method lora)")
    dp_lora_rank: Positive = Field(description="rank of DP-LoRA")
    lora_alpha: PositiveNumber = Field(description="LoRA scaling alpha")
    lora_targets: Listing[Annotated[str, Field(min_length=1)]] | None = Field(
        description="modules LoRA adapts (None: peft's default for the architecture)"
    )
    learning_rates: dict[Method, PositiveNumber] = Field(
        description="AdamW learning rate per method (constant)"
    )
    epochs: Positive = Field(description="epochs, the same for every method")
    batch_size: Positive = Field(description="expected batch size, the same for every method")
    physical_batch_size: Positive | None = Field(
        description="examples per forward pass (None: the whole batch)"
    )
    max_length: Annotated[int, Field(ge=8)] = Field(description="tokens per dialogue")
    target_epsilon: PositiveNumber = Field(description="epsilon of DP full")
    dp_lora_epsilons: Listing[PositiveNumber] = Field(
        description="DP-LoRA is trained at each of these epsilons (utility against epsilon)"
    )
    delta: Annotated[float, Field(gt=0, lt=1)] | None = Field(description="DP delta (None: 1/N)")
    max_grad_norm: PositiveNumber = Field(description="per-example clipping norm C")
    accountant: Literal[tuple(ACCOUNTANTS)] = Field(description="calibrates the noise")
    bound_accountant: Literal[BOUND_ACCOUNTANTS] = Field(
        description="a rigorous upper bound reported beside it"
    )
    seeds: Seeds = Field(description="training seeds")
    eval_batch_size: Positive = Field(description="texts per scoring batch")
    min_k: Fraction = Field(description="share of tokens of the Min-K% attack")
    mia_fpr: Fraction = Field(description="false-positive rate of the TPR@FPR measure")
    bootstrap: Annotated[int, Field(ge=0)] = Field(
        description="bootstrap replicates of the leakage intervals (0: none)"
    )
    trajectory_points: Positive = Field(
        description="checkpoints measured along training, doubling up to the last step"
    )
    trajectory_texts: Annotated[int, Field(ge=2)] | None = Field(
        description="member and test dialogues (each) measured at checkpoints (None: all)"
    )
    utility_shares: Listing[Fraction] = Field(
        description="matched-utility levels, as shares of full fine-tuning's utility gain"
    )
    device: Device = Field(description="None: CUDA when available, else CPU")

    @model_validator(mode="after")
    def _consistent(self) -> LoraVsDpParams:
        missing = [m for m in self.methods if m not in self.learning_rates]
        if missing:
            raise bad("LEARNING_RATES", self.learning_rates, f"a rate for each of {missing}")
        if self.batch_size > self.n_train:
            raise bad("BATCH_SIZE", self.batch_size, f"at most N_TRAIN = {self.n_train}")
        return self
