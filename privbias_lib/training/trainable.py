"""Choosing what trains: every weight, the top k layers plus head, or LoRA adapters."""

from __future__ import annotations

import logging
import re

import torch
from torch import nn

from .config import Full, LoRA, TopLayers, Trainable

log = logging.getLogger(__name__)


def layer_stack(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The transformer's list of blocks and its qualified name (BERT's
    ``encoder.layer``, Llama/Gemma's ``layers``, GPT-2's ``h``)."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        is_stack = isinstance(module, nn.ModuleList) and re.search(r"(^|\.)(layer|layers|h)$", name)
        if is_stack and (best is None or len(module) > len(best[1])):
            best = (name, module)
    if best is None:
        raise ValueError(
            f"{type(model).__name__} has no recognisable list of transformer layers "
            "(encoder.layer, layers or h): TopLayers cannot be used with it"
        )
    return best


def _is_embedding(name: str, module: nn.Module) -> bool:
    return isinstance(module, nn.Embedding) or name.split(".")[-1] in ("embeddings", "wte", "wpe")


def freeze_to_top_layers(model: nn.Module, k: int) -> list[str]:
    """Freeze all but the top ``k`` blocks and the modules after the stack (pooler,
    final norm, head). Embeddings and lower blocks are frozen. Returns trainable names."""
    stack_name, stack = layer_stack(model)
    if k > len(stack):
        raise ValueError(f"TopLayers.k={k} is invalid: the model has only {len(stack)} layers")
    top = {f"{stack_name}.{i}." for i in range(len(stack) - k, len(stack))}
    embedding_prefixes = {f"{n}." for n, m in model.named_modules() if n and _is_embedding(n, m)}
    names = []
    for name, p in model.named_parameters():
        in_stack = name.startswith(stack_name + ".")
        in_embedding = any(name.startswith(e) for e in embedding_prefixes)
        train = any(name.startswith(t) for t in top) if in_stack else not in_embedding
        p.requires_grad_(train)
        if train:
            names.append(name)
    return names


def _linear_names(model: nn.Module) -> list[str]:
    return sorted(
        {n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv1d)}
    )


def check_target_modules(model: nn.Module, target_modules: tuple[str, ...] | None) -> None:
    """Every LoRA target must name (the end of) some linear module's name."""
    if target_modules is None:
        return
    names = [n for n, _ in model.named_modules()]
    missing = [t for t in target_modules if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise ValueError(
            f"LoRA.target_modules {missing} not found in {type(model).__name__}; its linear "
            f"modules are {_linear_names(model)}"
        )


def apply_lora(model: nn.Module, cfg: LoRA, task_type: str) -> nn.Module:
    """Wrap ``model`` in peft LoRA adapters (``task_type`` "SEQ_CLS" also trains the head)."""
    from peft import LoraConfig, get_peft_model

    check_target_modules(model, cfg.target_modules)
    config = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules) if cfg.target_modules else None,
        task_type=task_type,
    )
    return get_peft_model(model, config)


def prepare(model: nn.Module, trainable: Trainable, task_type: str) -> nn.Module:
    """Set ``requires_grad`` (or wrap in LoRA) according to ``trainable``; returns the
    model to train (a peft model for LoRA)."""
    if isinstance(trainable, Full):
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if isinstance(trainable, TopLayers):
        freeze_to_top_layers(model, trainable.k)
        return model
    if isinstance(trainable, LoRA):
        return apply_lora(model, trainable, task_type)
    raise TypeError(f"unknown trainable spec {trainable!r}")


def freeze_unsupported_for_dp(model: nn.Module) -> list[str]:
    """Freeze trainable modules that hold buffers (Opacus cannot compute their
    per-sample gradients, e.g. Gemma-3's scaled word embedding). Returns their names."""
    frozen = []
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False))
        if any(p.requires_grad for p in own) and list(module.buffers(recurse=False)):
            for p in own:
                p.requires_grad_(False)
            frozen.append(name)
    if frozen:
        log.warning(
            "froze %s for DP-SGD: Opacus cannot compute per-sample gradients of a trainable "
            "layer with buffers (tied weights are frozen with it)",
            frozen,
        )
    return frozen


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, shared tensors counted once."""
    seen: dict[int, torch.Tensor] = {}
    for p in model.parameters():
        seen.setdefault(id(p), p)
    total = sum(p.numel() for p in seen.values())
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    return trainable, total
