"""DP-SGD correctness: per-sample gradients, clipping, noise, and LoRA under Opacus."""

from __future__ import annotations

import copy
import dataclasses
import itertools

import pandas as pd
import pytest
import torch
from torch import nn

from privbias_lib.training import (
    LoRA,
    PrivacyConfig,
    TrainConfig,
    train_causal_lm,
    train_classifier,
)
from privbias_lib.training.batches import encode_causal, encode_classification
from privbias_lib.training.causal_lm import per_example_nll
from privbias_lib.training.engine import _step, make_private, unwrap

TEXTS = [
    "the nurse said she would be late",
    "a quiet afternoon by the river",
    "he fixed the engine in an hour",
    "they argued about the bill again and again",
    "rain",
    "the developer shipped the release on friday night",
    "my phone number is 555 0142",
    "please send the order to 12 Elm Street",
]
LABELS = [1, 0, 1, 0, 0, 1, 0, 1]


def _classifier_task(tokenizer):
    data = encode_classification(tokenizer, TEXTS, LABELS, 32)

    def loss(m, idx):
        batch = data.batch(idx)
        labels = batch.pop("labels")
        return nn.functional.cross_entropy(m(**batch).logits, labels, reduction="none")

    return loss


def _lm_task(tokenizer):
    data = encode_causal(tokenizer, TEXTS, 32)
    return lambda m, idx: per_example_nll(m, data.batch(idx))


def _no_dropout(model: nn.Module) -> nn.Module:
    # Opacus only records activations in training mode; dropout must not differ
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return model.train()


def _flat_grads(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])


def _dp_summed_grads(
    model, loss, idx, *, physical, mode, max_grad_norm=1e6, sigma=0.0, lengths=None
):
    """Sum of (clipped, noised) per-sample gradients through the engine's DP step."""
    params = [p for p in model.parameters() if p.requires_grad]
    module, opt = make_private(
        model,
        torch.optim.SGD(params, lr=0.0),
        noise_multiplier=sigma,
        max_grad_norm=max_grad_norm,
        expected_batch_size=len(idx),
        mode=mode,
        generator=torch.Generator().manual_seed(0),
    )
    _step(module, opt, loss, idx, physical, mode, lengths)
    grads = _flat_grads(model) * len(idx)
    unwrap(module)
    return grads


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _plain_summed_grads(model, loss, idx):
    model.zero_grad()
    loss(model, idx).sum().backward()
    return _flat_grads(model)


@pytest.mark.parametrize("mode", ["hooks", "functorch", "ghost"])
@pytest.mark.parametrize("arch", ["bert", pytest.param("llama", marks=pytest.mark.slow)])
def test_summed_per_sample_gradients_equal_autograd(arch, mode, request):
    """sigma = 0 and a clipping norm no gradient reaches: DP-SGD's gradient is autograd's,
    also when the logical batch is accumulated over physical chunks."""
    if arch == "bert":
        model = _no_dropout(request.getfixturevalue("tiny_bert")())
        loss = _classifier_task(request.getfixturevalue("minilm_tokenizer"))
    else:  # Opacus's ghost clipping does not support tied weights (tested below)
        model = _no_dropout(request.getfixturevalue("tiny_llama")(tied=mode != "ghost"))
        loss = _lm_task(request.getfixturevalue("smollm2_tokenizer"))
    idx = list(range(len(TEXTS)))
    plain = _plain_summed_grads(copy.deepcopy(model), loss, idx)
    dp = _dp_summed_grads(model, loss, idx, physical=3, mode=mode)
    assert _relative_error(dp, plain) <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hooks", "ghost"])
def test_summed_per_sample_gradients_equal_autograd_on_real_minilm(mode):
    from privbias_lib.models import load_model

    model, tok = load_model("minilm-l6", "classification", num_labels=2, device="cpu")
    model = _no_dropout(model)
    loss = _classifier_task(tok)
    idx = list(range(len(TEXTS)))
    plain = _plain_summed_grads(copy.deepcopy(model), loss, idx)
    dp = _dp_summed_grads(model, loss, idx, physical=4, mode=mode)
    assert _relative_error(dp, plain) <= 1e-4


@pytest.mark.parametrize("mode", ["hooks", "ghost"])
def test_length_sorted_chunks_give_the_unchunked_clipped_sum(mode, tiny_bert, minilm_tokenizer):
    """``length_chunks``: a batch split into chunks of similar length (each padded only to
    its own longest example) gives the same summed clipped gradient as the whole batch."""
    model = _no_dropout(tiny_bert())
    loss = _classifier_task(minilm_tokenizer)
    seen = []

    def recording(m, idx):
        seen.append(list(idx))
        return loss(m, idx)

    lengths = [len(minilm_tokenizer(t)["input_ids"]) for t in TEXTS]
    idx = [6, 1, 4, 7, 0, 3, 5, 2]  # not in length order
    whole = _dp_summed_grads(copy.deepcopy(model), loss, idx, physical=8, mode=mode,
                             max_grad_norm=0.5)  # fmt: skip
    chunked = _dp_summed_grads(copy.deepcopy(model), recording, idx, physical=3, mode=mode,
                               max_grad_norm=0.5, lengths=lengths)  # fmt: skip
    assert _relative_error(chunked, whole) <= 1e-4
    assert sorted(i for chunk in seen for i in chunk) == sorted(idx)  # each example once
    spans = [[lengths[i] for i in chunk] for chunk in seen]
    assert [len(c) for c in seen] == [3, 3, 2]
    assert all(max(a) <= min(b) for a, b in itertools.pairwise(spans))
    assert TrainConfig(batch_size=256, length_chunks=64).physical == 64
    assert "length_chunks" not in TrainConfig(batch_size=256).to_dict()  # earlier run keys


@pytest.mark.parametrize("mode", ["hooks", "ghost"])
def test_clipping_bounds_each_example_and_matches_hand_clipping(mode, tiny_bert, minilm_tokenizer):
    model = _no_dropout(tiny_bert())
    loss = _classifier_task(minilm_tokenizer)
    per_example = []
    for i in range(len(TEXTS)):
        per_example.append(_plain_summed_grads(model, loss, [i]).clone())
    norms = torch.stack([g.norm() for g in per_example])
    c = float(norms.min() + norms.max()) / 2  # some examples get clipped, some not
    assert (norms > c).any() and (norms < c).any()

    expected = sum(g * min(1.0, c / (float(g.norm()) + 1e-6)) for g in per_example)
    got = _dp_summed_grads(
        copy.deepcopy(model), loss, list(range(8)), physical=8, mode=mode, max_grad_norm=c
    )
    assert _relative_error(got, expected) <= 1e-4
    for i in range(len(TEXTS)):  # each example alone: its clipped gradient has norm <= C
        alone = _dp_summed_grads(
            copy.deepcopy(model), loss, [i], physical=1, mode=mode, max_grad_norm=c
        )
        assert float(alone.norm()) <= c * (1 + 1e-5)
        assert float(alone.norm()) == pytest.approx(min(c, float(norms[i])), rel=1e-4)


@pytest.mark.parametrize("mode", ["hooks", "ghost"])
def test_noise_has_the_configured_scale(mode, tiny_bert, minilm_tokenizer):
    """With C tiny, the update is almost pure noise of std sigma*C/B per coordinate."""
    model = _no_dropout(tiny_bert())
    loss = _classifier_task(minilm_tokenizer)
    sigma, c, b = 2.0, 1e-6, 8
    g = (
        _dp_summed_grads(
            model, loss, list(range(b)), physical=b, mode=mode, max_grad_norm=c, sigma=sigma
        )
        / b
    )
    assert float(g.std()) == pytest.approx(sigma * c / b, rel=0.02)


def _frame():
    return pd.DataFrame({"text": TEXTS * 4, "label": LABELS * 4})


def test_dp_lora_changes_only_the_adapters_and_the_merged_model(tiny_bert, minilm_tokenizer):
    base = tiny_bert(dropout=0.1)
    reference = copy.deepcopy(base)
    cfg = TrainConfig(
        trainable=LoRA(rank=4, alpha=8, target_modules=("query", "value")),
        privacy=PrivacyConfig(noise_multiplier=0.5, delta=1e-3),
        batch_size=8,
        epochs=1,
        learning_rate=1e-2,
        progress=False,
    )
    result = train_classifier(base, minilm_tokenizer, _frame(), cfg)
    peft_model = result.model
    lora_b = {n: p for n, p in peft_model.named_parameters() if "lora_B" in n}
    assert lora_b and all(float(p.abs().max()) > 0 for p in lora_b.values())  # init is 0
    before = dict(reference.named_parameters())
    for name, p in peft_model.base_model.model.named_parameters():
        if "lora_" in name or "modules_to_save" in name:
            continue
        plain = name.replace(".base_layer", "").replace(".original_module", "")
        assert torch.equal(p, before[plain]), f"frozen weight {name} changed"
    merged = peft_model.merge_and_unload()
    changed = {n for n, p in merged.named_parameters() if not torch.equal(p, before[n])}
    attention = {n for n in changed if ".attention.self." in n}
    assert attention and all(n.endswith(("query.weight", "value.weight")) for n in attention)
    assert "classifier.weight" in changed
    assert not any("key" in n or "dense" in n or "embeddings" in n for n in changed)
    assert result.privacy.steps == result.history.steps == 4


@pytest.mark.slow
def test_dp_lora_trains_a_causal_lm_and_full_dp_works_with_tied_embeddings(
    tiny_llama, smollm2_tokenizer
):
    texts = TEXTS * 2
    for trainable in (LoRA(rank=4), None):
        model = tiny_llama()
        reference = copy.deepcopy(model)
        cfg = TrainConfig(
            privacy=PrivacyConfig(noise_multiplier=0.3, delta=1e-3, max_grad_norm=1.0),
            batch_size=4,
            epochs=1,
            learning_rate=1e-2,
            max_length=32,
            progress=False,
            **({"trainable": trainable} if trainable else {}),
        )
        result = train_causal_lm(model, smollm2_tokenizer, texts, cfg)
        trained = result.model.merge_and_unload() if trainable else result.model
        emb = trained.get_input_embeddings().weight
        assert trained.lm_head.weight is emb  # still tied
        assert torch.equal(emb, reference.get_input_embeddings().weight) == bool(trainable)
        q = dict(trained.named_parameters())["model.layers.0.self_attn.q_proj.weight"]
        assert not torch.equal(q, reference.model.layers[0].self_attn.q_proj.weight)


@pytest.mark.slow
def test_ghost_clipping_refuses_tied_weights_clearly(tiny_llama, smollm2_tokenizer):
    cfg = TrainConfig(
        batch_size=4,
        max_steps=1,
        progress=False,
        privacy=PrivacyConfig(noise_multiplier=1.0, delta=1e-3, grad_sample_mode="ghost"),
    )
    with pytest.raises(ValueError, match=r"ghost.*tied"):
        train_causal_lm(tiny_llama(), smollm2_tokenizer, TEXTS, cfg)


@pytest.mark.slow
def test_auto_mode_picks_ghost_only_where_it_is_exact_and_faster(
    tiny_bert, tiny_llama, minilm_tokenizer
):
    from privbias_lib.training import choose_grad_sample_mode
    from privbias_lib.training.trainable import apply_lora

    assert choose_grad_sample_mode(tiny_bert()) == "ghost"
    assert choose_grad_sample_mode(tiny_llama(tied=True)) == "hooks"  # ghost can't: tied
    assert choose_grad_sample_mode(tiny_llama(tied=False)) == "ghost"
    lora = apply_lora(tiny_bert(), LoRA(rank=2), task_type="SEQ_CLS")
    assert choose_grad_sample_mode(lora) == "hooks"  # faster for adapters
    df = pd.DataFrame({"text": TEXTS, "label": LABELS})
    cfg = TrainConfig(
        batch_size=4,
        max_steps=2,
        progress=False,
        privacy=PrivacyConfig(noise_multiplier=1.0, delta=1e-3),
    )
    result = train_classifier(tiny_bert(), minilm_tokenizer, df, cfg)
    assert result.history.grad_sample_mode == "ghost"
    assert result.history.summary()["grad_sample_mode"] == "ghost"
    plain = train_classifier(
        tiny_bert(), minilm_tokenizer, df, dataclasses.replace(cfg, privacy=None)
    )
    assert plain.history.grad_sample_mode is None
