"""Checks every study notebook's tests share: run a profile, and a bad parameter that
must stop the notebook in its first cells."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from privbias_lib.runner import RunSpec, execute_run
from privbias_lib.studies import Study, execute, load_profile, notebook_defaults


def smoke_runs_root(tmp_path_factory) -> Path:
    """One runs root per test session, laid out as ``privbias reproduce`` lays it out."""
    return tmp_path_factory.getbasetemp() / "smoke-runs"


def run_smoke(study: Study, tmp_path_factory) -> Path:
    """``study``'s smoke run through the runner, executed once per session (the study's
    tests and the book test share it); returns its folder."""
    out = smoke_runs_root(tmp_path_factory) / study.key / "smoke"
    record = execute_run(RunSpec(study.key, "smoke", str(out)))
    assert record["status"] in ("finished", "reused"), record
    return out


def assert_bad_parameter_stops_early(study: Study, changes: dict, tmp_path, monkeypatch):
    """With ``changes`` applied to the smoke profile the notebook fails in its first
    three cells (parameters, injected parameters, validation) with a message naming
    every changed parameter, and writes no results."""
    import papermill

    bad = {**load_profile(study, "smoke"), **changes}
    monkeypatch.setattr("privbias_lib.studies.load_profile", lambda s, name: bad)
    with pytest.raises(papermill.PapermillExecutionError) as err:
        execute(study, "smoke", tmp_path)
    for name in changes:
        assert name in str(err.value)
    executed = nbformat.read(tmp_path / f"{study.key}.ipynb", as_version=4)
    ran = [c for c in executed.cells if c.cell_type == "code" and c.execution_count]
    assert len(ran) <= 3
    assert not (tmp_path / "results.csv").exists()


def parameters_cell_values(study: Study) -> dict:
    """The notebook's single ``parameters`` cell, as {NAME: literal value}; fails if there
    is not exactly one such cell or it holds anything but assignments of literals."""
    return notebook_defaults(study)
