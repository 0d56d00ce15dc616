"""Memorisation measures for causal LMs: per-token log-likelihoods, privacy leakage on
sensitive tokens, canary exposure and membership inference.

Notation. For a text ``x_1..x_T`` and a model ``θ``, ``lp(t) = log p_θ(x_t | x_<t)`` for
``t = 2..T`` (natural log; the first token has no context and is not scored). ``θ_0`` is the
base model before fine-tuning. For a set ``S`` of scored tokens::

    gain(S) = (1/|S|) Σ_{t∈S} [lp(t) - lp_0(t)]          (nats per token, pooled over texts)

**Privacy leakage** = gain(training texts' sensitive tokens) - gain(test texts' sensitive
tokens). Test dialogues carry fresh personal data, so their gain is what fine-tuning on the
domain teaches about personal data in general (formats, common names); the excess on the
training texts is what the model learned about *those* people. This is the quantity
computed (the paper's leave-one-out equation approximates the same comparison by
retraining; we compare with held-out texts instead). The same difference on non-sensitive
tokens is reported as non-sensitive memorisation. **Utility** is the fine-tuned model's
mean loss (and perplexity) on the test texts' non-sensitive tokens.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import norm

from ..scoring import common_prefix_length, continuation_logprobs
from .bias import mwu_fraction

CATEGORIES = ("sensitive", "non_sensitive")
MIA_ATTACKS = ("loss", "zlib", "min_k", "reference")


def logprobs_from_logits(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """``log p(x_t | x_<t)`` for ``t = 2..T`` from logits ``[B, T, V]`` of ids ``[B, T]``:
    a ``[B, T-1]`` tensor (float32 log-softmax)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)


def _device(model, device):
    return torch.device(device) if device is not None else next(model.parameters()).device


@torch.no_grad()
def token_logprobs(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    max_length: int | None = None,
    batch_size: int = 16,
    device=None,
) -> list[np.ndarray]:
    """Per-token log-likelihoods of each text (length ``T-1`` arrays, float64), batched by
    length so padding is small. Tokens are ``tokenizer(text, truncation=max_length is not
    None, max_length=max_length)``, the same as :func:`sensitive_token_labels` gives."""
    texts = list(texts)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} is invalid: allowed >= 1")
    enc = tokenizer(texts, truncation=max_length is not None, max_length=max_length)
    ids = [list(x) for x in enc["input_ids"]]
    dev = _device(model, device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was = model.training
    model.eval()
    out: list[np.ndarray | None] = [None] * len(ids)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(ids[i]) for i in idx)
        x = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            x[r, : len(ids[i])] = torch.tensor(ids[i])
            mask[r, : len(ids[i])] = 1
        x, mask = x.to(dev), mask.to(dev)
        lp = logprobs_from_logits(model(input_ids=x, attention_mask=mask).logits, x)
        lp = lp.double().cpu().numpy()
        for r, i in enumerate(idx):
            out[i] = lp[r, : len(ids[i]) - 1]
    model.train(was)
    return out  # type: ignore[return-value]


def _scored_labels(labels: Sequence[int], n_scored: int) -> np.ndarray:
    """Labels of the scored tokens (``t = 2..T``), checked against the log-prob length."""
    lab = np.asarray(labels[1:], dtype=int)
    if len(lab) != n_scored:
        raise ValueError(
            f"labels cover {len(lab) + 1} tokens but the log-probabilities {n_scored + 1}: "
            "tokenise labels and texts the same way (same tokenizer and max_length)"
        )
    return lab


def text_category_sums(
    logprobs: Sequence[np.ndarray], base_logprobs: Sequence[np.ndarray], labels
) -> pd.DataFrame:
    """One row per text and category: ``n`` scored tokens, ``nll`` and ``base_nll`` summed
    (nats), ``gain`` summed (``Σ lp - lp_0``). Special tokens (label -1) are left out."""
    rows = []
    for i, (lp, lb, lab) in enumerate(zip(logprobs, base_logprobs, labels, strict=True)):
        lp, lb = np.asarray(lp, float), np.asarray(lb, float)
        if lp.shape != lb.shape:
            raise ValueError(f"text {i}: fine-tuned and base log-probs differ in length")
        scored = _scored_labels(lab, len(lp))
        for category, value in (("sensitive", 1), ("non_sensitive", 0)):
            sel = scored == value
            rows.append(
                {
                    "text": i,
                    "category": category,
                    "n": int(sel.sum()),
                    "nll": float(-lp[sel].sum()),
                    "base_nll": float(-lb[sel].sum()),
                    "gain": float((lp[sel] - lb[sel]).sum()),
                }
            )
    return pd.DataFrame(rows)


def _pooled(sums: pd.DataFrame) -> dict[str, dict[str, float]]:
    out = {}
    for category in CATEGORIES:
        part = sums[sums["category"] == category]
        n = part["n"].sum()
        nan = float("nan")
        out[category] = {
            "n_tokens": int(n),
            "loss": float(part["nll"].sum() / n) if n else nan,
            "base_loss": float(part["base_nll"].sum() / n) if n else nan,
            "gain": float(part["gain"].sum() / n) if n else nan,
        }
    return out


def memorisation_report(
    train_sums: pd.DataFrame,
    test_sums: pd.DataFrame,
    *,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Leakage, non-sensitive memorisation and utility (module docstring) with their pieces,
    from :func:`text_category_sums` of the training and the test texts. With
    ``bootstrap > 0``, a percentile interval for leakage and non-sensitive memorisation
    resampling training and test texts independently."""
    train, test = _pooled(train_sums), _pooled(test_sums)
    report = {
        "train": train,
        "test": test,
        "leakage": train["sensitive"]["gain"] - test["sensitive"]["gain"],
        "non_sensitive_memorisation": train["non_sensitive"]["gain"]
        - test["non_sensitive"]["gain"],
        "utility_loss": test["non_sensitive"]["loss"],
        "utility_perplexity": math.exp(test["non_sensitive"]["loss"]),
    }
    if bootstrap:
        rng = np.random.default_rng(seed)
        for name, category in (
            ("leakage", "sensitive"),
            ("non_sensitive_memorisation", "non_sensitive"),
        ):
            tr = train_sums[train_sums["category"] == category]
            te = test_sums[test_sums["category"] == category]
            g_tr, n_tr = tr["gain"].to_numpy(), tr["n"].to_numpy()
            g_te, n_te = te["gain"].to_numpy(), te["n"].to_numpy()
            i = rng.integers(0, len(g_tr), (bootstrap, len(g_tr)))
            j = rng.integers(0, len(g_te), (bootstrap, len(g_te)))
            with np.errstate(invalid="ignore", divide="ignore"):
                reps = g_tr[i].sum(1) / n_tr[i].sum(1) - g_te[j].sum(1) / n_te[j].sum(1)
            reps = reps[np.isfinite(reps)]
            alpha = (1 - level) / 2
            lo, hi = np.quantile(reps, [alpha, 1 - alpha]) if len(reps) else (np.nan, np.nan)
            report[f"{name}_ci"] = (float(lo), float(hi))
    return report


# --- canary exposure ------------------------------------------------------------------------


def exposure(secret_score: float, candidate_scores: np.ndarray) -> float:
    """Exact exposure ``log2 |R| - log2 rank`` (Carlini et al. 2019). ``candidate_scores``
    are the model's log-likelihoods of *every* candidate in the space ``R`` (the secret
    included); rank 1 is the most likely, ties count in the secret's favour (rank = 1 +
    number of candidates strictly more likely)."""
    scores = np.asarray(candidate_scores, float)
    if scores.size == 0:
        raise ValueError("the candidate space is empty")
    if not np.any(np.isclose(scores, secret_score, rtol=0, atol=1e-9)):
        raise ValueError("the secret's score is not among the candidate scores")
    rank = 1 + int(np.sum(scores > secret_score + 1e-9))
    return float(math.log2(scores.size) - math.log2(rank))


def chance_exposure(space_size: int) -> float:
    """Expected exposure of a secret the model has not memorised: its rank uniform on
    ``1..n`` gives ``E[log2 n - log2 rank] = log2 n - log2(n!)/n`` (about ``log2 e`` = 1.44
    bits for large ``n``, by Stirling). Exposures near it show no memorisation."""
    n = int(space_size)
    if n < 1:
        raise ValueError(f"space_size={space_size!r} is invalid: allowed >= 1")
    return float(math.log2(n) - math.lgamma(n + 1) / math.log(2) / n)


def exposure_estimate(secret_score: float, sample_scores: np.ndarray, space_size: int) -> float:
    """Exposure estimated from log-likelihoods of candidates drawn uniformly from a space
    too large to enumerate: fit a normal distribution ``N(μ, s²)`` to the sample and
    estimate ``rank/|R|`` by ``P(score ≥ secret) = Φ((μ - secret)/s)``; exposure =
    ``-log2`` of it, capped at ``log2 |R|`` (rank ≥ 1). Carlini et al.'s extrapolation,
    with a normal instead of a skew-normal fit; it is an estimate, not a bound."""
    sample = np.asarray(sample_scores, float)
    if sample.size < 2:
        raise ValueError("need at least two sampled candidates to fit a distribution")
    mu, s = float(sample.mean()), float(sample.std(ddof=1))
    if s == 0:
        raise ValueError("all sampled candidates have the same score")
    log2_fraction = norm.logsf(secret_score, loc=mu, scale=s) / math.log(2)
    return float(min(-log2_fraction, math.log2(space_size)))


@torch.no_grad()
def candidate_logprobs(
    model,
    tokenizer,
    prefix: str,
    candidates: Sequence[str],
    *,
    batch_size: int = 256,
    device=None,
) -> np.ndarray:
    """Log-likelihood of ``prefix + candidate`` for every candidate, up to a constant
    shared by all (the tokens common to every candidate's tokenisation are not scored),
    so ranking by it is ranking by the full text's likelihood.

    Candidates are scored through a prefix tree of their token sequences
    (:func:`privbias_lib.scoring.continuation_logprobs`): the shared context runs once and
    each distinct proper token prefix once on its parent's key/value cache (1 + 10 + 100 +
    1000 tokens for every 4-digit string instead of 10,000 sequences)."""
    candidates = list(candidates)
    if not candidates:
        raise ValueError("no candidates")
    ids = [list(x) for x in tokenizer([prefix + c for c in candidates])["input_ids"]]
    m = common_prefix_length(ids)
    if m == 0:
        raise ValueError(
            "the candidates share no leading token: give a non-empty prefix (or a tokenizer "
            "that adds a BOS token)"
        )
    return continuation_logprobs(model, ids, [m] * len(ids), batch_size=batch_size, device=device)


# --- membership inference -------------------------------------------------------------------


def mia_scores(
    logprobs: Sequence[np.ndarray],
    base_logprobs: Sequence[np.ndarray],
    texts: Sequence[str],
    *,
    min_k: float = 0.2,
) -> pd.DataFrame:
    """Membership scores per text, higher meaning "more likely a training text":
    ``loss`` = mean lp (the loss attack); ``zlib`` = -(mean NLL) / zlib-compressed bytes
    of the text (Carlini et al. 2021); ``min_k`` = mean of the lowest ``min_k`` fraction
    of lp (at least one token; Shi et al. 2024, Min-K% Prob); ``reference`` = mean lp -
    mean lp_0 (the base model as reference)."""
    if not 0 < min_k <= 1:
        raise ValueError(f"min_k={min_k!r} is invalid: allowed a fraction in (0, 1]")
    rows = []
    for lp, lb, text in zip(logprobs, base_logprobs, texts, strict=True):
        lp, lb = np.asarray(lp, float), np.asarray(lb, float)
        if lp.size == 0:
            raise ValueError("a text has no scored token")
        k = max(1, int(len(lp) * min_k))
        rows.append(
            {
                "loss": lp.mean(),
                "zlib": lp.mean() / len(zlib.compress(text.encode("utf-8"))),
                "min_k": np.sort(lp)[:k].mean(),
                "reference": lp.mean() - lb.mean(),
            }
        )
    return pd.DataFrame(rows, columns=list(MIA_ATTACKS))


def tpr_at_fpr(member: np.ndarray, nonmember: np.ndarray, fpr: float = 0.01) -> float:
    """Largest true-positive rate over thresholds ``score ≥ τ`` whose false-positive rate on
    the non-members is at most ``fpr`` (0 when no threshold qualifies but τ = +∞)."""
    member, nonmember = np.asarray(member, float), np.asarray(nonmember, float)
    if member.size == 0 or nonmember.size == 0:
        return float("nan")
    taus = np.unique(np.concatenate([member, nonmember]))
    false_pos = nonmember.size - np.searchsorted(np.sort(nonmember), taus, side="left")
    true_pos = member.size - np.searchsorted(np.sort(member), taus, side="left")
    allowed = false_pos / nonmember.size <= fpr
    return float(true_pos[allowed].max() / member.size) if allowed.any() else 0.0


def mia_report(member: pd.DataFrame, nonmember: pd.DataFrame, *, fpr: float = 0.01) -> dict:
    """ROC AUC (ties 1/2) and TPR at ``fpr`` for every attack column."""
    return {
        attack: {
            "auc": mwu_fraction(member[attack].to_numpy(), nonmember[attack].to_numpy()),
            "tpr_at_fpr": tpr_at_fpr(member[attack], nonmember[attack], fpr),
        }
        for attack in MIA_ATTACKS
    }
