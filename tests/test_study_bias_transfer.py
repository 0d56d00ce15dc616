"""Study 4 (bias transfer): parameters, data sampling, scores and measures from a small local
model in the hub's format, and the notebook end to end on the smoke profile."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from notebook_checks import assert_bad_parameter_stops_early, profile_params, run_smoke

from privbias_lib.params import ParameterError
from privbias_lib.paths import PROFILES
from privbias_lib.store import RunStore
from privbias_lib.studies import bias_transfer as bt

STUDY = bt.STUDY


def params(**changes) -> bt.BiasTransferParams:
    values = {
        "OUTPUT_DIR": "/tmp/unused",
        "MODELS": ["smollm2-135m-instruct"],
        "SPLIT": "test",
        "TYPES": [1, 2],
        "PAIRS_PER_OCCUPATION": 1,
        "SAMPLE_SEED": 0,
        "CHAT": "auto",
        "CONDITIONS": [
            {"name": "zero-shot"},
            {"name": "fair", "instruction": "fair"},
            {"name": "few-shot", "shots": 2, "pro_share": 0.5},
        ],
        "SWEEP_SHOTS": [2],
        "SWEEP_PRO_SHARES": [0.0, 0.5, 1.0],
        "FEW_SHOT_SEED": 0,
        "BATCH_SIZE": 8,
        "BOOTSTRAP": 20,
        "DEVICE": None,
        **changes,
    }
    return STUDY.validate(values)


@pytest.mark.parametrize(
    "changes, shown",
    [
        ({"TYPES": [3]}, ["parameter TYPES = [3] is invalid"]),
        ({"CHAT": "yes"}, ["parameter CHAT = 'yes' is invalid"]),
        (
            {"CONDITIONS": [{"name": "x", "shots": -1}]},
            ["parameter CONDITIONS = [{'name': 'x', 'shots': -1}] is invalid", "shots=-1"],
        ),
        (
            {"CONDITIONS": [{"name": "x"}, {"name": "x", "shots": 1}]},
            [
                "parameter CONDITIONS = [{'name': 'x'}, {'name': 'x', 'shots': 1}] is invalid",
                "['x', 'x'] repeat",
            ],
        ),
        ({"SWEEP_PRO_SHARES": []}, ["parameter SWEEP_SHOTS = [2] is invalid", "SWEEP_PRO_SHARES"]),
        ({"PAIRS_PER_OCCUPATION": 0}, ["parameter PAIRS_PER_OCCUPATION = 0 is invalid"]),
    ],
)
def test_bad_parameters_are_named(changes, shown):
    """The message names the parameter with its bad value (and what is wrong with it)."""
    with pytest.raises(ParameterError) as err:
        params(**changes)
    for part in shown:
        assert part in str(err.value)


def test_sweep_adds_conditions_not_already_named():
    names = [c.name for c in params().all_conditions()]
    assert names == ["zero-shot", "fair", "few-shot", "2-shot, 0% pro", "2-shot, 100% pro"]


def test_data_sample_is_both_versions_of_each_pair():
    data = bt.load_data(params())
    assert len(data.pairs) == 40 and len(data.items) == 80
    assert data.pairs.occupation.nunique() == 40  # one pair per gold occupation
    assert set(data.pairs.type) == {1, 2}
    assert set(data.pool.split) == {"dev"}
    assert data.fingerprint() == bt.load_data(params()).fingerprint()


def test_plan_keeps_each_models_runs_together_in_condition_order():
    p = params(MODELS=["a", "b"])
    conditions = [c.name for c in p.all_conditions()]
    plan = bt.plan(p)
    assert [r.name for r in plan] == [
        f"{m}/{c}" for m in ("a", "b") for c in [bt.INTRINSIC, *conditions]
    ]
    assert all(r.model == r.spec["model"] for r in plan)


def test_summary_views_write_each_correlation_with_its_interval():
    index = pd.MultiIndex.from_tuples([("m", bt.INTRINSIC), ("m", "zero-shot")])
    table = pd.DataFrame(
        {
            "accuracy": [np.nan, 0.6],
            "Spearman vs intrinsic": [np.nan, 0.148],
            "Spearman CI low": [np.nan, -0.112],
            "Spearman CI high": [np.nan, 0.366],
            "Pearson vs intrinsic": [np.nan, -0.07],
            "Pearson CI low": [np.nan, -0.2],
            "Pearson CI high": [np.nan, np.nan],
            "Spearman vs share of women": [-0.5, 0.1],
        },
        index=index,
    )
    measures, correlations = bt.summary_views(table)
    assert list(measures.columns) == ["accuracy"]
    assert correlations.loc[("m", "zero-shot")].tolist() == [
        "+0.15 [-0.11, +0.37]",
        "-0.07 [no interval]",
        0.1,
    ]
    assert correlations.loc[("m", bt.INTRINSIC)].tolist()[:2] == ["—", "—"]
    # BOOTSTRAP = 0: no interval columns at all
    _, correlations = bt.summary_views(table.drop(columns=[c for c in table if " CI " in c]))
    assert correlations.loc[("m", "zero-shot")].tolist()[:2] == [
        "+0.15 [no interval]",
        "-0.07 [no interval]",
    ]


@pytest.mark.slow
def test_pipeline_on_a_local_model(tiny_llama, smollm2_tokenizer, tmp_path):
    folder = tmp_path / "tiny"
    tiny_llama(seed=4).save_pretrained(folder)
    smollm2_tokenizer.save_pretrained(folder)  # with its chat template
    p = params(MODELS=[str(folder)])
    data = bt.load_data(p)
    store = RunStore(tmp_path / "runs")
    records = STUDY.execute(p, data, store)
    plan = bt.plan(p)
    assert len(records) == len(plan)  # one payload per run, in plan order
    per_model = {run.spec["run"]: r for run, r in zip(plan, records, strict=True)}
    assert {run.spec["model"] for run in plan} == {str(folder)}
    assert set(per_model) == {bt.INTRINSIC, *[c.name for c in p.all_conditions()]}
    assert all(per_model[c.name]["chat"] for c in p.all_conditions())
    assert len(per_model[bt.INTRINSIC]["male_ll"]) == len(data.pairs)
    s = np.asarray(per_model["zero-shot"]["scores"])
    assert s.shape == (len(data.items), 2) and np.isfinite(s).all() and (s < 0).all()
    results = STUDY.tidy(p, data, records)
    # the tidy table is the measures of the payloads mapped to their model and run
    pd.testing.assert_frame_equal(results, bt.measures(p, data, {str(folder): per_model}))
    assert (
        results.value[results.metric.str.startswith(("spearman", "pearson"))]
        .dropna()
        .between(-1, 1)
        .all()
    )
    assert results.value[results.metric.str.startswith("rpa")].between(-1, 1).all()
    table = bt.summary_table(results)
    assert (str(folder), "zero-shot") in table.index
    measures, correlations = bt.summary_views(table)
    assert list(measures.index) == list(table.index) == list(correlations.index)
    assert len(measures.columns) + 3 * len(correlations.columns) - 2 == len(table.columns)
    assert correlations.loc[(str(folder), bt.INTRINSIC), "Pearson vs intrinsic [95% CI]"] == "—"
    # stored scores are reused: a second run reads them back unchanged
    again = STUDY.execute(p, data, store)
    fair = next(i for i, run in enumerate(plan) if run.spec["run"] == "fair")
    assert again[fair]["scores"] == per_model["fair"]["scores"]


# --- profiles and the notebook, end to end ---------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_parses_and_validates(name):
    p = profile_params(STUDY, name)
    names = {c.name for c in p.all_conditions()}
    assert {"zero-shot", "few-shot", "fair", "biased"} <= names


def test_paper_profile_is_the_papers_setting():
    """The paper's instruction-tuned models (Llama-3-70B left out, as the profile's header
    says) on every WinoBias test pair of both types, every condition of the paper and the
    sweep of shots and pro shares — resolved, so that a change of the notebook's defaults
    (the paper profile only overrides some of them) cannot change it silently."""
    p = profile_params(STUDY, "paper")
    assert p.models == [
        "mistralai/Mistral-7B-Instruct-v0.3",
        "tiiuae/falcon-7b-instruct",
        "meta-llama/Meta-Llama-3-8B-Instruct",
    ]
    assert (p.split, p.types, p.pairs_per_occupation) == ("test", [1, 2], None)  # every pair
    assert p.chat == "auto" and p.device == "cuda"
    # zero- and few-shot, with a fair or a biased instruction (few-shot fair: the 4.16% A-SB)
    named = {(c["name"], c.get("shots", 0) > 0, c.get("instruction")) for c in p.conditions}
    assert named == {
        ("zero-shot", False, None),
        ("few-shot", True, None),
        ("fair", False, "fair"),
        ("fair few-shot", True, "fair"),
        ("biased", False, "biased"),
    }
    # the few-shot count and the stereotypical mix varied: every pair of the sweep is run
    assert p.sweep_shots == [1, 2, 4, 8]
    assert p.sweep_pro_shares == [0.0, 0.25, 0.5, 0.75, 1.0]
    settings = {(c.shots, c.pro_share) for c in p.all_conditions() if c.instruction is None}
    assert {(k, s) for k in p.sweep_shots for s in p.sweep_pro_shares} <= settings
    data = bt.load_data(p)
    assert len(data.pairs) == 790 and data.pairs.occupation.nunique() == 40
    assert set(data.pairs.type) == {1, 2} and len(data.items) == 2 * len(data.pairs)


def test_notebook_parameters_cell_holds_the_defaults_and_profiles_only_differences():
    """The notebook's parameters cell is the only place defaults are written: it sets every
    parameter and validates; the cpu profile is empty; smoke and paper override only
    parameters that exist, and only with values that differ from the defaults."""
    nb = nbformat.read(STUDY.notebook, as_version=4)
    defaults = STUDY.defaults()
    assert set(defaults) == set(bt.BiasTransferParams.names())
    STUDY.validate(defaults)
    assert STUDY.profile("cpu") == {}
    assert STUDY.resolve("cpu") == {k: v for k, v in defaults.items() if k != "OUTPUT_DIR"}
    for name in ("smoke", "paper"):
        overrides = STUDY.profile(name)
        assert overrides and set(overrides) <= set(defaults) - {"OUTPUT_DIR"}, name
        repeated = {k for k, v in overrides.items() if v == defaults[k]}
        assert not repeated, f"the {name} profile repeats the defaults of {sorted(repeated)}"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    return run_smoke(STUDY, tmp_path_factory)


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_has_every_occupation_condition_and_valid_correlations(smoke_run):
    p = profile_params(STUDY, "smoke")
    results = pd.read_csv(smoke_run / "results.csv")
    osb = results[results.metric == "osb"]
    names = [c.name for c in p.all_conditions()]
    assert set(results.condition) == {bt.INTRINSIC, *names}
    for condition, part in osb.groupby("condition"):
        assert part.subgroup.nunique() == 40, condition  # all 40 occupations
        assert part.value.between(-1, 1).all()
    corr = results[results.metric.isin(["spearman", "pearson"])]
    assert len(corr) == 2 * len(names) and corr.value.dropna().between(-1, 1).all()
    rpa = results[results.metric == "rpa"]
    assert len(rpa) == len(names) and rpa.value.between(0, 1).all()
    table = pd.read_csv(smoke_run / "summary.csv")
    assert set(table.condition) == {bt.INTRINSIC, *names}
    for name in ["intrinsic_vs_prompted.png", "prompt_sweep.png"]:
        assert (smoke_run / name).stat().st_size > 10_000


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_manifest_is_complete(smoke_run):
    manifest = json.loads((smoke_run / "manifest.json").read_text())
    params = STUDY.resolve("smoke")
    assert {k: v for k, v in manifest["parameters"].items() if k != "OUTPUT_DIR"} == params
    assert manifest["data"]["occupations"] == 40 and len(manifest["data"]["sha256"]) == 64
    assert len(manifest["models"][0]["sha256"]) == 64
    assert {"data", "runs", "results"} <= set(manifest["timings_s"])
    assert manifest["runs"] == len(bt.plan(profile_params(STUDY, "smoke")))


@pytest.mark.notebook
def test_a_bad_parameter_stops_the_notebook_in_its_first_cells(tmp_path):
    assert_bad_parameter_stops_early(STUDY, {"CHAT": "sometimes"}, tmp_path)
