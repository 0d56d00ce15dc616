"""Tiny random decoder LMs for tests: the same small shape everywhere (2 layers, width 32,
grouped-query attention), seeded, in eval mode."""

from __future__ import annotations


def tiny_decoder(vocab_size: int, *, seed: int = 0, kind: str = "llama", **config):
    """A small random Llama (or Mistral, ``kind="mistral"``) causal LM; ``config`` adds to
    or overrides the shared shape (e.g. ``tie_word_embeddings``, ``sliding_window``)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    config_cls, model_cls = {
        "llama": (LlamaConfig, LlamaForCausalLM),
        "mistral": (MistralConfig, MistralForCausalLM),
    }[kind]
    torch.manual_seed(seed)
    shape = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    attention = config.pop("attn_implementation", None)
    made = config_cls(**{**shape, **config})
    if attention is not None:
        made._attn_implementation = attention
    return model_cls(made).eval()
