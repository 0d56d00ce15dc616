"""Study 4 (bias transfer): parameters, data sampling, scores and measures from a small local
model in the hub's format, and the notebook end to end on the smoke profile."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from notebook_checks import assert_bad_parameter_stops_early, parameters_cell_values, run_smoke

from privbias_lib.experiments import bias_transfer as bt
from privbias_lib.notebook import ParameterError, RunStore
from privbias_lib.studies import PROFILES, STUDIES, load_profile

STUDY = STUDIES["04_bias_transfer"]


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
    return bt.BiasTransferParams.from_mapping(values)


@pytest.mark.parametrize(
    "changes, name",
    [
        ({"TYPES": [3]}, "TYPES"),
        ({"CHAT": "yes"}, "CHAT"),
        ({"CONDITIONS": [{"name": "x", "shots": -1}]}, "CONDITIONS"),
        ({"CONDITIONS": [{"name": "x"}, {"name": "x", "shots": 1}]}, "CONDITIONS"),
        ({"SWEEP_PRO_SHARES": []}, "SWEEP_SHOTS"),
        ({"PAIRS_PER_OCCUPATION": 0}, "PAIRS_PER_OCCUPATION"),
    ],
)
def test_bad_parameters_are_named(changes, name):
    with pytest.raises(ParameterError, match=name):
        params(**changes)


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


def test_pipeline_on_a_local_model(tiny_llama, smollm2_tokenizer, tmp_path):
    folder = tmp_path / "tiny"
    tiny_llama(seed=4).save_pretrained(folder)
    smollm2_tokenizer.save_pretrained(folder)  # with its chat template
    p = params(MODELS=[str(folder)])
    data = bt.load_data(p)
    store = RunStore(tmp_path / "runs")
    scores = bt.run_study(p, data, store, progress=False)
    per_model = scores[str(folder)]
    assert set(per_model) == {bt.INTRINSIC, *[c.name for c in p.all_conditions()]}
    assert all(per_model[c.name]["chat"] for c in p.all_conditions())
    s = np.asarray(per_model["zero-shot"]["scores"])
    assert s.shape == (len(data.items), 2) and np.isfinite(s).all() and (s < 0).all()
    results = bt.measures(p, data, scores)
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
    again = bt.run_study(p, data, store, progress=False)
    assert again[str(folder)]["fair"]["scores"] == per_model["fair"]["scores"]


# --- profiles and the notebook, end to end ---------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_parses_and_validates(name):
    p = bt.BiasTransferParams.from_mapping({**load_profile(STUDY, name), "OUTPUT_DIR": "/x"})
    names = {c.name for c in p.all_conditions()}
    assert {"zero-shot", "few-shot", "fair", "biased"} <= names


def test_paper_profile_uses_the_papers_models_and_all_pairs():
    p = bt.BiasTransferParams.from_mapping({**load_profile(STUDY, "paper"), "OUTPUT_DIR": "/x"})
    assert any("Mistral-7B-Instruct" in m for m in p.models)
    assert any("falcon-7b-instruct" in m for m in p.models)
    assert any("Llama-3-8B-Instruct" in m for m in p.models)
    assert p.pairs_per_occupation is None and p.device == "cuda"


def test_notebook_parameters_cell_holds_the_cpu_profile():
    nb = nbformat.read(STUDY.notebook, as_version=4)
    values = parameters_cell_values(STUDY)
    cpu = load_profile(STUDY, "cpu")
    assert {k: v for k, v in values.items() if k != "OUTPUT_DIR"} == cpu
    assert set(values) == set(bt.BiasTransferParams.names())
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    return run_smoke(STUDY, tmp_path_factory)


def test_smoke_has_every_occupation_condition_and_valid_correlations(smoke_run):
    p = bt.BiasTransferParams.from_mapping({**load_profile(STUDY, "smoke"), "OUTPUT_DIR": "/x"})
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


def test_smoke_manifest_is_complete(smoke_run):
    manifest = json.loads((smoke_run / "manifest.json").read_text())
    params = load_profile(STUDY, "smoke")
    assert {k: v for k, v in manifest["parameters"].items() if k != "OUTPUT_DIR"} == params
    assert manifest["data"]["occupations"] == 40 and len(manifest["data"]["sha256"]) == 64
    assert len(manifest["models"][0]["sha256"]) == 64
    assert {"data", "scoring", "measures"} <= set(manifest["timings_s"])


def test_a_bad_parameter_stops_the_notebook_in_its_first_cells(tmp_path, monkeypatch):
    assert_bad_parameter_stops_early(STUDY, {"CHAT": "sometimes"}, tmp_path, monkeypatch)
