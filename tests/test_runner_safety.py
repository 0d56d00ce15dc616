"""A run never deletes what is not a run: output folders holding a user's files, another
study's run (without --force), a foreign sweep record or book folder are refused before
any work, and a folder that fills up while a notebook runs is not replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from privbias_lib import cli, runner, sweeps
from privbias_lib.book import BookError, stage
from privbias_lib.runner import RUN_FILE, RunSpec, UnsafeOutput, execute_run, output_problem


def _users_folder(folder: Path) -> dict[Path, str]:
    files = {folder / "notes.txt": "my notes\n", folder / "thesis" / "data.csv": "a,b\n1,2\n"}
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return files


def _assert_intact(files: dict[Path, str]) -> None:
    for path, text in files.items():
        assert path.read_text() == text


@pytest.mark.parametrize("force", [False, True])
def test_run_refuses_a_folder_of_user_files_and_deletes_nothing(tmp_path, capsys, force):
    folder = tmp_path / "some" / "folder"
    files = _users_folder(folder)
    argv = ["run", "1", "--profile", "smoke", "--output", str(folder)]
    with pytest.raises(SystemExit) as e:
        cli.main(argv + (["--force"] if force else []))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert str(folder) in err and "notes.txt" in err and "thesis/" in err
    assert "not a privbias run" in err
    _assert_intact(files)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "thesis"]
    assert not folder.with_name("folder.partial").exists()


def test_the_partial_sibling_is_checked_too(tmp_path):
    folder = tmp_path / "out"
    files = _users_folder(tmp_path / "out.partial")
    problem = output_problem(folder, "01_dp_bias", force=True)
    assert problem and "out.partial" in problem and "notes.txt" in problem
    with pytest.raises(UnsafeOutput):
        execute_run(RunSpec("01_dp_bias", "smoke", str(folder)), force=True)
    _assert_intact(files)


def _fake_run(folder: Path, study: str) -> None:
    folder.mkdir(parents=True)
    (folder / RUN_FILE).write_text(json.dumps({"status": "finished", "study": study}))
    (folder / "results.csv").write_text("run,subgroup,metric,value\n")


def test_another_studys_run_is_replaced_only_with_force(tmp_path, capsys):
    folder = tmp_path / "run"
    _fake_run(folder, "02_ew_tune")
    assert "a run of 02_ew_tune" in output_problem(folder, "01_dp_bias")
    assert output_problem(folder, "01_dp_bias", force=True) is None
    assert output_problem(folder, "02_ew_tune") is None  # the same study's run: replaceable
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "1", "--profile", "smoke", "--output", str(folder)])
    assert e.value.code == 2 and "--force" in capsys.readouterr().err
    assert (folder / "results.csv").is_file()


def test_absent_and_empty_folders_and_files(tmp_path):
    assert output_problem(tmp_path / "new", "01_dp_bias") is None
    (tmp_path / "empty").mkdir()
    assert output_problem(tmp_path / "empty", "01_dp_bias") is None
    (tmp_path / "a_file").write_text("x")
    assert "is not a folder" in output_problem(tmp_path / "a_file", "01_dp_bias", force=True)


def test_a_folder_that_fills_while_the_notebook_runs_is_not_replaced(tmp_path, monkeypatch):
    folder = tmp_path / "run"

    def fake_execute(study, output_dir, parameters, **_):
        (Path(output_dir) / "manifest.json").write_text(json.dumps({"parameters": {}}))
        _users_folder(folder)  # the user saves files there in the meantime

    monkeypatch.setattr(runner, "execute_notebook", fake_execute)
    spec = RunSpec("02_ew_tune", "smoke", str(folder), {"RUN_TRAINING": False})
    with pytest.raises(UnsafeOutput, match="not moved into place"):
        execute_run(spec)
    assert (folder / "notes.txt").read_text() == "my notes\n"
    record = json.loads((spec.partial / RUN_FILE).read_text())
    assert record["status"] == "failed" and "notes.txt" in record["error"]


def test_a_sweep_refuses_a_foreign_sweep_record_and_user_run_folders(tmp_path):
    study = runner.find_study("2")
    points = [{"RUN_TRAINING": False, "TARGET_EPSILON": e} for e in (1.0, 8.0)]
    specs = sweeps.plan_sweep(study, "smoke", points, tmp_path / "sweep")
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "sweep.json").write_text('{"mine": 1}')
    with pytest.raises(UnsafeOutput, match="not a privbias sweep record"):
        sweeps.run_sweep(specs, tmp_path / "sweep")
    (tmp_path / "sweep" / "sweep.json").unlink()
    files = _users_folder(specs[1].folder)
    with pytest.raises(UnsafeOutput, match="not a privbias run"):
        sweeps.run_sweep(specs, tmp_path / "sweep", force=True)
    _assert_intact(files)
    assert not specs[0].folder.exists()  # refused before the first run started


def test_reproduce_checks_every_folder_before_running_any(tmp_path):
    files = _users_folder(tmp_path / "runs" / "04_bias_transfer" / "smoke")
    with pytest.raises(UnsafeOutput, match="04_bias_transfer"):
        runner.reproduce("smoke", tmp_path / "runs", force=True)
    _assert_intact(files)
    assert not (tmp_path / "runs" / "01_dp_bias").exists()


def test_the_book_is_never_staged_over_a_users_folder(tmp_path):
    files = _users_folder(tmp_path / "book" / "smoke")
    with pytest.raises(BookError, match="not a staged privbias book"):
        stage("smoke", tmp_path / "runs", tmp_path / "book" / "smoke")
    _assert_intact(files)
