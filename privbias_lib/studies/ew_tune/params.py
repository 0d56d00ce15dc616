"""Study 2's parameters (their defaults are the notebook's ``parameters`` cell)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ...accounting import METHODS
from ...params import Device, Listing, PositiveNumber, Seed, Seeds, StudyParams, bad

# EW-Tune's training sets: q = B / N, T = EPOCHS * floor(N / B)
TASK_SIZES = {"mnli": 392_702, "qnli": 104_743, "qqp": 363_849, "sst2": 67_349}
CALIBRATED = ("edgeworth", "prv", "rdp")  # the three accountants EW-Tune compared
AUDITOR = "pld"  # the near-exact rigorous reference
NON_PRIVATE = "none"
DATASETS = ("redditbias", "glue")
TRAINABLES = ("top_layers", "lora")

Task = Literal[tuple(TASK_SIZES)]
Method = Literal[tuple(METHODS)]
Epsilon = Annotated[float, Field(gt=0, le=100)]
Delta = Annotated[float, Field(gt=0, le=0.1)]
Positive = Annotated[int, Field(ge=1)]


class EWTuneParams(StudyParams):
    """Study 2: the accountants (Part A) and fine-tuning with each one's noise (Part B)."""

    tasks: Listing[Task] = Field(description="EW-Tune tasks whose (q, T) the calibration uses")
    deltas: Listing[Delta] = Field(
        description="deltas of the calibration (the first one for the curves)"
    )
    target_epsilon: Epsilon = Field(description="the epsilon every accountant calibrates for")
    curve_methods: Listing[Method] = Field(description="accountants on the epsilon curves")
    curve_tasks: Listing[Task] = Field(
        description="tasks whose q (and Edgeworth sigma or T) the curves use"
    )
    curve_steps: Listing[Positive] = Field(description="steps T of the epsilon-against-steps curve")
    curve_sigmas: Listing[Annotated[float, Field(ge=0.3, le=100)]] = Field(
        description="noise multipliers of the epsilon-against-sigma curve"
    )
    audit_sample_rates: Listing[Annotated[float, Field(gt=0, le=1)]] = Field(
        description="sampling rates q of the fine-tuning audit grid"
    )
    audit_steps: Listing[Positive] = Field(description="steps T of the fine-tuning audit grid")
    audit_epsilons: Listing[Epsilon] = Field(
        description="target epsilons of the fine-tuning audit grid"
    )
    run_training: bool = Field(description="run Part B (fine-tuning)")
    dataset: Literal[DATASETS] = Field(description="redditbias (offline) | glue (hub: GLUE_TASK)")
    glue_task: Task = Field(description="the GLUE task when DATASET is glue")
    data_source: Annotated[str, Field(min_length=1)] | None = Field(
        description="None: the hub's nyu-mll/glue; or a local folder in its format"
    )
    max_train_examples: Annotated[int, Field(ge=100)] | None = Field(
        description="cap on the training split (None: all)"
    )
    max_eval_examples: Annotated[int, Field(ge=100)] | None = Field(
        description="cap on the validation split (None: all)"
    )
    split_seed: Seed = Field(description="seed of the split and the caps")
    model: Annotated[str, Field(min_length=1)] = Field(
        description="encoder: a built-in name, a Hugging Face id or a local folder"
    )
    trainable: Literal[TRAINABLES] = Field(description="top_layers (cached frozen bottom) | lora")
    top_layers: Positive = Field(description="top encoder layers that train")
    lora_rank: Positive = Field(description="LoRA rank when TRAINABLE is lora")
    lora_alpha: PositiveNumber = Field(description="LoRA scaling alpha")
    lora_targets: Listing[Annotated[str, Field(min_length=1)]] = Field(
        description="modules LoRA adapts"
    )
    max_length: Annotated[int, Field(ge=8)] = Field(description="tokens per example")
    epochs: Positive = Field(description="epochs: T = EPOCHS * floor(N / BATCH_SIZE)")
    batch_size: Annotated[int, Field(ge=2)] = Field(description="expected batch size B = qN")
    physical_batch_size: Positive | None = Field(
        description="examples per forward pass (None: the whole batch)"
    )
    learning_rate: PositiveNumber = Field(description="AdamW learning rate of the DP runs")
    non_private_learning_rate: PositiveNumber | None = Field(
        description="learning rate of the non-private run (None: LEARNING_RATE)"
    )
    max_grad_norm: PositiveNumber = Field(description="per-example clipping norm C")
    train_epsilon: Epsilon = Field(description="epsilon of the fine-tuned DP models")
    train_delta: Delta | None = Field(description="delta of the fine-tuning (None: 1/N)")
    train_accountants: Listing[Method] = Field(
        description="accountants whose noise the DP models get"
    )
    include_non_private: bool = Field(description="train the non-private reference too")
    seeds: Seeds = Field(description="training seeds")
    device: Device = Field(description="None: CUDA when available, else CPU")

    @model_validator(mode="after")
    def _consistent(self) -> EWTuneParams:
        if self.dataset == "redditbias" and self.data_source is not None:
            raise bad("DATA_SOURCE", self.data_source, "None for the offline RedditBias")
        cap = self.max_train_examples
        if cap is not None and self.batch_size > cap:
            raise bad("BATCH_SIZE", self.batch_size, f"at most MAX_TRAIN_EXAMPLES = {cap}")
        return self

    @property
    def num_labels(self) -> int:
        from ...data.hub import GLUE_LABELS

        return GLUE_LABELS[self.glue_task] if self.dataset == "glue" else 2
