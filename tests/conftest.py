"""Shared fixtures. Real models load once per session (they are large).

The markers are honest: a test that executes a notebook must be marked ``notebook`` and one
that loads a built-in (real) model ``slow``, or it fails, so ``make test-fast`` (``-m "not
slow and not notebook"``) really is the quick loop."""

from __future__ import annotations

import pytest

REAL_MODEL_FIXTURES = {"smollm2", "smollm2_tokenizer", "tiny_llama", "gemma3_tokenizer"}
_CURRENT = {"name": "", "slow": True, "notebook": True}  # the test being set up or run


def pytest_runtest_setup(item):
    """Before any fixture of ``item`` (module- and session-scoped ones included) is set up."""
    from privbias_lib import models

    models._model_problem.cache_clear()  # model-name checks a test may have faked
    _CURRENT.update(
        name=item.nodeid,
        slow=item.get_closest_marker("slow") is not None,
        notebook=item.get_closest_marker("notebook") is not None,
    )
    used = REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ()))
    assert _CURRENT["slow"] or not used, (
        f"{item.nodeid} uses real model fixture(s) {used}: mark it slow"
    )


def pytest_configure(config):
    """Loading a built-in model outside a ``slow`` test, or executing a notebook outside a
    ``notebook`` test, fails (however deep in a fixture it happens)."""
    import papermill

    from privbias_lib import models

    folder, execute_notebook = models._folder, papermill.execute_notebook

    def guarded_folder(model, *args, **kwargs):  # what load_model and load_tokenizer read
        found = folder(model, *args, **kwargs)  # (a test of a failing load may stay fast)
        assert _CURRENT["slow"] or model not in models.BUILTIN_MODELS, (
            f"{_CURRENT['name']} loads {model}: mark it slow"
        )
        return found

    def guarded_execute_notebook(*args, **kwargs):
        assert _CURRENT["notebook"], f"{_CURRENT['name']} executes a notebook: mark it notebook"
        return execute_notebook(*args, **kwargs)

    models._folder = guarded_folder
    papermill.execute_notebook = guarded_execute_notebook


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
    from tiny_models import tiny_decoder

    def make(seed: int = 0, tied: bool = True):
        return tiny_decoder(
            len(smollm2_tokenizer),
            seed=seed,
            tie_word_embeddings=tied,
            pad_token_id=smollm2_tokenizer.pad_token_id,
        )

    return make


@pytest.fixture(scope="session")
def gemma3_tokenizer():
    """Gemma-3-270M's tokenizer (262k vocabulary, adds <bos>) from the converted cache."""
    from privbias_lib.models import load_tokenizer

    return load_tokenizer("gemma3-270m")
