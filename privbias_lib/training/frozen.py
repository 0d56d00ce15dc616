"""Run a BERT-style classifier's frozen bottom once per example and train only its top.

With ``TopLayers(k)`` the embeddings and the lower layers never change, so their output
(the hidden states entering layer L-k) is a fixed function of the tokens. It is computed
once, kept in memory keyed by (frozen weights, token ids, k), and reused by every epoch
and every privacy level. The bottom runs in eval mode in both the cached and uncached
paths, so the two train the same function.
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

_MEMORY: OrderedDict[str, list[torch.Tensor]] = OrderedDict()
MAX_ENTRIES = 4


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
    so training it trains the model."""

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

        mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask
        )
        for layer in self.layers:
            hidden_states = layer(hidden_states, mask)
        return self.classifier(self.dropout(self.pooler(hidden_states)))


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


@torch.no_grad()
def bottom_states(
    model: nn.Module, k: int, data: Encoded, *, batch_size: int = 64, device="cpu"
) -> list[torch.Tensor]:
    """Hidden states entering the top ``k`` layers, one ``[tokens, hidden]`` tensor per
    example; memoised in memory by (frozen weights, token ids, k)."""
    key = hashlib.sha256(
        f"{_weights_digest(frozen_modules(model, k))}:{data.digest()}:{k}".encode()
    ).hexdigest()
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    was_training = model.training
    model.eval()
    n_layers = len(layer_stack(model)[1])
    out: list[torch.Tensor] = []
    # sort by length so batches carry little padding; store each example unpadded
    order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))
    states: dict[int, torch.Tensor] = {}
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = data.batch(idx, device)
        batch.pop("labels", None)
        hidden = model.base_model(**batch, output_hidden_states=True).hidden_states
        h = hidden[n_layers - k]
        for r, i in enumerate(idx):
            states[i] = h[r, : len(data.input_ids[i])].to("cpu").clone()
    out = [states[i] for i in range(len(data))]
    model.train(was_training)
    _MEMORY[key] = out
    while len(_MEMORY) > MAX_ENTRIES:
        _MEMORY.popitem(last=False)
    return out


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
