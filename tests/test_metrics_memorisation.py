"""Memorisation measures on hand-made logits and log-probabilities with known answers, the
trie scorer against brute force, and the membership attacks against sklearn."""

from __future__ import annotations

import itertools
import math
import zlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import norm
from sklearn.metrics import roc_auc_score, roc_curve

from privbias_lib.metrics.memorisation import (
    candidate_logprobs,
    exposure,
    exposure_estimate,
    logprobs_from_logits,
    memorisation_report,
    mia_report,
    mia_scores,
    text_category_sums,
    token_logprobs,
    tpr_at_fpr,
)


class BigramModel(torch.nn.Module):
    """p(x_t | x_<t) = softmax(table[x_{t-1}]): known log-likelihoods for any text."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(self, input_ids, attention_mask=None, **_):
        return SimpleNamespace(logits=self.table[input_ids])


class DigitTokenizer:
    """Texts of space-separated integers are their own token ids."""

    pad_token_id = 0

    def __call__(self, texts, truncation=False, max_length=None, **_):
        ids = [[int(t) for t in text.split()] for text in texts]
        if truncation:
            ids = [x[:max_length] for x in ids]
        return {"input_ids": ids}


def test_logprobs_from_logits_by_hand():
    logits = torch.tensor([[[0.0, math.log(3)], [math.log(2), 0.0], [0.0, 0.0]]])
    ids = torch.tensor([[0, 1, 0]])
    # token 1 after row 0: p = 3/4; token 0 after row 1: p = 2/3
    expected = [math.log(3 / 4), math.log(2 / 3)]
    assert logprobs_from_logits(logits, ids)[0].tolist() == pytest.approx(expected, abs=1e-6)


def test_token_logprobs_of_a_bigram_model_batched_and_padded():
    torch.manual_seed(0)
    table = torch.randn(6, 6)
    model = BigramModel(table)
    texts = ["1 2 3", "4 5 1 2 3 4", "2 2", "5 4 3 2 1"]
    logp = torch.log_softmax(table, -1)
    for batch_size in (1, 3):
        got = token_logprobs(model, DigitTokenizer(), texts, batch_size=batch_size)
        for text, lp in zip(texts, got, strict=True):
            ids = [int(t) for t in text.split()]
            expected = [float(logp[a, b]) for a, b in itertools.pairwise(ids)]
            assert lp.tolist() == pytest.approx(expected, abs=1e-6)
    truncated = token_logprobs(model, DigitTokenizer(), texts, max_length=3)
    assert [len(x) for x in truncated] == [2, 2, 1, 2]


def test_leakage_utility_and_their_pieces_by_hand():
    # two training texts, one test text; labels include the unscored first token and a
    # special token (-1) that belongs to neither set
    lp_train = [np.array([-1.0, -2.0, -3.0]), np.array([-0.5, -0.5])]
    base_train = [np.array([-2.0, -2.0, -4.0]), np.array([-1.5, -1.0])]
    lab_train = [[-1, 1, 0, 1], [0, 1, 0]]
    lp_test = [np.array([-2.0, -1.0, -4.0])]
    base_test = [np.array([-2.5, -1.0, -5.0])]
    lab_test = [[0, 1, 0, -1]]
    train = text_category_sums(lp_train, base_train, lab_train)
    test = text_category_sums(lp_test, base_test, lab_test)
    rep = memorisation_report(train, test)
    # train sensitive tokens: (-1 vs -2), (-3 vs -4), (-0.5 vs -1.5): gains 1, 1, 1
    assert rep["train"]["sensitive"] == pytest.approx(
        {"n_tokens": 3, "loss": 4.5 / 3, "base_loss": 7.5 / 3, "gain": 1.0}
    )
    # train non-sensitive: (-2 vs -2) and (-0.5 vs -1.0): gains 0, 0.5
    assert rep["train"]["non_sensitive"]["gain"] == pytest.approx(0.25)
    # test sensitive: (-2 vs -2.5); non-sensitive: (-1 vs -1); the last token is special
    assert rep["test"]["sensitive"]["gain"] == pytest.approx(0.5)
    assert rep["test"]["non_sensitive"] == pytest.approx(
        {"n_tokens": 1, "loss": 1.0, "base_loss": 1.0, "gain": 0.0}
    )
    assert rep["leakage"] == pytest.approx(0.5)
    assert rep["non_sensitive_memorisation"] == pytest.approx(0.25)
    assert rep["utility_loss"] == pytest.approx(1.0)
    assert rep["utility_perplexity"] == pytest.approx(math.e)


def test_mismatched_labels_are_refused():
    with pytest.raises(ValueError, match="labels cover"):
        text_category_sums([np.zeros(3)], [np.zeros(3)], [[0, 1, 1]])


def test_leakage_bootstrap_interval():
    rng = np.random.default_rng(0)
    n = 40

    def texts(shift):
        lp = [rng.normal(-1 + shift, 0.3, 20) for _ in range(n)]
        base = [rng.normal(-1, 0.3, 20) for _ in range(n)]
        labels = [[0, *rng.integers(0, 2, 20)] for _ in range(n)]
        return text_category_sums(lp, base, labels)

    train, test = texts(0.5), texts(0.0)
    rep = memorisation_report(train, test, bootstrap=500, seed=1)
    lo, hi = rep["leakage_ci"]
    assert 0.3 < lo < rep["leakage"] < hi < 0.7
    assert rep == memorisation_report(train, test, bootstrap=500, seed=1)  # seeded


def test_exact_exposure_by_hand():
    scores = np.array([-1.0, -2.0, -3.0, -4.0])
    assert exposure(-2.0, scores) == pytest.approx(1.0)  # rank 2 of 4
    assert exposure(-1.0, scores) == pytest.approx(2.0)  # the first guess: log2 |R|
    assert exposure(-4.0, scores) == pytest.approx(0.0)  # the last guess
    assert exposure(-1.0, np.array([-1.0, -1.0, -2.0, -3.0])) == pytest.approx(2.0)  # ties
    with pytest.raises(ValueError, match="not among"):
        exposure(-1.5, scores)


def test_exposure_estimate_matches_exact_on_a_normal_space():
    rng = np.random.default_rng(0)
    space = rng.normal(size=2**16)
    secret = np.sort(space)[-64]  # rank 64 of 65536: exposure 10 bits
    exact = exposure(secret, space)
    assert exact == pytest.approx(10.0)
    estimate = exposure_estimate(secret, rng.choice(space, 5000), space.size)
    assert estimate == pytest.approx(exact, abs=0.4)
    # far beyond every candidate the estimate is capped at log2 |R|
    assert exposure_estimate(50.0, space[:100], space.size) == pytest.approx(16.0)
    assert exposure_estimate(0.0, np.array([-1.0, 1.0]), 100) == pytest.approx(
        -math.log2(norm.sf(0.0, 0.0, math.sqrt(2)))
    )


@pytest.mark.slow
def test_trie_scores_equal_brute_force_scores(tiny_llama, smollm2_tokenizer):
    model = tiny_llama(seed=3)
    tok = smollm2_tokenizer
    prefix = "Customer: my PIN is "
    for candidates in (
        ["".join(d) for d in itertools.product("0123456789", repeat=2)],
        ["cat", "dog", "catalog", "dogma", "a dog and a cat"],  # varied token lengths
    ):
        trie = candidate_logprobs(model, tok, prefix, candidates, batch_size=64)
        brute = np.array(
            [lp.sum() for lp in token_logprobs(model, tok, [prefix + c for c in candidates])]
        )
        difference = trie - brute  # the shared leading tokens' log-likelihood, a constant
        assert np.ptp(difference) < 1e-4
        assert np.argmax(trie) == np.argmax(brute)


@pytest.mark.slow
def test_trie_needs_a_shared_context(tiny_llama, smollm2_tokenizer):
    with pytest.raises(ValueError, match="share no leading token"):
        candidate_logprobs(tiny_llama(), smollm2_tokenizer, "", ["cat", "dog"])


def test_mia_scores_by_hand():
    lp = np.array([-1.0, -2.0, -3.0, -4.0, -5.0])
    base = np.array([-2.0, -2.0, -4.0, -4.0, -6.0])
    text = "a sample dialogue"
    row = mia_scores([lp], [base], [text], min_k=0.4).iloc[0]
    assert row["loss"] == pytest.approx(-3.0)
    assert row["min_k"] == pytest.approx(-4.5)  # the lowest 2 of 5
    assert row["reference"] == pytest.approx(-3.0 - -3.6)
    assert row["zlib"] == pytest.approx(-3.0 / len(zlib.compress(text.encode())))
    assert mia_scores([lp], [base], [text], min_k=0.1).iloc[0]["min_k"] == -5.0  # >= 1 token
    with pytest.raises(ValueError, match="min_k"):
        mia_scores([lp], [base], [text], min_k=0)


def test_auc_and_tpr_at_fpr_against_sklearn():
    rng = np.random.default_rng(4)
    member = pd.DataFrame({a: rng.normal(0.5, 1, 300) for a in ("loss", "zlib", "min_k")})
    member["reference"] = np.round(rng.normal(1, 1, 300), 1)  # ties
    nonmember = pd.DataFrame({a: rng.normal(0, 1, 400) for a in member.columns})
    nonmember["reference"] = np.round(nonmember["reference"], 1)
    report = mia_report(member, nonmember, fpr=0.05)
    for attack in member.columns:
        y = np.r_[np.ones(300), np.zeros(400)]
        s = np.r_[member[attack], nonmember[attack]]
        assert report[attack]["auc"] == pytest.approx(roc_auc_score(y, s))
        fpr, tpr, _ = roc_curve(y, s)
        assert report[attack]["tpr_at_fpr"] == pytest.approx(tpr[fpr <= 0.05].max())


def test_tpr_at_fpr_by_hand():
    member, nonmember = [0.9, 0.8, 0.3], [0.85, 0.4, 0.2, 0.1]
    assert tpr_at_fpr(member, nonmember, 0.0) == pytest.approx(1 / 3)  # only 0.9 beats all
    assert tpr_at_fpr(member, nonmember, 0.25) == pytest.approx(2 / 3)  # one false positive
    assert tpr_at_fpr(member, nonmember, 1.0) == 1.0
    assert math.isnan(tpr_at_fpr([], nonmember))
