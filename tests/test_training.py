"""Training engine: configuration checks, early failures, the frozen-bottom cache,
reproducibility, the privacy record, and real fine-tunes that learn."""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import pandas as pd
import pytest
import torch

from privbias_lib.accounting import epsilon
from privbias_lib.training import (
    Full,
    LoRA,
    PrivacyConfig,
    TopLayers,
    TrainConfig,
    predict_proba,
    train_causal_lm,
    train_classifier,
)
from privbias_lib.training.batches import encode_causal, encode_classification
from privbias_lib.training.frozen import TopStack, bottom_states, clear_cache, stack_batch

WORDS = ["good", "bad", "fine", "awful", "great", "poor", "nice", "grim", "calm", "harsh"]


def synthetic(n: int, seed: int = 0) -> pd.DataFrame:
    """Texts whose label is whether a positive word comes first: learnable, not trivial."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        words = list(rng.choice(WORDS, size=6))
        rows.append({"text": " ".join(words), "label": int(WORDS.index(words[0]) % 2 == 0)})
    return pd.DataFrame(rows)


# --- configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target_epsilon": 0}, "target_epsilon=0"),
        ({"target_epsilon": -1.0}, "target_epsilon=-1.0"),
        ({"target_epsilon": 1.0, "noise_multiplier": 1.0}, "exactly one"),
        ({}, "exactly one"),
        ({"noise_multiplier": 1.0, "delta": 1.5}, "delta=1.5"),
        ({"noise_multiplier": 1.0, "max_grad_norm": 0}, "max_grad_norm=0"),
        ({"noise_multiplier": 1.0, "accountant": "moments"}, "accountant='moments'"),
        ({"noise_multiplier": 1.0, "bound_accountant": "edgeworth"}, "bound_accountant"),
        ({"noise_multiplier": 1.0, "grad_sample_mode": "jax"}, "grad_sample_mode"),
    ],
)
def test_privacy_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PrivacyConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size=0"),
        ({"learning_rate": -1e-3}, "learning_rate"),
        ({"optimizer": "lion"}, "optimizer='lion'"),
        ({"epochs": 0}, "epochs=0"),
        ({"validation_metric": "bleu"}, "validation_metric='bleu'"),
        ({"trainable": "lora"}, "trainable='lora'"),
        ({"scheduler": "plateau", "warmup_steps": 3}, "warmup_steps=3"),
        ({"seed": -1}, "seed=-1"),
        ({"device": "gpu0"}, "device='gpu0'"),
    ],
)
def test_train_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_lora_and_top_layers_reject_bad_values():
    with pytest.raises(ValueError, match=r"LoRA\.rank=0"):
        LoRA(rank=0)
    with pytest.raises(ValueError, match=r"LoRA\.target_modules"):
        LoRA(target_modules="query")
    with pytest.raises(ValueError, match=r"TopLayers\.k=-1"):
        TopLayers(k=-1)
    assert TrainConfig(trainable=LoRA(target_modules=["query"])).to_dict()["trainable"] == {
        "kind": "LoRA",
        "rank": 8,
        "alpha": 16.0,
        "dropout": 0.0,
        "target_modules": ("query",),
    }


# --- bad data fails before training ---------------------------------------------------


@pytest.mark.parametrize(
    ("data", "cfg", "match"),
    [
        (synthetic(16).iloc[:0], {}, "train is empty"),
        (synthetic(16).assign(label=1), {}, "only class"),
        (synthetic(16).rename(columns={"label": "y"}), {}, r"lacks column\(s\) \['label'\]"),
        (synthetic(16).assign(label=3), {}, "outside 0..1"),
        (synthetic(16).assign(text=None), {}, "must hold strings"),
        (synthetic(16), {"batch_size": 17}, "larger than the 16 training examples"),
        (synthetic(16), {"trainable": LoRA(target_modules=("q_proj",))}, r"\['q_proj'\] not found"),
        (synthetic(16), {"trainable": TopLayers(k=9)}, "only 3 layers"),
        (synthetic(16), {"early_stopping_patience": 2}, "need validation data"),
    ],
)
def test_bad_classifier_input_fails_before_training(data, cfg, match, tiny_bert, minilm_tokenizer):
    model = tiny_bert()
    before = copy.deepcopy(model.state_dict())
    config = TrainConfig(batch_size=cfg.pop("batch_size", 4), progress=False, **cfg)
    with pytest.raises(ValueError, match=match):
        train_classifier(model, minilm_tokenizer, data, config)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_bad_causal_lm_input_fails_before_training(tiny_llama, smollm2_tokenizer):
    model = tiny_llama()
    cfg = TrainConfig(batch_size=2, progress=False)
    with pytest.raises(ValueError, match="train is empty"):
        train_causal_lm(model, smollm2_tokenizer, [], cfg)
    with pytest.raises(ValueError, match="larger than the 1 training"):
        train_causal_lm(model, smollm2_tokenizer, ["just one text"], cfg)
    with pytest.raises(ValueError, match="validation_metric='auc'"):
        train_causal_lm(
            model,
            smollm2_tokenizer,
            ["a b", "c d"],
            TrainConfig(batch_size=2, validation_metric="auc"),
        )
    with pytest.raises(ValueError, match="lacks the loss-span column"):
        train_causal_lm(
            model,
            smollm2_tokenizer,
            pd.DataFrame({"text": ["a b", "c d"]}),
            cfg,
            loss_spans_column="spans",
        )


# --- the frozen-bottom cache ------------------------------------------------------------


def test_top_stack_on_cached_states_equals_the_full_model(tiny_bert, minilm_tokenizer):
    model = tiny_bert(layers=3)
    data = encode_classification(minilm_tokenizer, synthetic(10)["text"].tolist(), [0] * 10, 32)
    clear_cache()
    states = bottom_states(model, 2, data, batch_size=3)
    again = bottom_states(model, 2, data)
    assert all(a is b for a, b in zip(states, again, strict=True))  # memoised
    texts = synthetic(10)["text"].tolist()
    part = encode_classification(minilm_tokenizer, [texts[7], texts[2]], [1, 1], 32)
    subset = bottom_states(model, 2, part)  # memoised per example: a subset is free
    assert subset[0] is states[7] and subset[1] is states[2]
    idx = list(range(10))
    batch = data.batch(idx)
    batch.pop("labels")
    with torch.no_grad():
        full = model(**batch).logits
        top = TopStack(model, 2).eval()(**stack_batch(states, idx))
        one = TopStack(model, 1).eval()(**stack_batch(bottom_states(model, 1, data), idx))
    torch.testing.assert_close(top, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(one, full, rtol=1e-5, atol=1e-5)
    model.classifier.weight.data += 1  # trainable part changed: cache still valid
    assert bottom_states(model, 2, data)[0] is states[0]
    model.bert.embeddings.word_embeddings.weight.data += 1  # frozen part changed: recompute
    fresh = bottom_states(model, 2, data)
    assert not any(a is b for a, b in zip(states, fresh, strict=True))
    assert not torch.allclose(fresh[0], states[0])


@pytest.mark.parametrize("private", [False, True])
def test_cached_and_uncached_top_layer_training_agree(private, tiny_bert, minilm_tokenizer):
    train, val = synthetic(48, 1), synthetic(24, 2)
    privacy = PrivacyConfig(noise_multiplier=1.0, delta=1e-3) if private else None
    runs = []
    for cache in (True, False):
        cfg = TrainConfig(
            trainable=TopLayers(1, cache_frozen=cache),
            privacy=privacy,
            batch_size=8,
            epochs=2,
            learning_rate=1e-2,
            progress=False,
        )
        model = tiny_bert(dropout=0.1)
        # no dropout in the top (its random masks differ between the two paths, which
        # compute the last layer's first token alone); the bottom keeps dropout 0.1, so
        # the runs agree only if both keep the frozen bottom in eval mode
        for m in [*model.bert.encoder.layer[-1].modules(), model.dropout]:
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        r = train_classifier(model, minilm_tokenizer, train, cfg, validation=val)
        runs.append(r)
    a, b = runs
    np.testing.assert_allclose(a.history.step_loss, b.history.step_loss, rtol=1e-4)
    np.testing.assert_allclose(
        a.history.epochs_frame()["val_auc"], b.history.epochs_frame()["val_auc"], atol=1e-6
    )
    assert a.history.trainable_parameters == b.history.trainable_parameters


# --- reproducibility, privacy record, early stopping -------------------------------------


def _dp_lora_run(tiny_bert, tokenizer, seed=3):
    cfg = TrainConfig(
        trainable=LoRA(rank=4, dropout=0.1),
        seed=seed,
        privacy=PrivacyConfig(target_epsilon=4.0, delta=1e-3),
        batch_size=8,
        epochs=2,
        learning_rate=1e-2,
        progress=False,
    )
    return train_classifier(tiny_bert(dropout=0.1), tokenizer, synthetic(64), cfg)


def test_same_seed_same_losses_and_weights(tiny_bert, minilm_tokenizer):
    a = _dp_lora_run(tiny_bert, minilm_tokenizer)
    b = _dp_lora_run(tiny_bert, minilm_tokenizer)
    assert a.history.step_loss == b.history.step_loss
    assert a.history.batch_sizes == b.history.batch_sizes
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = _dp_lora_run(tiny_bert, minilm_tokenizer, seed=4)
    assert c.history.step_loss != a.history.step_loss


def test_privacy_record_reaches_the_target_and_carries_a_bound(tiny_bert, minilm_tokenizer):
    r = _dp_lora_run(tiny_bert, minilm_tokenizer)
    p = r.privacy
    assert p.q == 8 / 64 and p.steps == p.planned_steps == 16 == r.history.steps
    assert p.sampling == "poisson" and p.accountant == "pld" and p.kind == "upper bound"
    assert 4.0 * (1 - 1e-3) <= p.epsilon <= 4.0
    assert p.epsilon_bound == pytest.approx(epsilon(p.q, p.sigma, 16, 1e-3, "pld"))
    assert p.recompute("rdp") >= p.epsilon_bound
    # Poisson sampling: batch sizes vary around q*N
    assert len(set(r.history.batch_sizes)) > 1
    assert abs(np.mean(r.history.batch_sizes) - 8) < 3


def test_edgeworth_calibration_reports_an_estimate_beside_a_bound(tiny_bert, minilm_tokenizer):
    cfg = TrainConfig(
        trainable=TopLayers(1),
        batch_size=8,
        epochs=1,
        progress=False,
        privacy=PrivacyConfig(target_epsilon=2.0, accountant="edgeworth", delta=1e-3),
    )
    p = train_classifier(tiny_bert(), minilm_tokenizer, synthetic(64), cfg).privacy
    assert p.kind == "estimate" and p.bound_accountant == "pld"
    assert p.epsilon == pytest.approx(2.0, rel=1e-3)
    assert p.epsilon_bound == pytest.approx(epsilon(p.q, p.sigma, p.steps, p.delta, "pld"))


def test_default_delta_is_one_over_n_with_a_warning(tiny_bert, minilm_tokenizer):
    cfg = TrainConfig(
        trainable=TopLayers(1),
        batch_size=8,
        max_steps=2,
        progress=False,
        privacy=PrivacyConfig(noise_multiplier=1.0),
    )
    with pytest.warns(UserWarning, match=r"delta=0.03125 >= 1/N"):
        p = train_classifier(tiny_bert(), minilm_tokenizer, synthetic(32), cfg).privacy
    assert p.delta == 1 / 32 and p.steps == 2


def test_early_stopping_counts_only_steps_taken(tiny_bert, minilm_tokenizer):
    train = synthetic(32)
    val = synthetic(32, 9)
    cfg = TrainConfig(
        trainable=TopLayers(1),
        batch_size=8,
        epochs=30,
        learning_rate=1e-9,
        early_stopping_patience=2,
        validation_metric="loss",
        progress=False,
        privacy=PrivacyConfig(noise_multiplier=2.0, delta=1e-3),
    )
    r = train_classifier(tiny_bert(), minilm_tokenizer, train, cfg, validation=val)
    h, p = r.history, r.privacy
    assert h.stopped_early and len(h.epochs) < 30
    assert p.steps == h.steps == 4 * len(h.epochs) < p.planned_steps == 120
    assert p.epsilon == pytest.approx(epsilon(p.q, 2.0, h.steps, 1e-3, "pld"))


def test_empty_poisson_batches_still_take_a_noisy_step(tiny_bert, minilm_tokenizer):
    cfg = TrainConfig(
        trainable=TopLayers(1),
        batch_size=1,
        max_steps=30,
        progress=False,
        privacy=PrivacyConfig(noise_multiplier=1.0, delta=1e-3),
    )
    model = tiny_bert()
    before = model.classifier.weight.detach().clone()
    r = train_classifier(model, minilm_tokenizer, synthetic(20), cfg)
    assert 0 in r.history.batch_sizes and r.history.steps == 30
    assert math.isnan(r.history.step_loss[r.history.batch_sizes.index(0)])
    assert not torch.equal(before, r.model.classifier.weight)


@pytest.mark.slow
def test_predict_proba_and_loss_spans(tiny_bert, minilm_tokenizer, smollm2_tokenizer):
    probs = predict_proba(tiny_bert(), minilm_tokenizer, ["a", "b c", "d e f"])
    assert probs.shape == (3, 2) and np.allclose(probs.sum(1), 1)
    text = "my card is 4837 2910 ok"
    enc = encode_causal(smollm2_tokenizer, [text], 32, loss_spans=[[(11, 20)]])
    offsets = smollm2_tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    picked = "".join(text[a:b] for (a, b), m in zip(offsets, enc.loss_mask[0], strict=True) if m)
    assert picked.strip() == "4837 2910"


# --- real models learn -------------------------------------------------------------------


@pytest.mark.slow
def test_minilm_learns_redditbias():
    """Top-2 layers of MiniLM on 2,000 RedditBias training comments, 3 epochs."""
    from privbias_lib.data import load_redditbias, stratified_split
    from privbias_lib.models import load_model

    df = stratified_split(
        load_redditbias(), {"train": 0.7, "validation": 0.15, "test": 0.15}, seed=0
    )
    train = df[df["split"] == "train"].sample(2000, random_state=0)
    val = df[df["split"] == "validation"].sample(600, random_state=0)
    torch.manual_seed(0)
    model, tok = load_model("minilm-l6", "classification", num_labels=2, device="cpu")
    cfg = TrainConfig(
        trainable=TopLayers(2),
        batch_size=32,
        epochs=3,
        learning_rate=5e-4,
        max_length=64,
        progress=False,
    )
    r = train_classifier(model, tok, train, cfg, validation=val)
    auc = r.history.epochs[-1]["val_auc"]
    print(f"MiniLM top-2, RedditBias validation AUC = {auc:.3f}")
    assert auc > 0.70


@pytest.mark.slow
def test_smollm2_lowers_its_loss_with_lora():
    from privbias_lib.models import load_model

    model, tok = load_model("smollm2-135m-instruct", "causal-lm", device="cpu")
    texts = [
        f"Order {n}: the parcel for {name} ships from {city} on Monday."
        for n, name, city in [
            (4411, "Ana", "Lyon"),
            (5120, "Bo", "Oslo"),
            (6020, "Cy", "Rome"),
            (7301, "Di", "Graz"),
            (8154, "Ed", "Kyiv"),
            (9930, "Flo", "Bern"),
        ]
    ]
    cfg = TrainConfig(
        trainable=LoRA(rank=8),
        batch_size=3,
        epochs=4,
        learning_rate=3e-3,
        max_length=32,
        progress=False,
    )
    r = train_causal_lm(model, tok, texts, cfg, validation=texts)
    losses = [e["val_loss"] for e in r.history.epochs]
    assert losses[-1] < losses[0] - 0.3
    assert r.history.trainable_parameters < 0.01 * r.history.total_parameters


def test_full_training_changes_every_weight_group(tiny_bert, minilm_tokenizer):
    model = tiny_bert()
    ref = copy.deepcopy(model)
    cfg = TrainConfig(trainable=Full(), batch_size=8, max_steps=2, progress=False)
    r = train_classifier(model, minilm_tokenizer, synthetic(16), cfg)
    assert r.history.trainable_parameters == r.history.total_parameters
    assert not torch.equal(
        r.model.bert.encoder.layer[0].attention.self.query.weight,
        ref.bert.encoder.layer[0].attention.self.query.weight,
    )


def test_physical_chunks_give_the_same_training(tiny_bert, minilm_tokenizer):
    runs = []
    for physical in (None, 3):
        cfg = TrainConfig(
            batch_size=8,
            physical_batch_size=physical,
            max_steps=4,
            learning_rate=1e-2,
            progress=False,
        )
        runs.append(train_classifier(tiny_bert(), minilm_tokenizer, synthetic(32), cfg))
    np.testing.assert_allclose(runs[0].history.step_loss, runs[1].history.step_loss, rtol=1e-5)


@pytest.mark.slow
def test_dp_freezes_gemma_scaled_embedding_and_still_trains(smollm2_tokenizer):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=len(smollm2_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=128,
        sliding_window=16,
        pad_token_id=smollm2_tokenizer.pad_token_id,
    )
    model = Gemma3ForCausalLM(config)
    emb = model.get_input_embeddings().weight.detach().clone()
    cfg = TrainConfig(
        batch_size=2,
        max_steps=2,
        max_length=16,
        progress=False,
        privacy=PrivacyConfig(noise_multiplier=1.0, delta=1e-3),
    )
    texts = ["the cat sat on the mat", "a dog ran in the park", "rain again today", "ok then"]
    r = train_causal_lm(model, smollm2_tokenizer, texts, cfg)
    assert r.history.frozen_for_dp == ["model.embed_tokens"]
    assert torch.equal(r.model.get_input_embeddings().weight, emb)
    assert r.privacy.steps == 2


def test_progress_bar_does_not_flood_logs(tiny_bert, minilm_tokenizer, capfd):
    import ipykernel  # noqa: F401  (other tests import it: still no notebook kernel here)

    from privbias_lib.training.engine import _in_notebook_kernel

    assert not _in_notebook_kernel()  # a log file: one refresh per 30 s, however slow the steps
    cfg = TrainConfig(batch_size=2, max_steps=40, progress=True)
    start = time.monotonic()
    train_classifier(tiny_bert(), minilm_tokenizer, synthetic(16), cfg)
    took = time.monotonic() - start
    err = capfd.readouterr().err
    assert "classifier" in err  # the bar was shown
    # the first and last state, and one line per 30 s between (40 steps refresh 40 times
    # a second on a terminal): the count depends on the machine's speed, not the steps
    assert len(err.replace("\r", "\n").strip().splitlines()) <= 2 + took // 30
