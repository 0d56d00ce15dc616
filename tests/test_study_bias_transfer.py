"""Study 4's pipeline (the notebook is not built yet): parameters, data sampling, and scores
and measures from a small local model in the hub's format."""

from __future__ import annotations

import numpy as np
import pytest

from privbias_lib.experiments import bias_transfer as bt
from privbias_lib.notebook import ParameterError, RunStore


def params(**changes) -> bt.BiasTransferParams:
    values = {
        "OUTPUT_DIR": "/tmp/unused",
        "MODELS": ["smollm2-135m-instruct"],
        "SPLIT": "test",
        "TYPES": [1, 2],
        "MAX_PAIRS_PER_TYPE": 12,
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
        ({"MAX_PAIRS_PER_TYPE": 3}, "MAX_PAIRS_PER_TYPE"),
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
    assert len(data.pairs) == 24 and len(data.items) == 48
    assert sorted(data.pairs.type.value_counts().tolist()) == [12, 12]
    assert set(data.pool.split) == {"dev"}
    assert data.fingerprint() == bt.load_data(params()).fingerprint()


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
    # stored scores are reused: a second run reads them back unchanged
    again = bt.run_study(p, data, store, progress=False)
    assert again[str(folder)]["fair"]["scores"] == per_model["fair"]["scores"]
