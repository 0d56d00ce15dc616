"""The shared-prefix continuation scorer against brute force (every sequence run alone, in
full) on tiny random causal LMs with a small vocabulary: no tokenizer, no real model."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from tiny_models import tiny_decoder

from privbias_lib import scoring
from privbias_lib.scoring import _merge, continuation_logprobs

VOCAB = 23


@pytest.fixture(scope="module")
def llama():
    return tiny_decoder(VOCAB, seed=0)


@torch.no_grad()
def brute_force(model, sequences, starts):
    """Every sequence in full, without cache or padding (sequences of one length batched)."""
    out = np.zeros(len(sequences))
    by_length: dict[int, list[int]] = {}
    for i, seq in enumerate(sequences):
        by_length.setdefault(len(seq), []).append(i)
    for idx in by_length.values():
        x = torch.tensor([sequences[i] for i in idx])
        logp = torch.log_softmax(model(input_ids=x).logits.double(), -1)
        for r, i in enumerate(idx):
            seq = sequences[i]
            out[i] = sum(float(logp[r, t - 1, seq[t]]) for t in range(starts[i], len(seq)))
    return out


def real_tokens(input_ids, mask) -> int:
    """Tokens of a forward pass that are not padding (a 2D mask, or a 4D additive one where
    a real token sees itself)."""
    new = input_ids.shape[1]
    if mask.dim() == 2:
        return int(mask[:, -new:].sum())
    return int((mask[:, 0, :, -new:].diagonal(dim1=1, dim2=2) == 0).sum())


def random_workload(rng, context: int, items: int = 6):
    """Items in the shape of prompted answers: a shared context, then per item a stem (a
    question; sometimes empty or shared with another item), then 1-3 answers of 1-4
    tokens, scored after the item's common prefix."""
    ctx = rng.integers(0, VOCAB, context).tolist()
    sequences, starts = [], []
    stems = [rng.integers(0, VOCAB, int(rng.integers(0, 6))).tolist() for _ in range(items)]
    stems.append(stems[1] + [3, 4])  # a stem that extends another
    for stem in stems:
        answers = []
        for _ in range(int(rng.integers(1, 4))):
            answer = rng.integers(0, VOCAB, int(rng.integers(1, 5))).tolist()
            if answer not in answers:
                answers.append(answer)
        texts = [ctx + stem + a for a in answers]
        start = (
            len(ctx + stem) + min(_lcp(a, answers[0]) for a in answers)
            if len(answers) > 1
            else len(ctx + stem)
        )
        start = max(start, 1)
        sequences += texts
        starts += [min(start, len(t)) for t in texts]
    return sequences, starts


def _lcp(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@pytest.mark.parametrize("context", [0, 1, 7])
@pytest.mark.parametrize("batch_size", [1, 2, 5, 64])
def test_equals_brute_force_on_varied_trees(llama, context, batch_size):
    rng = np.random.default_rng(context * 100 + batch_size)
    sequences, starts = random_workload(rng, context)
    got = continuation_logprobs(llama, sequences, starts, batch_size=batch_size)
    np.testing.assert_allclose(got, brute_force(llama, sequences, starts), rtol=1e-5, atol=1e-5)


def test_eager_attention_equals_brute_force():
    """The tree attention mask is additive, so eager attention reads it as sdpa does."""
    model = tiny_decoder(VOCAB, seed=2, attn_implementation="eager")
    sequences, starts = random_workload(np.random.default_rng(5), 3)
    got = continuation_logprobs(model, sequences, starts, batch_size=3)
    np.testing.assert_allclose(got, brute_force(model, sequences, starts), rtol=1e-5, atol=1e-5)


def test_candidates_after_a_context_rank_as_brute_force(llama):
    context = [5, 9, 2, 11]
    sequences = [context + list(d) for d in itertools.product(range(10), repeat=3)]
    starts = [len(context)] * len(sequences)
    got = continuation_logprobs(llama, sequences, starts, batch_size=64)
    brute = brute_force(llama, sequences, starts)
    np.testing.assert_allclose(got, brute, rtol=1e-5, atol=1e-5)
    assert (np.argsort(-got, kind="stable") == np.argsort(-brute, kind="stable")).all()


def test_edge_cases_prefixes_duplicates_and_unscored(llama):
    sequences = [
        [1, 2, 3, 4],
        [1, 2, 3, 4],  # the same tokens, another start
        [1, 2, 3],  # a prefix of the others: ends at an inner node
        [1, 2],
        [1, 2, 3, 4, 5, 6],
        [7],  # nothing to score
        [7, 8],  # no shared first token with the rest
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    ]
    starts = [1, 3, 2, 2, 4, 1, 1, 6]
    for batch_size in (1, 3):
        got = continuation_logprobs(llama, sequences, starts, batch_size=batch_size)
        np.testing.assert_allclose(got, brute_force(llama, sequences, starts), atol=1e-5)
        assert got[5] == 0.0
    assert continuation_logprobs(llama, [[3]], [1]).tolist() == [0.0]
    assert continuation_logprobs(llama, [], []).shape == (0,)
    # a single sequence (the tree is one leaf)
    np.testing.assert_allclose(
        continuation_logprobs(llama, [[4, 5, 6]], [1]), brute_force(llama, [[4, 5, 6]], [1])
    )


def test_each_distinct_prefix_runs_once(llama):
    """The work is the tree's: the context once, each proper digit prefix once, no last
    digit (a one-token leaf is scored from its parent's logits)."""
    fed, passes = [], []

    def count(_module, _args, kwargs):
        fed.append(real_tokens(kwargs["input_ids"], kwargs["attention_mask"]))
        passes.append(kwargs["input_ids"].shape)

    hook = llama.register_forward_pre_hook(count, with_kwargs=True)
    try:
        context = [5, 9, 2, 11, 4]
        sequences = [context + list(d) for d in itertools.product(range(10), repeat=3)]
        continuation_logprobs(llama, sequences, [len(context)] * 1000, batch_size=32)
    finally:
        hook.remove()
    assert sum(fed) == len(context) + 10 + 100
    # the context; then each first digit with its ten second digits in one row (tree attention)
    assert passes == [(1, len(context)), (10, 11)]


@pytest.mark.parametrize("window", [6, 64])
def test_sliding_window_models_stay_exact(window, monkeypatch):
    """Sliding-window caches are batched (merged, padded) while the rows stay shorter than
    the window; near it, padding holes would move keys out of the window, so the scorer
    runs one row per pass instead. Either way it equals brute force."""
    model = tiny_decoder(VOCAB, seed=1, kind="mistral", sliding_window=window)
    merged = []

    def merge(pieces):
        merged.append(len(pieces))
        return _merge(pieces)

    monkeypatch.setattr(scoring, "_merge", merge)
    sequences, starts = random_workload(np.random.default_rng(3), 4, items=30)
    got = continuation_logprobs(model, sequences, starts, batch_size=4)
    np.testing.assert_allclose(got, brute_force(model, sequences, starts), rtol=1e-5, atol=1e-5)
    assert max(merged) == (1 if window == 6 else 2)  # near the window: one row per pass


def test_bad_arguments_are_refused(llama):
    with pytest.raises(ValueError, match="start=0"):
        continuation_logprobs(llama, [[1, 2]], [0])
    with pytest.raises(ValueError, match="start=3"):
        continuation_logprobs(llama, [[1, 2]], [3])
    with pytest.raises(ValueError, match="starts"):
        continuation_logprobs(llama, [[1, 2]], [1, 1])
    with pytest.raises(ValueError, match="batch_size"):
        continuation_logprobs(llama, [[1, 2]], [1], batch_size=0)


def test_restores_training_mode(llama):
    llama.train()
    try:
        continuation_logprobs(llama, [[1, 2, 3]], [1])
        assert llama.training
    finally:
        llama.eval()
