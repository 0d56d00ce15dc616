"""Fine-tune and score sequence classifiers (non-private, DP-SGD, top layers, LoRA)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .batches import Encoded, encode_classification
from .config import TopLayers, TrainConfig
from .engine import TrainResult, fit
from .frozen import TopStack, bottom_states, frozen_modules, stack_batch, supports_cache
from .trainable import freeze_unsupported_for_dp, prepare


def _device(model: nn.Module, config: TrainConfig) -> torch.device:
    if config.device is not None:
        return torch.device(config.device)
    return next(model.parameters()).device


def check_classification_data(
    df: pd.DataFrame,
    name: str,
    *,
    text_column: str,
    label_column: str,
    pair_column: str | None,
    num_labels: int,
    min_classes: int = 2,
) -> None:
    """Fail early, naming the problem: not a table, missing columns, empty, missing
    text, labels outside 0..num_labels-1, or fewer than ``min_classes`` classes."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    needed = [text_column, label_column] + ([pair_column] if pair_column else [])
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {list(df.columns)}")
    if len(df) == 0:
        raise ValueError(f"{name} is empty")
    for c in [text_column] + ([pair_column] if pair_column else []):
        if df[c].isna().any() or not all(isinstance(t, str) for t in df[c]):
            raise ValueError(f"{name}[{c!r}] must hold strings, with no missing values")
    labels = df[label_column]
    if labels.isna().any():
        raise ValueError(f"{name}[{label_column!r}] has missing labels")
    values = set(pd.unique(labels))
    bad = [v for v in values if not float(v).is_integer() or not 0 <= v < num_labels]
    if bad:
        raise ValueError(
            f"{name}[{label_column!r}] has labels {sorted(bad)[:5]} outside 0..{num_labels - 1} "
            f"(the model has num_labels={num_labels})"
        )
    if len(values) < min_classes:
        raise ValueError(
            f"{name}[{label_column!r}] has only class(es) {sorted(values)}: at least "
            f"{min_classes} classes are needed"
        )


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Loss, accuracy, F1 (binary: positive class; else macro) and AUC (binary: positive
    class score; else one-vs-rest macro). AUC is NaN when only one class is present."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    pred = probs.argmax(axis=1)
    eps = np.finfo(np.float64).tiny
    loss = float(-np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], eps))))
    binary = probs.shape[1] == 2
    out = {
        "loss": loss,
        "accuracy": float(accuracy_score(labels, pred)),
        "f1": float(f1_score(labels, pred, average="binary" if binary else "macro")),
    }
    if len(np.unique(labels)) < 2:
        out["auc"] = math.nan
    elif binary:
        out["auc"] = float(roc_auc_score(labels, probs[:, 1]))
    else:
        out["auc"] = float(
            roc_auc_score(labels, probs, multi_class="ovr", labels=range(probs.shape[1]))
        )
    return out


@torch.no_grad()
def _probs(forward, n: int, lengths: Sequence[int], batch_size: int) -> np.ndarray:
    order = np.argsort(np.asarray(lengths), kind="stable")
    out = [None] * n
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size].tolist()
        p = F.softmax(forward(idx).float(), dim=-1).cpu().numpy()
        for r, i in enumerate(idx):
            out[i] = p[r]
    return np.stack(out)


def _model_logits(model: nn.Module, data: Encoded, device) -> callable:
    def forward(idx):
        batch = data.batch(idx, device)
        batch.pop("labels", None)
        return model(**batch).logits

    return forward


def predict_proba(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    *,
    pairs: Sequence[str] | None = None,
    max_length: int = 128,
    batch_size: int = 64,
    frozen_top_layers: int | None = None,
) -> np.ndarray:
    """Class probabilities ``[N, num_labels]`` in eval mode (column 1 is the positive
    class of a binary task). ``frozen_top_layers=k`` (a model trained with
    ``TopLayers(k)``) runs the frozen bottom through the memoised cache, so repeated
    predictions on the same texts by models sharing that bottom run only the top."""
    if len(texts) == 0:
        raise ValueError("texts is empty")
    data = encode_classification(tokenizer, texts, [0] * len(texts), max_length, pairs)
    device = next(model.parameters()).device
    lengths = [len(x) for x in data.input_ids]
    was = model.training
    model.eval()
    try:
        if frozen_top_layers is not None and supports_cache(model):
            top = TopStack(model, frozen_top_layers)
            states = bottom_states(model, frozen_top_layers, data, device=device)

            def forward(idx):
                return top(**stack_batch(states, idx, device))

        else:
            forward = _model_logits(model, data, device)
        with torch.no_grad():
            return _probs(forward, len(data), lengths, batch_size)
    finally:
        model.train(was)


def train_classifier(
    model: nn.Module,
    tokenizer,
    train: pd.DataFrame,
    config: TrainConfig,
    *,
    validation: pd.DataFrame | None = None,
    text_column: str = "text",
    label_column: str = "label",
    pair_column: str | None = None,
) -> TrainResult:
    """Fine-tune a sequence classifier on ``train`` (columns ``text``, ``label`` and
    optionally a second segment) as ``config`` says; evaluates on ``validation`` after
    every epoch (``val_loss``, ``val_accuracy``, ``val_f1``, ``val_auc``).

    With ``TopLayers(k, cache_frozen=True)`` on a BERT-family model only the top is run
    per step, on cached hidden states. For LoRA the returned model is the peft model.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if config.validation_metric is None:
        config = replace(config, validation_metric="auc")
    num_labels = int(model.config.num_labels)
    cols = {"text_column": text_column, "label_column": label_column, "pair_column": pair_column}
    check_classification_data(train, "train", num_labels=num_labels, **cols)
    if validation is not None:
        check_classification_data(
            validation, "validation", num_labels=num_labels, min_classes=1, **cols
        )
    elif config.early_stopping_patience is not None or config.scheduler == "plateau":
        raise ValueError("early stopping and the plateau scheduler need validation data")
    if config.batch_size > len(train):
        raise ValueError(
            f"TrainConfig.batch_size={config.batch_size} is larger than the {len(train)} "
            "training examples"
        )
    device = _device(model, config)
    model.to(device)

    def encode(df: pd.DataFrame) -> Encoded:
        pairs = df[pair_column].tolist() if pair_column else None
        return encode_classification(
            tokenizer,
            df[text_column].tolist(),
            df[label_column].astype(int).tolist(),
            config.max_length,
            pairs,
        )

    data = encode(train)
    val = encode(validation) if validation is not None else None
    trainable = config.trainable
    model = prepare(model, trainable, "SEQ_CLS")
    frozen_for_dp = freeze_unsupported_for_dp(model) if config.privacy is not None else []

    cached = isinstance(trainable, TopLayers) and trainable.cache_frozen and supports_cache(model)
    if cached:
        module: nn.Module = TopStack(model, trainable.k)
        states = bottom_states(model, trainable.k, data, device=device)
        val_states = bottom_states(model, trainable.k, val, device=device) if val else None

        def per_example_loss(m, idx):
            logits = m(**stack_batch(states, idx, device))
            return F.cross_entropy(logits, data.batch_labels(idx, device), reduction="none")

        def val_forward(idx):
            return module(**stack_batch(val_states, idx, device))
    else:
        module = model

        def per_example_loss(m, idx):
            batch = data.batch(idx, device)
            labels = batch.pop("labels")
            return F.cross_entropy(m(**batch).logits, labels, reduction="none")

        val_forward = _model_logits(model, val, device) if val else None

    frozen = frozen_modules(model, trainable.k) if isinstance(trainable, TopLayers) else []

    def train_mode():
        model.train()
        for m in frozen:  # the frozen bottom is a fixed feature extractor: no dropout
            m.eval()

    evaluate = None
    if val is not None:
        labels = np.asarray(val.labels)
        lengths = [len(x) for x in val.input_ids]

        def evaluate():
            model.eval()
            probs = _probs(val_forward, len(val), lengths, 64)
            return {f"val_{k}": v for k, v in classification_metrics(probs, labels).items()}

    history, record, _ = fit(
        module,
        per_example_loss,
        len(data),
        config,
        device=device,
        train_mode=train_mode,
        evaluate=evaluate,
        desc=f"{config.describe()} classifier",
        frozen_for_dp=frozen_for_dp,
        lengths=[len(x) for x in data.input_ids],
    )
    model.eval()
    return TrainResult(model=model, history=history, privacy=record)
