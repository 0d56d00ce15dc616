"""Tokenised examples, padded per batch, and the two batch samplers (Poisson, shuffle)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch


@dataclass
class Encoded:
    """Token ids per example (unpadded, truncated to ``max_length``), optional token
    types, an optional per-token loss mask (causal LM) and labels (classification)."""

    input_ids: list[list[int]]
    pad_id: int
    token_type_ids: list[list[int]] | None = None
    loss_mask: list[list[int]] | None = None
    labels: list[int] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def digest(self) -> str:
        """SHA-256 of the token ids (and labels): identifies data, tokenizer and length."""
        h = hashlib.sha256()
        for ids in self.input_ids:
            h.update(len(ids).to_bytes(4, "little"))
            h.update(torch.tensor(ids, dtype=torch.int64).numpy().tobytes())
        if self.labels is not None:
            h.update(torch.tensor(self.labels, dtype=torch.int64).numpy().tobytes())
        return h.hexdigest()

    def batch(self, idx: Sequence[int], device: torch.device | str = "cpu") -> dict:
        """Right-padded tensors for examples ``idx`` with explicit position ids (Opacus
        needs batch-sized position ids on BERT)."""
        idx = list(idx)
        width = max(len(self.input_ids[i]) for i in idx)
        b = len(idx)
        ids = torch.full((b, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((b, width), dtype=torch.long)
        for r, i in enumerate(idx):
            row = self.input_ids[i]
            ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1
        out = {
            "input_ids": ids,
            "attention_mask": mask,
            "position_ids": torch.arange(width).expand(b, -1).contiguous(),
        }
        if self.token_type_ids is not None:
            tt = torch.zeros((b, width), dtype=torch.long)
            for r, i in enumerate(idx):
                row = self.token_type_ids[i]
                tt[r, : len(row)] = torch.tensor(row)
            out["token_type_ids"] = tt
        if self.loss_mask is not None:
            lm = torch.zeros((b, width), dtype=torch.float32)
            for r, i in enumerate(idx):
                row = self.loss_mask[i]
                lm[r, : len(row)] = torch.tensor(row, dtype=torch.float32)
            out["loss_mask"] = lm
        if self.labels is not None:
            out["labels"] = torch.tensor([self.labels[i] for i in idx], dtype=torch.long)
        return {k: v.to(device) for k, v in out.items()}

    def batch_labels(self, idx: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.tensor([self.labels[i] for i in idx], dtype=torch.long, device=device)


def encode_classification(
    tokenizer, texts: Sequence[str], labels: Sequence[int], max_length: int, pairs=None
) -> Encoded:
    """Tokenise texts (and optional second segments) for sequence classification."""
    enc = tokenizer(
        list(texts),
        list(pairs) if pairs is not None else None,
        truncation=True,
        max_length=max_length,
        padding=False,
    )
    return Encoded(
        input_ids=[list(x) for x in enc["input_ids"]],
        pad_id=_pad_id(tokenizer),
        token_type_ids=[list(x) for x in enc["token_type_ids"]]
        if "token_type_ids" in enc
        else None,
        labels=[int(v) for v in labels],
    )


def encode_causal(
    tokenizer,
    texts: Sequence[str],
    max_length: int,
    loss_spans: Sequence[Sequence[tuple[int, int]] | None] | None = None,
) -> Encoded:
    """Tokenise texts for language modelling. With ``loss_spans`` (character spans per
    text; None = every token), only tokens overlapping a span are trained on."""
    enc = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        padding=False,
        return_offsets_mapping=loss_spans is not None,
    )
    ids = [list(x) for x in enc["input_ids"]]
    masks = None
    if loss_spans is not None:
        masks = []
        for offsets, spans in zip(enc["offset_mapping"], loss_spans, strict=True):
            if spans is None:
                masks.append([1] * len(offsets))
                continue
            masks.append(
                [
                    int(end > start and any(a < end and start < b for a, b in spans))
                    for start, end in offsets
                ]
            )
    return Encoded(input_ids=ids, pad_id=_pad_id(tokenizer), loss_mask=masks)


def _pad_id(tokenizer) -> int:
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has neither a pad token nor an EOS token")
    return int(pad)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


def poisson_batches(n: int, q: float, steps: int, generator: torch.Generator) -> Iterator[list]:
    """``steps`` batches, each example included independently with probability ``q``
    (the sampling the privacy accounting assumes; batches may be empty)."""
    for _ in range(steps):
        yield torch.nonzero(torch.rand(n, generator=generator) < q).flatten().tolist()


def shuffled_batches(
    n: int, batch_size: int, steps: int, generator: torch.Generator
) -> Iterator[list]:
    """``steps`` fixed-size batches from successive random permutations."""
    per_epoch = steps_per_epoch(n, batch_size)
    done = 0
    while done < steps:
        perm = torch.randperm(n, generator=generator).tolist()
        for j in range(per_epoch):
            if done == steps:
                return
            yield perm[j * batch_size : (j + 1) * batch_size]
            done += 1
