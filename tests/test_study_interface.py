"""The shared shape of a study: the interface with the book's example, parameters from one
source (the notebook), the one run loop and its key policy, and the notebook contract
checked for every registered study."""

from __future__ import annotations

import json
import re
import sys
import types

import nbformat
import pandas as pd
import pytest

from privbias_lib.params import ParameterError
from privbias_lib.store import RunStore
from privbias_lib.studies import STUDIES, find_study
from privbias_lib.study import ROOT, Study, StudyRun

EXAMPLE_PAGE = ROOT / "book" / "adding_a_study.md"


def _example() -> dict:
    """The "Adding a study" page's code, executed: its namespace."""
    code = re.search(r"```python\n(.*?)```", EXAMPLE_PAGE.read_text(), re.S).group(1)
    assert len(code.splitlines()) < 50
    module = types.ModuleType("adding_a_study_example")  # as if it were a study's module
    sys.modules[module.__name__] = module
    exec(compile(code, str(EXAMPLE_PAGE), "exec"), module.__dict__)
    return module.__dict__


def test_the_books_example_study_runs_resumes_and_tidies(tmp_path):
    study = _example()["STUDY"]
    assert isinstance(study, Study)
    params = study.validate({"OUTPUT_DIR": str(tmp_path), "SIGMAS": [0.8, 1.0, 2.0], "STEPS": 100})
    data = study.load_data(params)
    store = RunStore(tmp_path / "runs")
    records = study.execute(params, data, store)
    eps = [r["epsilon"] for r in records]
    assert eps == sorted(eps, reverse=True) and all(e > 0 for e in eps)  # more noise, less eps
    assert len(store) == 3

    calls = []
    original = type(study).compute
    type(study).compute = lambda self, *a: calls.append(a) or original(self, *a)
    try:
        again = study.execute(params, data, store)  # everything stored: nothing computed
        more = study.validate({**params.to_dict(), "SIGMAS": [0.8, 1.0, 2.0, 4.0]})
        study.execute(more, data, store)  # only the new run is computed
    finally:
        type(study).compute = original
    assert again == records and len(calls) == 1 and calls[0][2].name == "sigma=4"
    table = study.tidy(params, data, records)
    assert list(table.columns) == ["run", "subgroup", "metric", "value"]
    with pytest.raises(ParameterError, match=r"SIGMAS = \[1.0, -1\] is invalid: entry 1"):
        study.validate({"OUTPUT_DIR": "x", "SIGMAS": [1.0, -1], "STEPS": 100})


def test_a_study_run_writes_results_and_a_manifest_listing_every_file(tmp_path):
    study = _example()["STUDY"]
    out = tmp_path / "out"
    run = StudyRun(study, study.validate({"OUTPUT_DIR": str(out), "SIGMAS": [1.0], "STEPS": 10}))
    run.load_data()
    run.execute()
    results = run.tidy()
    run.save_table(results.assign(doubled=results.value * 2), "extra.csv", index=False)
    run.finish(results, note="hello")
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == {"results.csv", "extra.csv", "privbias.log"}
    assert manifest["parameters"]["SIGMAS"] == [1.0] and manifest["note"] == "hello"
    assert manifest["parameters"]["OUTPUT_DIR"] == str(out.resolve())
    assert set(manifest["timings_s"]) == {"data", "runs", "results"}
    assert manifest["environment"]["packages"]["torch"]
    assert pd.read_csv(out / "results.csv").value.iloc[0] == results.value.iloc[0]


def test_the_run_key_covers_what_a_result_depends_on(tmp_path):
    from privbias_lib.store import Run, run_key

    common = {"study": "x", "data": "d", "library": "0.1", "environment": {"device": "cpu"}}
    base = run_key(Run("a", {"s": 1}, "m", {"lr": 1}), common, "weights")
    assert base == run_key(Run("renamed", {"s": 1}, "m", {"lr": 1}), common, "weights")
    for changed in (
        run_key(Run("a", {"s": 2}, "m", {"lr": 1}), common, "weights"),
        run_key(Run("a", {"s": 1}, "m", {"lr": 2}), common, "weights"),
        run_key(Run("a", {"s": 1}, "m", {"lr": 1}), common, "other weights"),
        run_key(Run("a", {"s": 1}, "m", {"lr": 1}), {**common, "data": "e"}, "weights"),
        run_key(Run("a", {"s": 1}, "m", {"lr": 1}), {**common, "library": "0.2"}, "weights"),
    ):
        assert changed != base


@pytest.mark.parametrize("key", list(STUDIES))
def test_every_study_keeps_the_notebook_contract(key):
    study = STUDIES[key]
    assert find_study(str(study.number)) is study and find_study(study.name) is study
    nb = nbformat.read(study.notebook, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    defaults = study.defaults()
    assert list(defaults) == study.Params.names()  # the cell holds every parameter, in order
    study.validate(defaults)  # and they are valid: the cpu profile
    setup = next(c for c in nb.cells[nb.cells.index(tagged[0]) + 1 :] if c.cell_type == "code")
    assert ".STUDY.start(globals())" in setup.source  # validated right after injection
    assert "run.finish(" in nb.cells[-1].source or any(
        "run.finish(" in c.source for c in nb.cells if c.cell_type == "code"
    )
    schema = study.Params.model_json_schema(by_alias=True)["properties"]
    undocumented = [n for n, p in schema.items() if not p.get("description")]
    assert not undocumented, f"parameters without a description: {undocumented}"
    assert not schema["OUTPUT_DIR"].get("default")  # no defaults outside the notebook
    assert all("default" not in p for p in schema.values())
