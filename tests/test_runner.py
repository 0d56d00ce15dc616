"""The runner: validation before a kernel starts, one run, resumable sweeps (local and
Ray), collecting results. Real notebook runs use study 2's smoke profile without its
training part (its accountant curves and audits: about 20 s a run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from privbias_lib import cli
from privbias_lib.params import ParameterError
from privbias_lib.runner import RUN_FILE, RunSpec, execute_run, finished_record, parse_value
from privbias_lib.studies import STUDIES, find_study
from privbias_lib.study import ROOT
from privbias_lib.sweeps import (
    collect,
    expand_grid,
    gpus_needed,
    plan_sweep,
    run_id_for,
    run_sweep,
)

STUDY = STUDIES["02_ew_tune"]
QUICK = {"RUN_TRAINING": False}  # study 2's Part A only


def test_studies_are_found_by_key_number_or_name():
    for name in ("03_lora_vs_dp", "03", "3", "lora_vs_dp"):
        assert find_study(name).key == "03_lora_vs_dp"
    with pytest.raises(ParameterError, match=r"unknown study .5.*01_dp_bias"):
        find_study("5")


def test_values_are_read_as_yaml():
    assert parse_value("8") == 8 and parse_value("1.0e-5") == 1e-5
    assert parse_value("1e-5") == 1e-5  # a string to YAML 1.1, a number to a reader
    assert parse_value("[1, 8]") == [1, 8] and parse_value("null") is None
    assert parse_value("minilm-l6") == "minilm-l6" and parse_value("true") is True


def test_exponents_are_numbers_at_any_depth(tmp_path):
    """``1e-4`` inside a mapping or list, in ``-p``, ``-f`` files and profiles, is a float
    (PyYAML's YAML 1.1 keeps it a string, which validation would then reject)."""
    from privbias_lib.params import load_yaml
    from privbias_lib.runner import read_parameter_file

    rates = "{full: 1e-4, lora: 3E-3, dp_full: +1.5e-4, dp_lora: 1e+2}"
    assert parse_value(rates) == {"full": 1e-4, "lora": 3e-3, "dp_full": 1.5e-4, "dp_lora": 100.0}
    assert parse_value("[1e-5, 2, x1e5]") == [1e-5, 2, "x1e5"]
    assert load_yaml('a: "1e-4"\nb: 12\nc: .5') == {"a": "1e-4", "b": 12, "c": 0.5}
    (tmp_path / "over.yaml").write_text(f"LEARNING_RATES: {rates}\n")
    values = read_parameter_file(tmp_path / "over.yaml")
    assert values["LEARNING_RATES"]["full"] == 1e-4
    study = find_study("3")
    params = study.validate({**study.resolve("cpu"), **values, "OUTPUT_DIR": str(tmp_path)})
    assert params.learning_rates["lora"] == 3e-3


@pytest.mark.parametrize("key", list(STUDIES))
def test_every_profile_resolves_over_the_notebook_defaults(key):
    study = STUDIES[key]
    defaults = study.defaults()
    assert study.profile("cpu") == {}  # the cpu profile is the notebook's parameters cell
    for profile in ("smoke", "cpu", "paper"):
        params = study.resolve(profile)
        assert set(params) == set(defaults) - {"OUTPUT_DIR"}
        overrides = study.profile(profile)
        assert params.items() >= overrides.items()
        repeated = [k for k, v in overrides.items() if defaults.get(k) == v]
        assert not repeated, f"{profile} repeats the notebook's defaults of {repeated}"


def test_unknown_and_bad_parameters_are_refused_with_what_is_allowed():
    with pytest.raises(ParameterError) as e:
        STUDY.resolve("smoke", {"EPOCH": 1})
    assert "unknown parameter(s) ['EPOCH']" in str(e.value) and "EPOCHS" in str(e.value)
    with pytest.raises(ParameterError, match="EPOCHS = 0 is invalid: input should be greater"):
        STUDY.resolve("smoke", {"EPOCHS": 0})
    with pytest.raises(ParameterError, match="TARGET_EPSILON = 'eight' is invalid"):
        STUDY.resolve("smoke", {"TARGET_EPSILON": "eight"})
    with pytest.raises(ParameterError, match="--output"):
        STUDY.resolve("smoke", {"OUTPUT_DIR": "/tmp/x"})
    with pytest.raises(ParameterError, match="unknown profile 'fast'"):
        STUDY.resolve("fast")


def test_cli_run_refuses_a_bad_parameter_before_any_kernel(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "2", "--profile", "smoke", "-p", "EPOCHS", "-1", "--output", str(out)])
    assert e.value.code == 2
    assert "parameter EPOCHS = -1 is invalid" in capsys.readouterr().err
    assert not out.exists() and not out.with_name("run.partial").exists()


def test_grids_expand_in_order_with_fixed_parameters():
    points = expand_grid(
        {"parameters": {"EPOCHS": 1}, "grid": {"SEEDS": [[0], [1]], "TARGET_EPSILON": [1, 8]}}
    )
    assert points == [
        {"EPOCHS": 1, "SEEDS": [0], "TARGET_EPSILON": 1},
        {"EPOCHS": 1, "SEEDS": [0], "TARGET_EPSILON": 8},
        {"EPOCHS": 1, "SEEDS": [1], "TARGET_EPSILON": 1},
        {"EPOCHS": 1, "SEEDS": [1], "TARGET_EPSILON": 8},
    ]
    for bad, message in [
        ({"runs": []}, "needs a 'grid:'"),
        ({"grid": {"SEEDS": []}}, "at least one value"),
        ({"grid": {"SEEDS": [[0]]}, "parameters": {"SEEDS": [1]}}, "both fixed and swept"),
        ({"grid": {"SEEDS": [[0]]}, "extra": 1}, "unknown key"),
    ]:
        with pytest.raises(ParameterError, match=message):
            expand_grid(bad)


def test_run_ids_are_stable_readable_and_distinct():
    a = run_id_for({"TARGET_EPSILON": 8.0, "SEEDS": [0, 1]})
    assert a == run_id_for({"SEEDS": [0, 1], "TARGET_EPSILON": 8.0})  # order does not matter
    assert a.startswith("SEEDS=0-1_TARGET_EPSILON=8.0-")
    assert a != run_id_for({"TARGET_EPSILON": 8.0, "SEEDS": [0, 2]})
    odd = run_id_for({"MODEL": "org/model name:v1"})
    assert "/" not in odd and " " not in odd and ":" not in odd
    assert run_id_for({}) == "default"
    # a label names only the swept parameters; the hash still covers every override
    assert run_id_for({"A": 1, "B": 2}, ["A"]).startswith("A=1-")
    assert run_id_for({"A": 1, "B": 2}, ["A"]) != run_id_for({"A": 1, "B": 3}, ["A"])


def test_plan_sweep_validates_every_point_first(tmp_path):
    points = [{**QUICK, "TARGET_EPSILON": 8.0}, {**QUICK, "TARGET_EPSILON": -1.0}]
    with pytest.raises(ParameterError, match=r"TARGET_EPSILON = -1\.0"):
        plan_sweep(STUDY, "smoke", points, tmp_path)
    with pytest.raises(ParameterError, match="appears twice"):
        plan_sweep(STUDY, "smoke", [QUICK, QUICK], tmp_path)


def _fake_finished(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "results.csv").write_text("metric,value\nauc,0.5\n")
    digest = __import__("hashlib").sha256((folder / "results.csv").read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps({"files": {"results.csv": digest}}))
    (folder / RUN_FILE).write_text(json.dumps({"status": "finished", "run_id": "x"}))


def test_a_finished_run_needs_its_record_and_every_listed_file_intact(tmp_path):
    folder = tmp_path / "run"
    _fake_finished(folder)
    assert finished_record(folder)["run_id"] == "x"
    (folder / "results.csv").write_text("metric,value\nauc,0.9\n")  # changed after the run
    assert finished_record(folder) is None
    _fake_finished(tmp_path / "run2")
    (tmp_path / "run2" / RUN_FILE).write_text(json.dumps({"status": "running"}))
    assert finished_record(tmp_path / "run2") is None
    assert finished_record(tmp_path / "missing") is None


@pytest.mark.notebook
def test_run_writes_everything_atomically_and_reuses_only_identical_runs(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a relative --output is relative here, not to notebooks/
    out = tmp_path / "quick"
    argv = ["run", "2", "--profile", "smoke", "-p", "RUN_TRAINING", "false", "--output", "quick"]
    assert cli.main(argv) == 0
    files = {p.name for p in out.iterdir()}
    assert {"02_ew_tune.ipynb", "results.csv", "manifest.json", RUN_FILE} <= files
    assert "epsilon_curves.png" in files and "papermill.log" in files
    assert not out.with_name("quick.partial").exists()
    log = (out / "papermill.log").read_text()
    assert log.count("Executing Cell") >= 10  # the per-cell progress is in the log
    record = json.loads((out / RUN_FILE).read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert record["status"] == "finished" and record["overrides"] == QUICK
    assert manifest["parameters"]["OUTPUT_DIR"] == str(out.resolve())
    assert manifest["parameters"]["RUN_TRAINING"] is False
    capsys.readouterr()

    assert cli.main(argv) == 0  # same notebook and parameters: reused, nothing runs
    assert "reused" in capsys.readouterr().out
    assert json.loads((out / RUN_FILE).read_text()) == record

    spec = RunSpec(STUDY.key, "smoke", "quick", {**QUICK, "TARGET_EPSILON": 4.0})
    again = execute_run(spec)  # another parameter value: the stale run is replaced
    assert again["status"] == "finished" and again["identity"] != record["identity"]
    assert json.loads((out / "manifest.json").read_text())["parameters"]["TARGET_EPSILON"] == 4.0


@pytest.mark.notebook
def test_a_failing_run_is_recorded_with_its_notebook_and_stops_no_other(tmp_path):
    empty = tmp_path / "no-glue-here"
    empty.mkdir()
    failing = {"RUN_TRAINING": True, "DATASET": "glue", "DATA_SOURCE": str(empty)}
    specs = plan_sweep(STUDY, "smoke", [failing, {**QUICK}], tmp_path / "sweep")
    report = run_sweep(specs, tmp_path / "sweep", workers=2)
    by_id = {r["run_id"]: r for r in report.records}
    bad, good = by_id[specs[0].run_id], by_id[specs[1].run_id]
    assert good["status"] == "finished" and finished_record(specs[1].folder)
    assert bad["status"] == "failed" and "no-glue-here" in bad["error"]
    notebook = Path(bad["notebook"])
    assert notebook.is_file() and notebook.parent == specs[0].partial  # where the error shows
    assert "ConnectionError" in notebook.read_text()
    assert not specs[0].folder.exists()  # a failed run never looks finished
    assert "FAILED" in report.summary() and str(notebook) in report.summary()
    sweep = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [r["status"] for r in sweep["runs"]] == ["failed", "finished"]


@pytest.mark.notebook
def test_a_killed_sweep_resumes_only_the_missing_runs(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        yaml.safe_dump({"parameters": QUICK, "grid": {"TARGET_EPSILON": [1.0, 4.0, 8.0]}})
    )
    out = tmp_path / "sweep"
    argv = [sys.executable, "-m", "privbias_lib.cli", "sweep", "2", "--profile", "smoke"]
    argv += ["--grid", str(grid), "--output", str(out), "--workers", "1"]
    points = expand_grid(yaml.safe_load(grid.read_text()))
    specs = plan_sweep(STUDY, "smoke", points, out, label=["TARGET_EPSILON"])  # as the CLI
    sweep = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while finished_record(specs[0].folder) is None:  # wait for the first run to finish
            assert sweep.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        while not specs[1].partial.is_dir():  # ... and the second to be under way
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(3)
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)  # the whole sweep, as a lost machine would
        sweep.wait()
    first = json.loads((specs[0].folder / RUN_FILE).read_text())
    assert finished_record(specs[1].folder) is None and finished_record(specs[2].folder) is None
    found = collect(out)
    assert len(found.table.run_id.unique()) == 1  # the killed run's outputs do not count
    assert [f.name for f, _ in found.skipped] == [specs[1].partial.name]  # ... and are listed
    assert json.loads((out / "sweep.json").read_text())["runs"][1]["status"] != "pending"

    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 runs: 2 ran, 1 reused, 0 failed" in done.stdout
    assert json.loads((specs[0].folder / RUN_FILE).read_text()) == first  # not run again
    for spec in specs:
        assert finished_record(spec.folder) is not None and not spec.partial.exists()
    table = collect(out).table
    assert sorted(table.TARGET_EPSILON.unique()) == [1.0, 4.0, 8.0]
    assert set(table.RUN_TRAINING) == {False}
    # the collected table has each run's own results: the Edgeworth sigma differs by target
    sigmas = table[(table.part == "calibration") & (table.method == "edgeworth")]
    assert sigmas.groupby("TARGET_EPSILON").value.mean().is_monotonic_decreasing


@pytest.mark.notebook
@pytest.mark.slow
def test_ray_backend_runs_each_run_as_a_ray_task_and_collects_for_plotting(tmp_path):
    ray = pytest.importorskip("ray")
    from privbias_lib.studies.dp_bias import plot_metrics_vs_epsilon

    study = STUDIES["01_dp_bias"]
    points = expand_grid({"grid": {"SEEDS": [[0], [1]]}})
    specs = plan_sweep(study, "smoke", points, tmp_path / "ray", label=["SEEDS"])
    try:
        with pytest.raises(ParameterError, match=r"needs 1 GPU.*has 0"):
            run_sweep(specs, tmp_path / "ray", backend="ray", workers=2, gpus_per_run=1)
        assert not any(s.partial.exists() or s.folder.exists() for s in specs)
        report = run_sweep(specs, tmp_path / "ray", backend="ray", workers=2)
        assert ray.is_initialized() and ray.cluster_resources()["CPU"] == 2
    finally:
        ray.shutdown()
    assert [r["status"] for r in report.records] == ["finished", "finished"]
    table = collect(tmp_path / "ray").table
    assert set(table.run_id) == {s.run_id for s in specs}
    assert sorted(table.SEEDS.unique()) == ["[0]", "[1]"]
    assert sorted(table.seed.dropna().unique()) == [0, 1]
    # the collected table goes straight into the notebook's plotting function
    grid = plot_metrics_vs_epsilon(table)
    assert len(grid.axes.flat) == 3
    spread = [len(line.get_xdata()) for ax in grid.axes.flat for line in ax.lines]
    assert spread and max(spread) >= 2  # points with error bars over the two seeds


def test_collect_puts_parameters_beside_results(tmp_path):
    for name, seeds in (("a", [0]), ("b", [1])):
        folder = tmp_path / name
        _fake_finished(folder)
        record = {"status": "finished", "run_id": name, "study": "01_dp_bias", "profile": "cpu"}
        record["overrides"] = {"SEEDS": seeds, "EPOCHS": 2}
        (folder / RUN_FILE).write_text(json.dumps(record))
    (tmp_path / "c.partial").mkdir()
    (tmp_path / "c.partial" / RUN_FILE).write_text(json.dumps({"status": "finished"}))
    found = collect(tmp_path)
    table = found.table
    assert list(table.columns[:5]) == ["run_id", "study", "profile", "SEEDS", "EPOCHS"]
    assert table.SEEDS.tolist() == ["[0]", "[1]"] and table.value.tolist() == [0.5, 0.5]
    assert [(f.name, "unfinished" in why) for f, why in found.skipped] == [("c.partial", True)]
    assert collect(tmp_path / "nothing").table.empty


def test_parameter_files_and_values_combine_in_order(tmp_path, capsys):
    overrides = tmp_path / "mine.yaml"
    overrides.write_text("TARGET_EPSILON: 3.0\nEPOCHS: 5\n")
    args = cli.build_parser().parse_args(
        ["run", "2", "-f", str(overrides), "-p", "EPOCHS", "2", "-p", "SEEDS", "[4, 5]"]
    )
    assert cli._overrides(args) == {"TARGET_EPSILON": 3.0, "EPOCHS": 2, "SEEDS": [4, 5]}


@pytest.mark.parametrize("grid", sorted((ROOT / "notebooks" / "grids").glob("*.yaml")))
def test_the_shipped_paper_grids_plan_valid_runs(grid, tmp_path, monkeypatch):
    from privbias_lib import models

    monkeypatch.setattr(models, "_hub_problem", lambda repo_id: None)  # as if the hub answered
    models._model_problem.cache_clear()
    study = next(s for key, s in STUDIES.items() if grid.name.startswith(key))
    points = expand_grid(yaml.safe_load(grid.read_text()))
    specs = plan_sweep(study, "paper", points, tmp_path, label=list(points[0]))
    assert len({s.run_id for s in specs}) == len(points) >= 3
    assert all(gpus_needed(study, "paper", s.overrides) == 1 for s in specs)


def test_a_rerun_keeps_only_the_finished_sub_runs_of_an_earlier_attempt(tmp_path):
    from privbias_lib.runner import _prepare_partial

    partial = tmp_path / "x.partial"
    (partial / "runs").mkdir(parents=True)
    (partial / "runs" / "abc.json").write_text("{}")
    (partial / "old_figure.png").write_text("stale")
    (partial / "figures").mkdir()
    _prepare_partial(partial, fresh=False)
    assert [p.name for p in partial.iterdir()] == ["runs"]
    assert (partial / "runs" / "abc.json").is_file()
    _prepare_partial(partial, fresh=True)  # --force: nothing is kept
    assert list(partial.iterdir()) == []


def test_a_change_to_the_library_makes_finished_runs_stale(monkeypatch):
    from privbias_lib import runner

    params = STUDY.resolve("smoke")
    before = runner.run_identity(STUDY, "smoke", params)
    assert runner.run_identity(STUDY, "smoke", params) == before  # deterministic
    monkeypatch.setattr(runner, "library_fingerprint", lambda: "edited")
    assert runner.run_identity(STUDY, "smoke", params) != before
