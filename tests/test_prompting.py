"""Prompted co-reference: conditions, prompts, and answer scoring (symmetry, the shared-prefix
cache against plain scoring, and against full-sequence likelihoods)."""

from __future__ import annotations

import numpy as np
import pytest

from privbias_lib.metrics.memorisation import token_logprobs
from privbias_lib.prompting import (
    INSTRUCTIONS,
    Condition,
    choose_examples,
    prompt_texts,
    score_answers,
)


@pytest.fixture(scope="module")
def items(winobias_all):
    return winobias_all[winobias_all.split == "test"].sample(6, random_state=0)


@pytest.fixture(scope="module")
def pool(winobias_all):
    return winobias_all[winobias_all.split == "dev"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": ""}, "name"),
        ({"name": "a", "shots": -1}, "shots"),
        ({"name": "a", "pro_share": 1.5}, "pro_share"),
        ({"name": "a", "instruction": "polite"}, "instruction"),
    ],
)
def test_bad_conditions_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Condition(**kwargs)
    with pytest.raises(ValueError, match="unknown"):
        Condition.from_dict({"name": "a", "k": 2})


def test_examples_have_the_asked_mix(pool):
    cond = Condition("mix", shots=8, pro_share=0.25)
    ex = choose_examples(pool, cond, seed=1)
    assert len(ex) == 8 and (ex.stereotype == "pro").sum() == 2
    assert ex.index.tolist() == choose_examples(pool, cond, seed=1).index.tolist()
    # another mix shows the same sentences in other versions
    all_pro = choose_examples(pool, Condition("pro", shots=8, pro_share=1.0), seed=1)
    assert set(all_pro.pair_id) == set(ex.pair_id) and (all_pro.stereotype == "pro").all()
    assert (choose_examples(pool, Condition("half", shots=1), seed=1).stereotype == "pro").all()
    assert choose_examples(pool, Condition("zero"), seed=1).empty


@pytest.mark.slow
@pytest.mark.parametrize("chat", [True, False])
def test_prompts_differ_only_in_the_answer(items, pool, smollm2_tokenizer, chat):
    cond = Condition("fair few-shot", shots=2, instruction="fair")
    texts = prompt_texts(items, choose_examples(pool, cond, 0), cond, smollm2_tokenizer, chat)
    assert len(texts) == len(items)
    for (gold, other), row in zip(texts, items.itertuples(), strict=True):
        assert gold.endswith(f"The {row.occupation}.") and other.endswith(
            f"The {row.other_occupation}."
        )
        assert gold[: -len(row.occupation) - 1] == other[: -len(row.other_occupation) - 1]
        assert row.sentence in gold and INSTRUCTIONS["fair"] in gold
        assert ("<|im_start|>" in gold) == chat
        assert gold.count("who does") == 3  # two solved examples and the question


@pytest.mark.slow
def test_answer_order_does_not_change_the_winner(items, pool, tiny_llama, smollm2_tokenizer):
    model = tiny_llama(seed=5)
    cond = Condition("few", shots=2)
    texts = prompt_texts(items, choose_examples(pool, cond, 0), cond, smollm2_tokenizer, False)
    forward = score_answers(model, smollm2_tokenizer, texts, chat=False, batch_size=4)
    swapped = score_answers(
        model, smollm2_tokenizer, [t[::-1] for t in texts], chat=False, batch_size=3
    )
    np.testing.assert_allclose(forward, swapped[:, ::-1], atol=1e-4)
    assert ((forward[:, 0] > forward[:, 1]) == (swapped[:, 1] > swapped[:, 0])).all()


@pytest.mark.slow
@pytest.mark.parametrize("chat", [True, False])
def test_cached_prefix_scores_equal_plain_scores(items, pool, tiny_llama, smollm2_tokenizer, chat):
    model = tiny_llama(seed=2)
    cond = Condition("few", shots=3, instruction="biased")
    texts = prompt_texts(items, choose_examples(pool, cond, 0), cond, smollm2_tokenizer, chat)
    cached = score_answers(model, smollm2_tokenizer, texts, chat=chat, batch_size=5)
    plain = score_answers(
        model, smollm2_tokenizer, texts, chat=chat, batch_size=2, reuse_prefix=False
    )
    np.testing.assert_allclose(cached, plain, atol=1e-4)
    if not chat:  # the difference of two answers equals that of the full texts' likelihoods
        flat = [t for item in texts for t in item]
        full = np.array([lp.sum() for lp in token_logprobs(model, smollm2_tokenizer, flat)])
        np.testing.assert_allclose(cached[:, 0] - cached[:, 1], full[0::2] - full[1::2], atol=1e-4)
