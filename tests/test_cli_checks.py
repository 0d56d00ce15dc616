"""The command line refuses bad input before any kernel starts, says what it is doing,
and never hides a run it could not use (issue 21's cases, each failing before its fix)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from privbias_lib import cli, models, sweeps
from privbias_lib.runner import RUN_FILE, RunSpec, TerminalProgress, _prepare_partial
from privbias_lib.studies import STUDIES


def _refused(capsys, argv: list[str]) -> str:
    start = time.monotonic()
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert time.monotonic() - start < 15  # refused before any kernel starts
    return capsys.readouterr().err


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path, capsys):
    bad = tmp_path / "mine.yaml"
    bad.write_text("EPOCHS: 2\nSEEDS: [0, 1\nDELTA: 1e-5\n")
    err = _refused(capsys, ["run", "2", "--profile", "smoke", "-f", str(bad)])
    assert str(bad) in err and "line 3" in err and "Traceback" not in err
    err = _refused(capsys, ["sweep", "2", "--profile", "smoke", "--grid", str(bad)])
    assert str(bad) in err and "line 3" in err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["run", "4", "-p", "MODELS", '["no-such-model"]'], "parameter MODELS = 'no-such-model'"),
        (["run", "1", "-p", "MODEL", "no-such-model"], "parameter MODEL = 'no-such-model'"),
        (["run", "1", "-p", "TOP_LAYERS", "7"], "parameter TOP_LAYERS = 7"),
        (["run", "1", "-p", "EPSILONS", "[.inf]"], "EPSILONS = [inf] is invalid"),
        (["run", "1", "-p", "EPSILONS", "[1, 1.0]"], "appears twice"),
        (["run", "3", "-p", "MODELS", '["minilm-l6"]'], "supports ['classification']"),
    ],
)  # fmt: skip
def test_bad_models_and_values_are_refused_before_the_kernel(tmp_path, capsys, argv, named):
    err = _refused(capsys, [*argv, "--profile", "smoke", "--output", str(tmp_path / "run")])
    assert named in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()


def test_a_hub_id_must_be_cached_or_found_on_the_hub(tmp_path, monkeypatch):
    import huggingface_hub as hf
    from huggingface_hub import constants

    def unreachable(self, repo_id, **kw):
        raise ConnectionError("no route to huggingface.co")

    monkeypatch.setattr(hf.HfApi, "model_info", unreachable)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    models._model_problem.cache_clear()
    with pytest.raises(ValueError) as e:
        models.check_model("MODEL", "someone/absent-model", "classification")
    text = str(e.value)
    assert "parameter MODEL = 'someone/absent-model'" in text
    assert "hub could not be reached" in text and "not in the local Hugging Face cache" in text
    # the same id in the local hub cache (the hub's own layout) is accepted
    snapshot = tmp_path / "models--someone--cached-model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--someone--cached-model" / "refs").mkdir()
    (tmp_path / "models--someone--cached-model" / "refs" / "main").write_text("abc123")
    models._model_problem.cache_clear()
    models.check_model("MODEL", "someone/cached-model", "classification")
    models._model_problem.cache_clear()


def _fake_finished(folder: Path, study: str = "01_dp_bias") -> None:
    folder.mkdir(parents=True)
    (folder / "results.csv").write_text("run,subgroup,metric,value\nr,all,auc,0.5\n")
    digest = hashlib.sha256((folder / "results.csv").read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps({"files": {"results.csv": digest}}))
    record = {"status": "finished", "run_id": folder.name, "study": study, "profile": "smoke"}
    (folder / RUN_FILE).write_text(json.dumps(record))


def test_collect_reports_a_run_it_cannot_use_and_exits_non_zero(tmp_path, capsys):
    _fake_finished(tmp_path / "a")
    _fake_finished(tmp_path / "b")
    (tmp_path / "b" / "results.csv").write_text("run,subgroup,metric,value\nr,all,auc,0.9\n")
    assert cli.main(["collect", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "SKIPPED" in captured.err and "results.csv was changed" in captured.err
    assert str(tmp_path / "b") in captured.err
    assert "1 runs, 1 rows" in captured.out and "1 run(s) skipped" in captured.out


def test_an_interrupted_sweep_marks_its_runs_interrupted_not_pending(tmp_path, monkeypatch):
    study = STUDIES["02_ew_tune"]
    points = [{"RUN_TRAINING": False, "TARGET_EPSILON": e} for e in (1.0, 8.0)]
    specs = sweeps.plan_sweep(study, "smoke", points, tmp_path / "sweep")

    def interrupted(todo, *, workers, force, flight):
        flight.add(todo[0].run_id)
        todo[0].partial.mkdir(parents=True)
        raise KeyboardInterrupt
        yield  # a generator, as the real backend

    monkeypatch.setattr(sweeps, "_local_backend", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweeps.run_sweep(specs, tmp_path / "sweep")
    record = tmp_path / "sweep" / "sweep.json"
    statuses = [r["status"] for r in json.loads(record.read_text())["runs"]]
    assert statuses == ["interrupted", "pending"]
    # a later sweep, before it starts anything, still says so
    sweeps._write_sweep(tmp_path / "sweep", specs, {})
    statuses = [r["status"] for r in json.loads(record.read_text())["runs"]]
    assert statuses == ["interrupted", "pending"]


def test_a_rerun_of_a_changed_finished_run_reuses_its_stored_sub_runs(tmp_path):
    folder = tmp_path / "run"
    _fake_finished(folder)
    (folder / "runs").mkdir()
    (folder / "runs" / "abc.json").write_text('{"key": "k"}')
    partial = tmp_path / "run.partial"
    _prepare_partial(partial, fresh=False, previous=folder)
    assert (partial / "runs" / "abc.json").read_text() == '{"key": "k"}'
    _prepare_partial(partial, fresh=True, previous=folder)  # --force: start from nothing
    assert list(partial.iterdir()) == []


class _Stream:
    def __init__(self, tty: bool):
        self.text, self.tty = "", tty

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    def isatty(self):
        return self.tty


def test_the_terminal_shows_the_cell_and_the_notebooks_progress(tmp_path):
    import logging

    study = STUDIES["01_dp_bias"]
    progress = tmp_path / ".progress.json"
    progress.write_text(
        json.dumps({"task": "study 1 runs", "done": 3, "total": 30, "elapsed_s": 75,
                    "eta_s": 600, "current": "sweep/eps=1/seed=0"})
    )  # fmt: skip
    logger = logging.getLogger("papermill-test")
    logger.setLevel(logging.INFO)
    for tty in (True, False):
        stream = _Stream(tty)
        show = TerminalProgress(stream, verbose=not tty, every=0.0)
        with show.watch(study, progress, logger):
            logger.info("Executing Cell 8---------")
            logger.info("a line the cell printed")
            time.sleep(1.3)
        assert "01_dp_bias · cell 8/" in stream.text
        assert "study 1 runs 3/30 · 1m15s · ~10m00s left · sweep/eps=1/seed=0" in stream.text
        assert ("\r" in stream.text) is tty  # a live line on a terminal, lines in a log
        assert ("  | a line the cell printed" in stream.text) is (not tty)  # --verbose


@pytest.mark.notebook
def test_run_shows_progress_without_kernel_warnings_and_ctrl_c_is_one_line(tmp_path):
    argv = [sys.executable, "-m", "privbias_lib.cli", "run", "2", "--profile", "smoke"]
    argv += ["-p", "RUN_TRAINING", "false", "--output", str(tmp_path / "run")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "02_ew_tune · cell " in done.stderr
    assert "without encryption" not in done.stderr + done.stdout

    # a child of a process started in the background by a script inherits SIGINT ignored
    # (POSIX shells do that); a user's Ctrl-C reaches a foreground command: reset it
    again = subprocess.Popen(
        [*argv[:-1], str(tmp_path / "again")], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tmp_path / "again.partial" / RUN_FILE).exists():
        assert again.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(2)
    os.kill(again.pid, signal.SIGINT)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    record = json.loads((tmp_path / "again.partial" / RUN_FILE).read_text())
    assert record["status"] == "interrupted"
    spec = RunSpec("02_ew_tune", "smoke", str(tmp_path / "again"))
    assert not spec.folder.exists()
