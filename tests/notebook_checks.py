"""Checks every study notebook's tests share: run a profile, and a bad parameter that
must stop the notebook in its first cells."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from privbias_lib.runner import RunSpec, execute_notebook, execute_run
from privbias_lib.study import Study


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


def assert_bad_parameter_stops_early(study: Study, changes: dict, tmp_path):
    """With ``changes`` applied to the smoke profile, papermill injects them unchecked
    (as a user running papermill by hand would) and the notebook fails in its first
    three cells (parameters, injected parameters, validation) with a message naming
    every changed parameter, and writes no results."""
    import papermill

    bad = {**study.resolve("smoke"), **changes}
    with pytest.raises(papermill.PapermillExecutionError) as err:
        execute_notebook(study, tmp_path, bad)
    for name in changes:
        assert name in str(err.value)
    executed = nbformat.read(tmp_path / f"{study.key}.ipynb", as_version=4)
    ran = [c for c in executed.cells if c.cell_type == "code" and c.execution_count]
    assert len(ran) <= 3
    assert not (tmp_path / "results.csv").exists()


def smoke_params(study: Study, **changes):
    """The smoke profile (with ``changes``) validated, as the notebook sees it."""
    return study.validate({**study.resolve("smoke"), "OUTPUT_DIR": "/tmp/unused", **changes})


def profile_params(study: Study, profile: str, **changes):
    """A profile (with ``changes``) validated."""
    return study.validate({**study.resolve(profile), "OUTPUT_DIR": "/tmp/unused", **changes})


def run_in_process(study: Study, parameters: dict, out: Path, store_from: Path | None = None):
    """Execute the notebook's code cells in this process, as papermill would (its
    parameters cell, then ``parameters`` and ``OUTPUT_DIR`` injected, then every other
    cell) — without a kernel's start-up and imports, for the subset matrix. The stored
    sub-runs of ``store_from`` (a finished run's folder) are copied first, so only what
    differs is computed. Returns the output folder."""
    import shutil

    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    if store_from is not None and (store_from / "runs").is_dir():
        shutil.copytree(store_from / "runs", out / "runs", dirs_exist_ok=True)
    nb = nbformat.read(study.notebook, as_version=4)
    namespace: dict = {"__name__": "__main__"}
    injected = "\n".join(f"{k} = {v!r}" for k, v in {**parameters, "OUTPUT_DIR": str(out)}.items())
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        exec(compile(cell.source, f"<{study.key} cell>", "exec"), namespace)
        if "parameters" in cell.metadata.get("tags", []):
            exec(compile(injected, f"<{study.key} injected>", "exec"), namespace)
    import matplotlib.pyplot as plt

    plt.close("all")
    return out
