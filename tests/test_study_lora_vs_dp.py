"""Study 3 (LoRA vs DP): parameters, data, the measures of one run, and the notebook end to
end on the smoke profile with papermill."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from notebook_checks import (
    assert_bad_parameter_stops_early,
    profile_params,
    run_smoke,
    smoke_params,
)

from privbias_lib.accounting import epsilon
from privbias_lib.params import ParameterError
from privbias_lib.paths import PROFILES
from privbias_lib.runner import RunSpec, execute_run
from privbias_lib.store import RunStore
from privbias_lib.studies import lora_vs_dp as study
from privbias_lib.tables import readable_number

STUDY = study.STUDY

# --- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_parses_and_validates(name):
    params = profile_params(STUDY, name)
    expected = set(study.METHODS) - ({"dp_full"} if name == "cpu" else set())
    assert set(params.methods) == expected  # cpu: DP full only on request (its header)
    assert params.target_epsilon == 8.0 and 8.0 in params.dp_lora_epsilons


def test_paper_profile_is_the_papers_setting():
    """The paper's models and CustomerSim size, 3 epochs, epsilon 8 with clipping 1 and
    6-digit canaries enumerated exactly — resolved, so that a change of the notebook's
    defaults (the paper profile only overrides some of them) cannot change it silently."""
    p = profile_params(STUDY, "paper")
    assert p.models == [
        "EleutherAI/pythia-1b",
        "google/gemma-2-2b",
        "meta-llama/Llama-3.2-1B",
        "Qwen/Qwen2.5-1.5B",
    ]
    families = ["pythia", "gemma", "llama", "qwen"]  # the paper's model families
    assert all(any(f in m.lower() for m in p.models) for f in families)
    assert all("/" in m for m in p.models)  # hub ids
    assert (p.n_train, p.n_test) == (9000, 1000)  # CustomerSim's 10k dialogues
    assert p.epochs == 3
    assert p.methods == list(study.METHODS)  # DP-LoRA too, as the reviewers asked
    assert (p.target_epsilon, p.max_grad_norm) == (8.0, 1.0)
    assert p.dp_lora_epsilons == [1.0, 8.0, 64.0]  # utility against epsilon
    assert p.trajectory_points >= 5 and p.trajectory_texts >= 100
    assert p.accountant == "pld" and p.bound_accountant == "prv"
    assert p.delta is not None and p.delta < 1 / p.n_train
    assert p.canary_digits == 6 and 10**p.canary_digits <= p.exposure_exact_limit  # exact
    assert p.device == "cuda" and len(p.lora_ranks) >= 3
    assert p.physical_batch_size == 4  # the memory note of the profile's header


def test_notebook_parameters_cell_holds_the_defaults_and_profiles_only_differences():
    """The notebook's parameters cell is the only place defaults are written: it sets every
    parameter and validates; the cpu profile is empty; smoke and paper override only
    parameters that exist, and only with values that differ from the defaults."""
    nb = nbformat.read(STUDY.notebook, as_version=4)
    defaults = STUDY.defaults()
    assert set(defaults) == set(study.LoraVsDpParams.names())
    STUDY.validate(defaults)
    assert STUDY.profile("cpu") == {}
    assert STUDY.resolve("cpu") == {k: v for k, v in defaults.items() if k != "OUTPUT_DIR"}
    for name in ("smoke", "paper"):
        overrides = STUDY.profile(name)
        assert overrides and set(overrides) <= set(defaults) - {"OUTPUT_DIR"}, name
        repeated = {k for k, v in overrides.items() if v == defaults[k]}
        assert not repeated, f"the {name} profile repeats the defaults of {sorted(repeated)}"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize(
    "changes, shown",
    [
        ({"MODELS": []}, []),
        ({"METHODS": ["full", "adapter"]}, ["'adapter'"]),
        ({"LORA_RANKS": [0]}, []),
        ({"LEARNING_RATES": {"full": 1e-4}}, ["lora", "dp_full", "dp_lora"]),
        ({"LEARNING_RATES": {"full": 1e-4, "lora": -1, "dp_full": 1, "dp_lora": 1}}, ["'lora'"]),
        ({"CANARY_REPEATS": [0]}, []),
        ({"CANARY_REPEATS": [1] * 9}, ["at most 8"]),
        ({"BATCH_SIZE": 100}, ["N_TRAIN = 6"]),
        ({"DELTA": 1.5}, []),
        ({"ACCOUNTANT": "moments"}, []),
        ({"BOUND_ACCOUNTANT": "edgeworth"}, []),
        ({"SEEDS": [0, 0]}, ["twice"]),
        ({"MIN_K": 0}, []),
        ({"DEVICE": "tpu"}, []),
        ({"N_TRAIN": "32"}, []),
    ],
)
def test_bad_parameters_are_named(changes, shown):
    """The message names the parameter with its bad value (and what is wrong with it)."""
    with pytest.raises(ParameterError) as err:
        smoke_params(STUDY, **changes)
    message = str(err.value)
    [(name, value)] = changes.items()
    assert f"parameter {name} = {value!r} is invalid" in message
    for part in shown:
        assert part in message


def test_a_classifier_only_model_fails_early():
    params = smoke_params(STUDY, MODELS=["minilm-l6"])
    with pytest.raises(ParameterError, match="MODELS = 'minilm-l6'"):
        STUDY.check(params)


def test_plan_and_configs_follow_the_parameters():
    p = profile_params(STUDY, "cpu")
    runs = study.plan_runs(p)
    assert [r["label"] for r in runs] == [
        "full",
        "lora-r8",
        "dp_lora-r8-eps1",
        "dp_lora-r8-eps8",
        "dp_lora-r8-eps64",
    ]
    configs = {r["label"]: study.train_config(p, r) for r in runs}
    assert {c.epochs for c in configs.values()} == {p.epochs}  # same budget for all
    assert {c.batch_size for c in configs.values()} == {p.batch_size}
    assert configs["full"].privacy is None and configs["lora-r8"].trainable.rank == 8
    for eps in (1, 8, 64):
        dp = configs[f"dp_lora-r8-eps{eps}"].privacy
        assert (dp.target_epsilon, dp.delta, dp.accountant) == (eps, p.delta, "pld")
        assert dp.bound_accountant == "prv" and dp.poisson_sampling
    assert configs["dp_lora-r8-eps8"].learning_rate == p.learning_rates["dp_lora"]
    with_full = study.plan_runs(profile_params(STUDY, "cpu", METHODS=list(study.METHODS)))
    dp_full = next(r for r in with_full if r["label"] == "dp_full")
    assert study.train_config(p, dp_full).privacy.target_epsilon == p.target_epsilon
    # the store's plan: the base model first, then every fine-tuning run in that order
    plan = study.plan(p)
    assert [r.name for r in plan] == [f"{m}/{study.BASE}" for m in p.models] + [
        r["run"] for r in runs
    ]
    assert all(r.model == r.spec["model"] for r in plan)
    assert "train" not in plan[0].config and plan[1].config["train"] == configs["full"].to_dict()


def test_data_has_canaries_and_fresh_test_data():
    p = profile_params(STUDY, "cpu")
    data = study.load_data(p)
    assert len(data.members) == p.n_train and len(data.test) == p.n_test
    assert len(data.train) == p.n_train + sum(p.canary_repeats)
    lines = data.train[data.train.canary_id.notna()]  # the cpu profile's canaries are lines
    assert lines.text.str.startswith("Customer: ").all() and (lines.text.str.count("\n") == 0).all()
    for text, spans in zip(lines.text, lines.spans, strict=True):
        [(start, end, field)] = spans
        assert field == "canary" and text[start:end].isdigit()
    assert data.fingerprint() == study.load_data(p).fingerprint()
    other = profile_params(STUDY, "cpu", DATA_SEED=1)
    assert study.load_data(other).fingerprint() != data.fingerprint()


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


@pytest.mark.slow
@pytest.mark.parametrize("tokenizer", ["smollm2_tokenizer", "gemma3_tokenizer"])
def test_alignment_check_passes_real_tokenizers_and_catches_a_shift(tokenizer, request):
    tok = request.getfixturevalue(tokenizer)
    data = study.load_data(smoke_params(STUDY))
    good = study.alignment_check(tok, data.train)
    assert good["ok"] and good["spans_checked"] == sum(len(s) for s in data.train.spans)
    truncated = study.alignment_check(tok, data.train, max_length=48)
    assert truncated["ok"] and 0 < truncated["spans_checked"] < good["spans_checked"]
    bad = study.alignment_check(ShiftedOffsets(tok), data.train)
    assert not bad["ok"] and bad["spans_not_recovered"] > 0


@pytest.mark.slow
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


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_every_method_has_every_measure(smoke_run):
    params = smoke_params(STUDY)
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


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_trajectories_and_the_matched_comparison_are_written(smoke_run):
    """Every fine-tuning run has its trajectory (step 0 to the last step) and a value at
    each matched-utility level in results.csv; the CSV tables agree with it; the canary
    rows carry the chance level; the verdicts include the matched-utility ones."""
    params = smoke_params(STUDY)
    results = _results(smoke_run)
    labels = [r["label"] for r in study.plan_runs(params)]
    traj = pd.read_csv(smoke_run / "trajectories.csv")
    assert set(traj.label) == set(labels)
    for label, run in traj.groupby("label"):
        steps = run.step.tolist()
        assert steps[0] == 0 and steps == sorted(steps) and len(steps) >= 3, label
        assert run.leakage.iloc[0] == 0
        rows = results[(results.label == label) & results.subgroup.str.startswith("checkpoint/")]
        assert {int(g.split("/")[1]) for g in rows.subgroup} == set(steps)
        last = rows[rows.subgroup == f"checkpoint/{steps[-1]}"].set_index("metric").value
        end = results[(results.label == label) & (results.subgroup == "all")]
        end = end.set_index("metric").value  # the subset is every dialogue in smoke
        assert last["leakage"] == pytest.approx(end["leakage"], abs=1e-9)
        assert last["utility_loss"] == pytest.approx(end["utility_loss"], abs=1e-9)
    matched = pd.read_csv(smoke_run / "matched_utility.csv")
    assert set(matched.share) == set(params.utility_shares)
    assert set(matched.label) == set(labels)
    assert matched[matched.label == "full"].reached.all()  # full defines the levels
    shares = {g for g in results.subgroup if g.startswith("matched/")}
    assert shares == {f"matched/{s:g}" for s in params.utility_shares}
    chance = results[results.metric == "chance_exposure"].value
    assert chance.between(0, math.log2(10**params.canary_digits)).all() and len(chance)
    verdicts = json.loads((smoke_run / "verdicts.json").read_text())
    claims = [v["claim"] for v in verdicts]
    assert any("same utility" in c for c in claims) and any("training budget" in c for c in claims)


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_dp_rows_have_an_epsilon_with_its_bound(smoke_run):
    params = smoke_params(STUDY)
    results = _results(smoke_run)
    private = results[results.method.str.startswith("dp_") & (results.subgroup == "privacy")]
    assert set(private.label) == {"dp_full"} | {
        f"dp_lora-r{params.dp_lora_rank}-eps{e:g}" for e in params.dp_lora_epsilons
    }
    for _, run in private.groupby("label"):
        v = run.set_index("metric").value
        acc = run.set_index("metric").accountant
        assert v["epsilon"] <= v["target_epsilon"] * (1 + 1e-6)
        assert v["target_epsilon"] in {params.target_epsilon, *params.dp_lora_epsilons}
        assert acc["epsilon"].startswith("pld") and acc["epsilon_bound"].startswith("prv")
        assert v["delta"] == params.delta and v["max_grad_norm"] == params.max_grad_norm
        # the bound, recomputed independently from the recorded q, sigma and steps
        recomputed = epsilon(v["sample_rate"], v["noise_multiplier"], int(v["steps"]),
                             v["delta"], "prv")  # fmt: skip
        assert v["epsilon_bound"] == pytest.approx(recomputed, rel=1e-6)
        assert v["epsilon"] <= v["epsilon_bound"] * 1.01
    non_private = results[~results.method.str.startswith("dp_")]
    assert (non_private.subgroup != "privacy").all()
    # the notebook's privacy table: one row per private run, epsilons named by accountant
    table = study.privacy_table(results)
    assert set(table.index.get_level_values("label")) == set(private.label)
    assert table["epsilon by"].str.startswith("pld").all()
    assert table["bound by"].str.startswith("prv").all()


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_masks_line_up_and_the_manifest_is_complete(smoke_run):
    manifest = json.loads((smoke_run / "manifest.json").read_text())
    params = STUDY.resolve("smoke")
    assert {k: v for k, v in manifest["parameters"].items() if k != "OUTPUT_DIR"} == params
    alignment = manifest["alignment"]
    assert alignment["ok"] and alignment["spans_checked"] > 0
    assert alignment["spans_not_recovered"] == 0 and alignment["runs_without_a_value"] == 0
    assert len(manifest["models"][0]["sha256"]) == 64 and len(manifest["data"]["sha256"]) == 64
    assert manifest["runs"] == 1 + len(study.plan_runs(smoke_params(STUDY)))
    assert {
        "results.csv",
        "summary.csv",
        "claim_check.csv",
        "trajectories.csv",
        "matched_utility.csv",
        "matched_differences.csv",
    } <= set(manifest["files"])
    assert {"data", "runs", "results"} <= set(manifest["timings_s"])
    for name in [
        "privacy_utility.png",
        "token_gains.png",
        "exposure.png",
        "trajectories.png",
        "matched_utility.png",
        "utility_vs_epsilon.png",
    ]:
        assert (smoke_run / name).stat().st_size > 10_000


@pytest.mark.notebook
@pytest.mark.slow
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


@pytest.mark.notebook
@pytest.mark.slow
def test_rerun_resumes_with_identical_results(smoke_run, tmp_path):
    import shutil

    copy = tmp_path / "again"
    shutil.copytree(smoke_run, copy)
    (copy / "results.csv").unlink()  # the run is no longer finished: it is executed again
    record = execute_run(RunSpec(STUDY.key, "smoke", str(copy)))
    assert record["status"] == "finished" and record["resumed"], record
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["timings_s"]["runs"] < 5  # nothing retrained
    pd.testing.assert_frame_equal(_results(smoke_run), _results(copy))


@pytest.mark.notebook
def test_a_bad_parameter_stops_the_notebook_in_its_first_cells(tmp_path):
    assert_bad_parameter_stops_early(STUDY, {"LORA_RANKS": [0]}, tmp_path)


@pytest.mark.slow
def test_a_local_model_folder_runs_through_the_hub_code_path(
    tiny_llama, smollm2_tokenizer, tmp_path
):
    """A folder in the hub's format (config, safetensors, tokenizer) loads as a hub id
    would, and every method trains and is measured on it."""
    folder = tmp_path / "tiny-llama"
    tiny_llama(seed=1).save_pretrained(folder)
    smollm2_tokenizer.save_pretrained(folder)
    params = smoke_params(
        STUDY, MODELS=[str(folder)], LORA_RANKS=[4], BOOTSTRAP=50, OUTPUT_DIR=str(tmp_path / "out")
    )
    STUDY.check(params)
    data = study.load_data(params)
    runs = STUDY.execute(params, data, RunStore(tmp_path / "runs"))
    assert [r["label"] for r in runs] == [
        "base",
        "full",
        "lora-r4",
        "dp_full",
        "dp_lora-r8-eps8",
        "dp_lora-r8-eps64",
    ]
    lora = next(r for r in runs if r["label"] == "lora-r4")
    assert 0 < lora["cost"]["trainable_parameters"] < lora["cost"]["total_parameters"]
    table = study.summary_table(STUDY.tidy(params, data, runs))
    assert table.loc[(str(folder), "dp_full"), "epsilon by"].startswith("pld")
    # the same run computed again (not read from the store) gives the same numbers
    dp = next(r for r in runs if r["label"] == "dp_lora-r8-eps8")
    spec = {k: dp[k] for k in ("run", "model", "method", "label", "rank", "seed", "epsilon")}
    base, labels = study.BaseScores(params, data).get(str(folder))
    again = study.train_and_measure(params, spec, data, base, labels)
    assert again["report"] == dp["report"] and again["privacy"] == dp["privacy"]
    assert again["canaries"] == dp["canaries"] and again["mia"] == dp["mia"]
    assert again["trajectory"] == dp["trajectory"]
