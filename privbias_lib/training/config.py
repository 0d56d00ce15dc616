"""Validated configuration for fine-tuning: what trains, how, and (optionally) privately.

Every dataclass checks itself in ``__post_init__``; a bad value raises ``ValueError``
naming the parameter, the value and what is allowed, before any model is touched.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..accounting import METHODS, is_upper_bound

OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("constant", "linear", "plateau")
GRAD_SAMPLE_MODES = ("auto", "hooks", "functorch", "ghost")
METRICS_MAX = ("accuracy", "f1", "auc")
METRICS_MIN = ("loss",)


def _bad(name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{name}={value!r} is invalid: allowed {allowed}")


def _int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _bad(name, value, f"an int >= {minimum}")


def _positive(name: str, value: Any, *, zero: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):
        raise _bad(name, value, "a finite number >= 0" if zero else "a finite number > 0")


@dataclass(frozen=True)
class Full:
    """Train every weight."""

    def describe(self) -> str:
        return "full"


@dataclass(frozen=True)
class TopLayers:
    """Train only the top ``k`` encoder layers, the pooler and the classification head
    (study 1's recipe, from the Opacus BERT tutorial); the frozen bottom runs in eval mode
    and, with ``cache_frozen=True``, its outputs are computed once per example."""

    k: int = 1
    cache_frozen: bool = True

    def __post_init__(self):
        _int("TopLayers.k", self.k, 0)

    def describe(self) -> str:
        return f"top-{self.k}"


@dataclass(frozen=True)
class LoRA:
    """Low-rank adapters (peft) on ``target_modules`` (None: peft's default for the
    architecture); everything else is frozen except a classification head."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None

    def __post_init__(self):
        _int("LoRA.rank", self.rank, 1)
        _positive("LoRA.alpha", self.alpha)
        if not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise _bad("LoRA.dropout", self.dropout, "a number in [0, 1)")
        if self.target_modules is not None:
            if isinstance(self.target_modules, str) or not all(
                isinstance(m, str) and m for m in self.target_modules
            ):
                raise _bad("LoRA.target_modules", self.target_modules, "a list of module names")
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
            if not self.target_modules:
                raise _bad("LoRA.target_modules", self.target_modules, "a non-empty list")

    def describe(self) -> str:
        return f"lora-r{self.rank}"


Trainable = Full | TopLayers | LoRA


@dataclass(frozen=True)
class PrivacyConfig:
    """DP-SGD settings. Give ``target_epsilon`` (the noise is calibrated with
    ``accountant``) *or* ``noise_multiplier``. ``delta`` None means 1/N. Every private run
    also reports epsilon from the rigorous ``bound_accountant``. ``grad_sample_mode``
    "auto" picks the fastest exact mode measured on CPU: ghost clipping for full and
    top-layer training, hooks for LoRA or tied trainable weights."""

    target_epsilon: float | None = None
    noise_multiplier: float | None = None
    delta: float | None = None
    max_grad_norm: float = 1.0
    accountant: str = "pld"
    bound_accountant: str = "pld"
    poisson_sampling: bool = True
    grad_sample_mode: str = "auto"

    def __post_init__(self):
        if (self.target_epsilon is None) == (self.noise_multiplier is None):
            raise ValueError(
                "give exactly one of PrivacyConfig.target_epsilon and "
                f"PrivacyConfig.noise_multiplier (got target_epsilon={self.target_epsilon!r},"
                f" noise_multiplier={self.noise_multiplier!r})"
            )
        if self.target_epsilon is not None:
            _positive("PrivacyConfig.target_epsilon", self.target_epsilon)
        if self.noise_multiplier is not None:
            _positive("PrivacyConfig.noise_multiplier", self.noise_multiplier, zero=True)
        if self.delta is not None and not (
            isinstance(self.delta, float | int) and 0 < self.delta < 1
        ):
            raise _bad("PrivacyConfig.delta", self.delta, "a number in (0, 1) or None (1/N)")
        _positive("PrivacyConfig.max_grad_norm", self.max_grad_norm)
        if self.accountant not in METHODS:
            raise _bad("PrivacyConfig.accountant", self.accountant, f"one of {list(METHODS)}")
        if self.bound_accountant not in METHODS or not is_upper_bound(self.bound_accountant):
            bounds = [m for m in METHODS if is_upper_bound(m)]
            raise _bad("PrivacyConfig.bound_accountant", self.bound_accountant, f"one of {bounds}")
        if not isinstance(self.poisson_sampling, bool):
            raise _bad("PrivacyConfig.poisson_sampling", self.poisson_sampling, "True or False")
        if self.grad_sample_mode not in GRAD_SAMPLE_MODES:
            raise _bad(
                "PrivacyConfig.grad_sample_mode", self.grad_sample_mode, str(GRAD_SAMPLE_MODES)
            )


@dataclass(frozen=True)
class TrainConfig:
    """How to train: what, with which optimiser and schedule, for how long, in which
    batches; ``privacy`` None trains non-privately.

    ``batch_size`` is the logical batch (the expected one under Poisson sampling);
    ``physical_batch_size`` bounds memory (gradients are accumulated over chunks of at
    most that many examples; None runs each logical batch at once). ``length_chunks``
    splits a larger logical batch into chunks of that many examples of similar length
    (shortest first): less padding, the same summed (clipped) gradient and noise. Training runs
    ``epochs`` passes, or exactly ``max_steps`` optimiser steps when that is given.
    ``early_stopping_patience`` stops after that many epochs without improvement of
    ``validation_metric`` (None: "auc" for classifiers, "loss" for language models; needs
    validation data) and restores the best epoch's weights.
    """

    trainable: Trainable = field(default_factory=Full)
    learning_rate: float = 5e-4
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    scheduler: str = "constant"
    warmup_steps: int = 0
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 32
    physical_batch_size: int | None = None
    length_chunks: int | None = None
    max_length: int = 128
    seed: int = 0
    device: str | None = None
    validation_metric: str | None = None
    early_stopping_patience: int | None = None
    privacy: PrivacyConfig | None = None
    progress: bool = True

    def __post_init__(self):
        if not isinstance(self.trainable, Full | TopLayers | LoRA):
            raise _bad("TrainConfig.trainable", self.trainable, "Full(), TopLayers(k) or LoRA()")
        _positive("TrainConfig.learning_rate", self.learning_rate)
        _positive("TrainConfig.weight_decay", self.weight_decay, zero=True)
        if self.optimizer not in OPTIMIZERS:
            raise _bad("TrainConfig.optimizer", self.optimizer, str(OPTIMIZERS))
        if self.scheduler not in SCHEDULERS:
            raise _bad("TrainConfig.scheduler", self.scheduler, str(SCHEDULERS))
        _int("TrainConfig.warmup_steps", self.warmup_steps, 0)
        if self.scheduler == "plateau" and self.warmup_steps:
            raise _bad("TrainConfig.warmup_steps", self.warmup_steps, "0 with scheduler='plateau'")
        _int("TrainConfig.epochs", self.epochs, 1)
        if self.max_steps is not None:
            _int("TrainConfig.max_steps", self.max_steps, 1)
        _int("TrainConfig.batch_size", self.batch_size, 1)
        if self.physical_batch_size is not None:
            _int("TrainConfig.physical_batch_size", self.physical_batch_size, 1)
        if self.length_chunks is not None:
            _int("TrainConfig.length_chunks", self.length_chunks, 1)
        _int("TrainConfig.max_length", self.max_length, 2)
        _int("TrainConfig.seed", self.seed, 0)
        if self.device is not None:
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError) as e:
                raise _bad(
                    "TrainConfig.device", self.device, "None, 'cpu', 'cuda', 'cuda:0', ..."
                ) from e
        if self.validation_metric is not None and self.validation_metric not in (
            METRICS_MAX + METRICS_MIN
        ):
            raise _bad(
                "TrainConfig.validation_metric",
                self.validation_metric,
                str(METRICS_MAX + METRICS_MIN),
            )
        if self.early_stopping_patience is not None:
            _int("TrainConfig.early_stopping_patience", self.early_stopping_patience, 1)
        if self.privacy is not None and not isinstance(self.privacy, PrivacyConfig):
            raise _bad("TrainConfig.privacy", self.privacy, "a PrivacyConfig or None")

    @property
    def physical(self) -> int | float:
        """Largest chunk run at once (a Poisson batch may exceed ``batch_size``)."""
        return min(self.physical_batch_size or math.inf, self.length_chunks or math.inf)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for manifests (the trainable part tagged with its kind)."""
        out = asdict(self)
        if self.length_chunks is None:  # added later: the default keeps earlier runs' keys
            del out["length_chunks"]
        out["trainable"] = {"kind": type(self.trainable).__name__, **asdict(self.trainable)}
        return out

    def describe(self) -> str:
        dp = "non-private" if self.privacy is None else "DP"
        return f"{self.trainable.describe()} {dp}"
