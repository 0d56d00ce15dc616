"""Fine-tune causal language models, optionally on a subset of tokens (a loss mask)."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .batches import Encoded, encode_causal
from .config import TrainConfig
from .engine import TrainResult, fit
from .trainable import freeze_unsupported_for_dp, prepare


def token_losses(model: nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token negative log-likelihood per position ``[B, T-1]`` and the weight of each
    position (attention mask, times the loss mask when given, shifted to the targets)."""
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
    ).logits[:, :-1]
    targets = batch["input_ids"][:, 1:]
    nll = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    ).view_as(targets)
    weight = batch["attention_mask"][:, 1:].float()
    if "loss_mask" in batch:
        weight = weight * batch["loss_mask"][:, 1:]
    return nll, weight


def per_example_nll(model: nn.Module, batch: dict) -> torch.Tensor:
    """Mean next-token loss of each example over its weighted positions."""
    nll, weight = token_losses(model, batch)
    return (nll * weight).sum(1) / weight.sum(1).clamp(min=1.0)


def _texts_and_spans(data, name: str, text_column: str, spans_column: str | None):
    if isinstance(data, pd.DataFrame):
        if text_column not in data.columns:
            raise ValueError(f"{name} lacks column {text_column!r}; it has {list(data.columns)}")
        texts = data[text_column].tolist()
        if spans_column is not None:
            if spans_column not in data.columns:
                raise ValueError(f"{name} lacks the loss-span column {spans_column!r}")
            spans = data[spans_column].tolist()
        else:
            spans = None
    elif isinstance(data, Sequence) and not isinstance(data, str):
        texts, spans = list(data), None
    else:
        raise TypeError(f"{name} must be a DataFrame or a list of strings")
    if not texts:
        raise ValueError(f"{name} is empty")
    if not all(isinstance(t, str) and t for t in texts):
        raise ValueError(f"{name} must hold non-empty strings")
    return texts, spans


def _encode(tokenizer, texts, spans, max_length: int, name: str) -> Encoded:
    enc = encode_causal(tokenizer, texts, max_length, spans)
    # a one-token text has no next-token target: it contributes zero loss and gradient
    if all(len(ids) < 2 for ids in enc.input_ids):
        raise ValueError(f"{name}: every text is a single token, nothing to predict")
    if enc.loss_mask is not None and not any(sum(m[1:]) for m in enc.loss_mask):
        raise ValueError(f"{name}: no loss span covers any predicted token")
    return enc


@torch.no_grad()
def evaluate_nll(model: nn.Module, data: Encoded, batch_size: int = 16) -> dict[str, float]:
    """Token-weighted mean loss and perplexity over ``data``."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    total, count = 0.0, 0.0
    for start in range(0, len(data), batch_size):
        batch = data.batch(range(start, min(start + batch_size, len(data))), device)
        nll, weight = token_losses(model, batch)
        total += float((nll * weight).sum())
        count += float(weight.sum())
    model.train(was)
    loss = total / count if count else math.nan
    return {"loss": loss, "perplexity": math.exp(loss) if count else math.nan}


def train_causal_lm(
    model: nn.Module,
    tokenizer,
    train: pd.DataFrame | Sequence[str],
    config: TrainConfig,
    *,
    validation: pd.DataFrame | Sequence[str] | None = None,
    text_column: str = "text",
    loss_spans_column: str | None = None,
    checkpoints: Collection[int] = (),
    on_checkpoint: Callable[[nn.Module, int], None] | None = None,
) -> TrainResult:
    """Fine-tune a causal LM on texts. With ``loss_spans_column`` (a column of lists of
    character spans ``(start, end)``, or None for a whole text) only the tokens inside
    the spans contribute to the loss. Each example's loss is the mean over its trained
    tokens, so DP-SGD clips per example, not per token. Validation reports ``val_loss``
    and ``val_perplexity`` per epoch; ``validation_metric`` must be "loss".
    ``on_checkpoint(model, step)`` is called after each step in ``checkpoints`` with the
    model as training left it (evaluate it there, for a trajectory)."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if config.validation_metric is None:
        config = replace(config, validation_metric="loss")
    if config.validation_metric != "loss":
        raise ValueError(
            f"TrainConfig.validation_metric={config.validation_metric!r} is invalid for a "
            "causal LM: allowed 'loss'"
        )
    texts, spans = _texts_and_spans(train, "train", text_column, loss_spans_column)
    if validation is not None:
        v_texts, v_spans = _texts_and_spans(
            validation, "validation", text_column, loss_spans_column
        )
    elif config.early_stopping_patience is not None or config.scheduler == "plateau":
        raise ValueError("early stopping and the plateau scheduler need validation data")
    if config.batch_size > len(texts):
        raise ValueError(
            f"TrainConfig.batch_size={config.batch_size} is larger than the {len(texts)} "
            "training examples"
        )
    device = torch.device(config.device) if config.device else next(model.parameters()).device
    model.to(device)
    data = _encode(tokenizer, texts, spans, config.max_length, "train")
    val = (
        _encode(tokenizer, v_texts, v_spans, config.max_length, "validation")
        if validation is not None
        else None
    )
    model = prepare(model, config.trainable, "CAUSAL_LM")
    frozen_for_dp = freeze_unsupported_for_dp(model) if config.privacy is not None else []

    def per_example_loss(m, idx):
        return per_example_nll(m, data.batch(idx, device))

    evaluate = None
    if val is not None:

        def evaluate():
            return {f"val_{k}": v for k, v in evaluate_nll(model, val).items()}

    history, record, _ = fit(
        model,
        per_example_loss,
        len(data),
        config,
        device=device,
        train_mode=model.train,
        evaluate=evaluate,
        desc=f"{config.describe()} causal LM",
        frozen_for_dp=frozen_for_dp,
        checkpoints=checkpoints,
        on_checkpoint=None if on_checkpoint is None else (lambda step: on_checkpoint(model, step)),
    )
    return TrainResult(model=model, history=history, privacy=record)
