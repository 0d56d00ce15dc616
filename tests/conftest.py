"""Shared fixtures. Real models load once per session (they are large)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smollm2():
    from privbias_lib.models import load_model

    return load_model("smollm2-135m-instruct", "causal-lm", device="cpu")


@pytest.fixture(scope="session")
def winobias_all():
    from privbias_lib.data import load_winobias

    return load_winobias("all")


@pytest.fixture(scope="session")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    from privbias_lib.models import BUILTIN_MODELS

    return AutoTokenizer.from_pretrained(BUILTIN_MODELS["minilm-l6"].locate())


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2):
    return smollm2[1]


@pytest.fixture
def tiny_bert(minilm_tokenizer):
    """A factory of small random BERT classifiers (MiniLM's vocabulary), seeded."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    def make(seed: int = 0, dropout: float = 0.0, layers: int = 3):
        torch.manual_seed(seed)
        config = BertConfig(
            vocab_size=minilm_tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=layers,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            num_labels=2,
        )
        return BertForSequenceClassification(config).eval()

    return make


@pytest.fixture
def tiny_llama(smollm2_tokenizer):
    """A factory of small random Llama causal LMs (SmolLM2's vocabulary, tied embeddings)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    def make(seed: int = 0, tied: bool = True):
        torch.manual_seed(seed)
        config = LlamaConfig(
            vocab_size=len(smollm2_tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            tie_word_embeddings=tied,
            pad_token_id=smollm2_tokenizer.pad_token_id,
        )
        return LlamaForCausalLM(config).eval()

    return make


@pytest.fixture(scope="session")
def gemma3_tokenizer():
    """Gemma-3-270M's tokenizer (262k vocabulary, adds <bos>) from the converted cache."""
    from privbias_lib.models import load_tokenizer

    return load_tokenizer("gemma3-270m")
