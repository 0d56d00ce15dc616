"""Every parameter combination that validation accepts runs to the end (issue 23).

For each study, on its smoke profile: every list parameter reduced to each of its single
entries, and the papers' minimal comparison sets. Each point either is refused before any
kernel starts, with a message naming a parameter it changed, or its notebook runs to the end
and writes results.csv, manifest.json and its figures. The notebooks execute in this
process (no kernel start-up) on a copy of the smoke run's store, so only what a point changes
is computed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from notebook_checks import run_in_process, run_smoke

from privbias_lib.params import ParameterError
from privbias_lib.studies import STUDIES

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

# the papers' minimal comparison sets, and lists the smoke profile leaves at their default
MINIMAL = {
    "01_dp_bias": [
        ("one epsilon, no non-private run", {"EPSILONS": [1.0], "INCLUDE_NON_PRIVATE": False}),
        *[(f"GROUPS=[{g!r}]", {"GROUPS": [g], "DIST_GROUP": None})
          for g in ("women", "black", "jewish", "muslim", "lgbtq")],
        ("GROUPS=['black'] with its distribution experiment", {"GROUPS": ["black"]}),
    ],
    "02_ew_tune": [
        ("one accountant, no non-private run",
         {"TRAIN_ACCOUNTANTS": ["edgeworth"], "INCLUDE_NON_PRIVATE": False}),
        ("no training (Part A only)", {"RUN_TRAINING": False}),
    ],
    "03_lora_vs_dp": [
        ("full and LoRA only", {"METHODS": ["full", "lora"]}),
        ("DP-LoRA only", {"METHODS": ["dp_lora"]}),
        ("LoRA and DP-LoRA, one rank", {"METHODS": ["lora", "dp_lora"], "LORA_RANKS": [2]}),
        ("no canary", {"CANARY_REPEATS": []}),
    ],
    "04_bias_transfer": [
        ("one condition, one model", {"CONDITIONS": [{"name": "zero-shot"}]}),
        ("one condition, no sweep",
         {"CONDITIONS": [{"name": "fair", "instruction": "fair"}], "SWEEP_SHOTS": [],
          "SWEEP_PRO_SHARES": []}),
    ],
}  # fmt: skip


def points(key: str) -> list[tuple[str, dict]]:
    """Every list parameter of the smoke profile with more than one entry, reduced to each
    entry in turn; then the minimal sets."""
    out = []
    for name, value in STUDIES[key].resolve("smoke").items():
        if isinstance(value, list) and len(value) > 1:
            out += [(f"{name}=[{v!r}]", {name: [v]}) for v in value]
    unique = {}
    for label, changes in out + MINIMAL[key]:
        unique.setdefault(json.dumps(changes, sort_keys=True), (label, changes))
    return list(unique.values())


CASES = [(key, label, changes) for key in STUDIES for label, changes in points(key)]


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    return {}


@pytest.mark.parametrize(
    ("key", "label", "changes"), CASES, ids=[f"{k}:{label}" for k, label, _ in CASES]
)
def test_a_subset_runs_to_the_end_or_is_refused_by_name(
    key, label, changes, smoke_runs, tmp_path, tmp_path_factory
):
    study = STUDIES[key]
    try:
        parameters = study.resolve("smoke", changes)
        study.check(study.validate({**parameters, "OUTPUT_DIR": str(tmp_path)}))
    except ParameterError as e:
        assert any(name in str(e) for name in changes), f"{label}: {e}"
        pytest.skip(f"refused before the kernel: {str(e)[-200:]}")  # an accepted outcome
    if key not in smoke_runs:
        smoke_runs[key] = run_smoke(study, tmp_path_factory)
    out = run_in_process(study, parameters, tmp_path / "run", store_from=smoke_runs[key])
    manifest = json.loads((out / "manifest.json").read_text())
    results = pd.read_csv(out / "results.csv")
    assert len(results) and {"run", "subgroup", "metric", "value"} <= set(results.columns)
    figures = [name for name in manifest["files"] if name.endswith(".png")]
    assert figures, f"{label}: no figure written"
    for name in figures:
        assert (out / name).stat().st_size > 5000, name
    for name, value in changes.items():
        assert manifest["parameters"][name] == value
    Path(out / "runs").exists()  # the store the next point starts from is this one's copy
