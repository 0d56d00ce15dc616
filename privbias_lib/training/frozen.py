"""Run a BERT-style classifier's frozen bottom once per example and train only its top.

With ``TopLayers(k)`` the embeddings and the lower layers never change, so their output
(the hidden states entering layer L-k) is a fixed function of the tokens. It is computed
once per example, kept in memory keyed by (frozen weights, k, token ids), and reused by
every epoch, every privacy level and every subset of the data. The bottom runs in eval
mode in both the cached and uncached paths, so the two train the same function.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict

import torch
from torch import nn

from .batches import Encoded
from .trainable import layer_stack

log = logging.getLogger(__name__)

_MEMORY: OrderedDict[str, dict[tuple, torch.Tensor]] = OrderedDict()
MAX_ENTRIES = 2  # frozen bottoms (models x k) kept


def supports_cache(model: nn.Module) -> bool:
    """BERT-family sequence classifiers: ``encoder.layer``, a pooler, dropout and a
    linear head on the pooled output."""
    base = getattr(model, "base_model", None)
    return (
        base is not None
        and base is not model
        and hasattr(getattr(base, "encoder", None), "layer")
        and getattr(base, "pooler", None) is not None
        and isinstance(getattr(model, "classifier", None), nn.Linear)
        and isinstance(getattr(model, "dropout", None), nn.Dropout)
    )


class TopStack(nn.Module):
    """The trainable top of a BERT-style classifier (its last ``k`` layers, pooler,
    dropout and head), fed with the cached hidden states. Shares the model's modules,
    so training it trains the model.

    The head reads only the first ([CLS]) position of the last layer, so that layer is
    computed for that position alone (its keys and values still see every token): the
    same logits as the full model for about a sixth of the last layer's work.
    """

    def __init__(self, model: nn.Module, k: int):
        super().__init__()
        base = model.base_model
        self.config = base.config
        self.layers = nn.ModuleList(list(base.encoder.layer)[len(base.encoder.layer) - k :])
        self.pooler = base.pooler
        self.dropout = model.dropout
        self.classifier = model.classifier

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        if len(self.layers) > 1:
            mask = create_bidirectional_mask(
                config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask
            )
            for layer in self.layers[:-1]:
                hidden_states = layer(hidden_states, mask)
        first = last_layer_first_token(self.layers[-1], hidden_states, attention_mask)
        return self.classifier(self.dropout(self.pooler(first)))


def last_layer_first_token(
    layer: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """A BERT layer's output at position 0 only (``[B, 1, H]``): the query, attention
    output and feed-forward run on that position; keys and values on all tokens."""
    att = layer.attention.self
    b, t, _ = hidden.shape
    heads, size = att.num_attention_heads, att.attention_head_size
    first = hidden[:, :1]
    q = att.query(first).view(b, 1, heads, size).transpose(1, 2)
    k = att.key(hidden).view(b, t, heads, size).transpose(1, 2)
    v = att.value(hidden).view(b, t, heads, size).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(2, 3)) * getattr(att, "scaling", size**-0.5)
    blocked = attention_mask[:, None, None, :].to(torch.bool).logical_not()
    scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
    probs = nn.functional.softmax(scores, dim=-1)
    probs = nn.functional.dropout(probs, p=att.dropout.p, training=att.training)
    context = torch.matmul(probs, v).transpose(1, 2).reshape(b, 1, heads * size)
    attended = layer.attention.output(context, first)
    return layer.output(layer.intermediate(attended), attended)


def frozen_modules(model: nn.Module, k: int) -> list[nn.Module]:
    """The embeddings and the layers below the top ``k`` (to run in eval mode)."""
    _, stack = layer_stack(model)
    embeddings = [m for n, m in model.named_modules() if n.split(".")[-1] == "embeddings"]
    return embeddings + list(stack)[: len(stack) - k]


def _weights_digest(modules: list[nn.Module]) -> str:
    h = hashlib.sha256()
    for m in modules:
        for name, t in sorted(m.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _example_key(data: Encoded, i: int) -> tuple:
    types = tuple(data.token_type_ids[i]) if data.token_type_ids is not None else ()
    return (tuple(data.input_ids[i]), types)


@torch.no_grad()
def bottom_states(
    model: nn.Module, k: int, data: Encoded, *, batch_size: int = 64, device="cpu"
) -> list[torch.Tensor]:
    """Hidden states entering the top ``k`` layers, one ``[tokens, hidden]`` tensor per
    example. Memoised in memory per example, keyed by (frozen weights, k) and the
    example's tokens, so any subset or reordering of seen examples costs nothing."""
    bottom = f"{_weights_digest(frozen_modules(model, k))}:{k}"
    if bottom in _MEMORY:
        _MEMORY.move_to_end(bottom)
    memo = _MEMORY.setdefault(bottom, {})
    while len(_MEMORY) > MAX_ENTRIES:
        _MEMORY.popitem(last=False)
    keys = [_example_key(data, i) for i in range(len(data))]
    todo = sorted({key: i for i, key in enumerate(keys) if key not in memo}.values())
    if todo:
        was_training = model.training
        model.eval()
        n_layers = len(layer_stack(model)[1])
        # sort by length so batches carry little padding; store each example unpadded
        todo.sort(key=lambda i: len(data.input_ids[i]))
        for start in range(0, len(todo), batch_size):
            idx = todo[start : start + batch_size]
            batch = data.batch(idx, device)
            batch.pop("labels", None)
            hidden = model.base_model(**batch, output_hidden_states=True).hidden_states
            h = hidden[n_layers - k]
            for r, i in enumerate(idx):
                memo[keys[i]] = h[r, : len(data.input_ids[i])].to("cpu").clone()
        model.train(was_training)
    return [memo[key] for key in keys]


def stack_batch(states: list[torch.Tensor], idx, device="cpu") -> dict[str, torch.Tensor]:
    """Pad the cached states of examples ``idx`` into a batch with its attention mask."""
    idx = list(idx)
    width = max(states[i].shape[0] for i in idx)
    hidden = states[idx[0]].shape[1]
    h = torch.zeros((len(idx), width, hidden), dtype=states[idx[0]].dtype)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for r, i in enumerate(idx):
        n = states[i].shape[0]
        h[r, :n] = states[i]
        mask[r, :n] = 1
    return {"hidden_states": h.to(device), "attention_mask": mask.to(device)}


def clear_cache() -> None:
    _MEMORY.clear()
