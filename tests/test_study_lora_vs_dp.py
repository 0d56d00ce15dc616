"""Study 3 (LoRA vs DP): parameters, data, the measures of one run, and the notebook end to
end on the smoke profile with papermill."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from notebook_checks import assert_bad_parameter_stops_early, parameters_cell_values, run_smoke

from privbias_lib.accounting import epsilon
from privbias_lib.experiments import lora_vs_dp as study
from privbias_lib.notebook import ParameterError, readable_number
from privbias_lib.studies import PROFILES, STUDIES, execute, load_profile

STUDY = STUDIES["03_lora_vs_dp"]


def profile(name: str, **changes) -> dict:
    return {**load_profile(STUDY, name), "OUTPUT_DIR": "/tmp/unused", **changes}


# --- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_parses_and_validates(name):
    params = study.LoraVsDpParams.from_mapping(profile(name))
    assert set(params.methods) == set(study.METHODS)
    assert params.target_epsilon == 8.0


def test_paper_profile_is_the_papers_setup():
    p = study.LoraVsDpParams.from_mapping(profile("paper"))
    families = ["pythia", "gemma", "llama", "qwen"]
    assert all(any(f in m.lower() for m in p.models) for f in families)
    assert all("/" in m for m in p.models)  # hub ids
    assert p.n_train + p.n_test == 10_000  # CustomerSim's size
    assert p.device == "cuda" and len(p.lora_ranks) >= 3
    assert 10**p.canary_digits <= p.exposure_exact_limit  # exposure stays exact


def test_notebook_parameters_cell_holds_the_cpu_profile():
    nb = nbformat.read(STUDY.notebook, as_version=4)
    values = parameters_cell_values(STUDY)
    cpu = load_profile(STUDY, "cpu")
    assert {k: v for k, v in values.items() if k != "OUTPUT_DIR"} == cpu
    assert set(values) == set(study.LoraVsDpParams.names())
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize(
    "changes, name",
    [
        ({"MODELS": []}, "MODELS"),
        ({"METHODS": ["full", "adapter"]}, "METHODS"),
        ({"LORA_RANKS": [0]}, "LORA_RANKS"),
        ({"LEARNING_RATES": {"full": 1e-4}}, "LEARNING_RATES"),
        ({"LEARNING_RATES": {"full": 1e-4, "lora": -1, "dp_full": 1, "dp_lora": 1}}, "lora"),
        ({"CANARY_REPEATS": [0]}, "CANARY_REPEATS"),
        ({"CANARY_REPEATS": [1] * 9}, "CANARY_REPEATS"),
        ({"BATCH_SIZE": 100}, "BATCH_SIZE"),
        ({"DELTA": 1.5}, "DELTA"),
        ({"ACCOUNTANT": "moments"}, "ACCOUNTANT"),
        ({"BOUND_ACCOUNTANT": "edgeworth"}, "BOUND_ACCOUNTANT"),
        ({"SEEDS": [0, 0]}, "SEEDS"),
        ({"MIN_K": 0}, "MIN_K"),
        ({"DEVICE": "tpu"}, "DEVICE"),
        ({"N_TRAIN": "32"}, "N_TRAIN"),
    ],
)
def test_bad_parameters_are_named(changes, name):
    with pytest.raises(ParameterError, match=name):
        study.LoraVsDpParams.from_mapping(profile("smoke", **changes))


def test_a_classifier_only_model_fails_early():
    params = study.LoraVsDpParams.from_mapping(profile("smoke", MODELS=["minilm-l6"]))
    with pytest.raises(ParameterError, match="MODELS"):
        study.fail_early(params)


def test_plan_and_configs_follow_the_parameters():
    p = study.LoraVsDpParams.from_mapping(profile("cpu"))
    runs = study.plan_runs(p)
    assert [r["label"] for r in runs] == [
        "full", "lora-r2", "lora-r8", "lora-r32", "dp_full", "dp_lora-r8"
    ]  # fmt: skip
    configs = {r["label"]: study.train_config(p, r) for r in runs}
    assert {c.epochs for c in configs.values()} == {p.epochs}  # same budget for all
    assert {c.batch_size for c in configs.values()} == {p.batch_size}
    assert configs["full"].privacy is None and configs["lora-r32"].trainable.rank == 32
    dp = configs["dp_lora-r8"].privacy
    assert (dp.target_epsilon, dp.delta, dp.accountant) == (8.0, p.delta, "pld")
    assert dp.bound_accountant == "prv" and dp.poisson_sampling
    assert configs["dp_full"].learning_rate == p.learning_rates["dp_full"]


def test_data_has_canaries_and_fresh_test_data():
    p = study.LoraVsDpParams.from_mapping(profile("cpu"))
    data = study.build_data(p)
    assert len(data.members) == p.n_train and len(data.test) == p.n_test
    assert len(data.train) == p.n_train + sum(p.canary_repeats)
    assert data.fingerprint() == study.build_data(p).fingerprint()
    other = study.LoraVsDpParams.from_mapping(profile("cpu", DATA_SEED=1))
    assert study.build_data(other).fingerprint() != data.fingerprint()


class ShiftedOffsets:
    """A tokenizer whose offset mapping is off by one token (a broken alignment)."""

    def __init__(self, tok):
        self.tok = tok

    def __call__(self, texts, **kw):
        enc = self.tok(texts, **kw)
        if "offset_mapping" in enc:
            enc["offset_mapping"] = [[(0, 0), *m[:-1]] for m in enc["offset_mapping"]]
        return enc

    def decode(self, ids):
        return self.tok.decode(ids)


@pytest.mark.parametrize("tokenizer", ["smollm2_tokenizer", "gemma3_tokenizer"])
def test_alignment_check_passes_real_tokenizers_and_catches_a_shift(tokenizer, request):
    tok = request.getfixturevalue(tokenizer)
    data = study.build_data(study.LoraVsDpParams.from_mapping(profile("smoke")))
    good = study.alignment_check(tok, data.train)
    assert good["ok"] and good["spans_checked"] == sum(len(s) for s in data.train.spans)
    truncated = study.alignment_check(tok, data.train, max_length=48)
    assert truncated["ok"] and 0 < truncated["spans_checked"] < good["spans_checked"]
    bad = study.alignment_check(ShiftedOffsets(tok), data.train)
    assert not bad["ok"] and bad["spans_not_recovered"] > 0


def test_highlighted_tokens_are_escaped_and_marked(smollm2_tokenizer):
    text = "Name: <Ann> & Bo\nCard 4111"
    spans = [(text.index("<Ann>"), text.index("<Ann>") + 5, "name")]
    tokens = study.highlight_tokens(smollm2_tokenizer, text, spans)
    page = study.highlight_html(tokens)
    assert page.count('<span style="display:inline-block') == len(tokens)
    assert "&lt;" in page and "<Ann>" not in page and "&amp;" in page
    assert "\N{RETURN SYMBOL}" in page and "\n" not in page
    sensitive = page.count("background:#fcc") - 1  # one in the legend
    assert sensitive == (tokens.label == "sensitive").sum() > 0


def test_summary_cells_read_without_spurious_decimals():
    cells = [134515008.0, 2646.6758, 0.31812, -0.0047, 20, "pld (upper bound)", True]
    shown = [readable_number(v) for v in cells]
    assert shown == ["134,515,008", "2,647", "0.3181", "-0.0047", "20", "pld (upper bound)", "True"]


# --- the notebook, end to end ----------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    return run_smoke(STUDY, tmp_path_factory)


def _results(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "results.csv", keep_default_na=False, na_values=[""])


def test_smoke_every_method_has_every_measure(smoke_run):
    params = study.LoraVsDpParams.from_mapping(profile("smoke"))
    results = _results(smoke_run)
    labels = [r["label"] for r in study.plan_runs(params)]
    assert set(results.label) == {*labels, study.BASE}
    needed = {
        ("all", "leakage"), ("all", "leakage_ci_low"), ("all", "leakage_ci_high"),
        ("all", "utility_loss"), ("all", "non_sensitive_memorisation"),
        ("train/sensitive", "gain"), ("test/sensitive", "gain"),
        ("train/non_sensitive", "gain"), ("test/non_sensitive", "loss"),
        ("canary/1x", "exposure"),
        *[(f"mia/{a}", m) for a in ("loss", "zlib", "min_k", "reference")
          for m in ("auc", "tpr_at_fpr")],
        ("cost", "seconds_per_step"), ("cost", "peak_memory_mb"),
        ("cost", "trainable_parameters"), ("cost", "wall_time_s"),
    }  # fmt: skip
    for label in labels:
        mine = results[results.label == label]
        have = set(zip(mine.subgroup, mine.metric, strict=True))
        assert needed <= have, (label, needed - have)
        assert mine[mine.subgroup != "privacy"].value.notna().all(), label
    assert results[results.metric == "auc"].value.between(0, 1).all()
    exposure = results[results.metric == "exposure"]
    assert exposure.value.between(0, math.log2(10**params.canary_digits) + 1e-9).all()
    assert (exposure.accountant == "exact").all()
    base = results[(results.label == study.BASE) & (results.subgroup == "all")]
    assert base.set_index("metric").value["leakage"] == 0.0  # the base model against itself


def test_smoke_dp_rows_have_an_epsilon_with_its_bound(smoke_run):
    params = study.LoraVsDpParams.from_mapping(profile("smoke"))
    results = _results(smoke_run)
    private = results[results.method.str.startswith("dp_") & (results.subgroup == "privacy")]
    assert set(private.label) == {"dp_full", f"dp_lora-r{params.dp_lora_rank}"}
    for _, run in private.groupby("label"):
        v = run.set_index("metric").value
        acc = run.set_index("metric").accountant
        assert v["epsilon"] <= params.target_epsilon * (1 + 1e-6)
        assert acc["epsilon"].startswith("pld") and acc["epsilon_bound"].startswith("prv")
        assert v["delta"] == params.delta and v["max_grad_norm"] == params.max_grad_norm
        # the bound, recomputed independently from the recorded q, sigma and steps
        recomputed = epsilon(v["sample_rate"], v["noise_multiplier"], int(v["steps"]),
                             v["delta"], "prv")  # fmt: skip
        assert v["epsilon_bound"] == pytest.approx(recomputed, rel=1e-6)
        assert v["epsilon"] <= v["epsilon_bound"] * 1.01
    non_private = results[~results.method.str.startswith("dp_")]
    assert (non_private.subgroup != "privacy").all()


def test_smoke_masks_line_up_and_the_manifest_is_complete(smoke_run):
    manifest = json.loads((smoke_run / "manifest.json").read_text())
    params = load_profile(STUDY, "smoke")
    assert {k: v for k, v in manifest["parameters"].items() if k != "OUTPUT_DIR"} == params
    alignment = manifest["data"]["alignment"]
    assert alignment["ok"] and alignment["spans_checked"] > 0
    assert alignment["spans_not_recovered"] == 0 and alignment["runs_without_a_value"] == 0
    assert len(manifest["models"][0]["sha256"]) == 64 and len(manifest["data"]["sha256"]) == 64
    assert manifest["runs"] == 1 + len(
        study.plan_runs(study.LoraVsDpParams.from_mapping(profile("smoke")))
    )
    assert {"results.csv", "summary.csv", "claim_check.csv"} <= set(manifest["files"])
    for name in ["privacy_utility.png", "token_gains.png", "exposure.png"]:
        assert (smoke_run / name).stat().st_size > 10_000


def test_smoke_full_fine_tuning_leaks_more_than_dp(smoke_run):
    """Even a few steps show the ordering the study is about: full fine-tuning gains
    more on its training customers' data than on fresh customers'; DP-SGD at epsilon 8
    barely moves."""
    table = pd.read_csv(smoke_run / "summary.csv").set_index("label")
    leak = table["leakage (nats/token)"]
    assert leak["full"] > 0.1 and abs(leak["dp_full"]) < 0.05
    assert leak["full"] > leak["dp_full"]
    claims = pd.read_csv(smoke_run / "claim_check.csv")
    assert set(claims.LoRA) == {"lora-r2", "lora-r8"}


def test_rerun_resumes_with_identical_results(smoke_run, tmp_path):
    import shutil

    copy = tmp_path / "again"
    shutil.copytree(smoke_run, copy)
    (copy / "results.csv").unlink()
    execute(STUDY, "smoke", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["timings_s"]["runs"] < 5  # nothing retrained
    pd.testing.assert_frame_equal(_results(smoke_run), _results(copy))


def test_a_bad_parameter_stops_the_notebook_in_its_first_cells(tmp_path, monkeypatch):
    assert_bad_parameter_stops_early(STUDY, {"LORA_RANKS": [0]}, tmp_path, monkeypatch)


def test_a_local_model_folder_runs_through_the_hub_code_path(
    tiny_llama, smollm2_tokenizer, tmp_path
):
    """A folder in the hub's format (config, safetensors, tokenizer) loads as a hub id
    would, and every method trains and is measured on it."""
    from privbias_lib.notebook import RunStore

    folder = tmp_path / "tiny-llama"
    tiny_llama(seed=1).save_pretrained(folder)
    smollm2_tokenizer.save_pretrained(folder)
    params = study.LoraVsDpParams.from_mapping(
        profile("smoke", MODELS=[str(folder)], LORA_RANKS=[4], BOOTSTRAP=50,
                OUTPUT_DIR=str(tmp_path / "out"))
    )  # fmt: skip
    study.fail_early(params)
    data = study.build_data(params)
    runs = study.run_study(params, data, RunStore(tmp_path / "runs"), progress=False)
    assert [r["label"] for r in runs] == ["base", "full", "lora-r4", "dp_full", "dp_lora-r8"]
    lora = next(r for r in runs if r["label"] == "lora-r4")
    assert 0 < lora["cost"]["trainable_parameters"] < lora["cost"]["total_parameters"]
    table = study.summary_table(study.tidy_results(runs))
    assert table.loc[(str(folder), "dp_full"), "epsilon by"].startswith("pld")
    # the same run computed again (not read from the store) gives the same numbers
    dp = next(r for r in runs if r["label"] == "dp_lora-r8")
    spec = {k: dp[k] for k in ("run", "model", "method", "label", "rank", "seed")}
    base, labels = study.BaseScores(params, data).get(str(folder))
    again = study.train_and_measure(params, spec, data, base, labels)
    assert again["report"] == dp["report"] and again["privacy"] == dp["privacy"]
    assert again["canaries"] == dp["canaries"] and again["mia"] == dp["mia"]
