"""Teaching: the exercises' solutions and checks live in the study notebooks in nbgrader's
markup; `privbias assignment` makes the student version (no solution, no hidden test) and a
course folder that nbgrader grades: the unmodified student version scores nothing, the
solutions score everything."""

from __future__ import annotations

import csv
import json
import math
import shutil

import nbformat
import pytest

from privbias_lib import cli
from privbias_lib.studies import STUDIES
from privbias_lib.teaching import SOLUTION_MARKERS, make_assignment, run_nbgrader, same


def _solutions(nb) -> list[str]:
    return [c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]


@pytest.mark.parametrize("key", list(STUDIES))
def test_every_study_has_three_exercises_with_solution_explanation_and_check(key):
    nb = nbformat.read(STUDIES[key].notebook, as_version=4)
    exercises = [c for c in nb.cells if c.source.startswith(":::{exercise}")]
    checks = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    solutions = _solutions(nb)
    assert len(exercises) == len(checks) == len(solutions) == 3
    for source in solutions:
        assert source.startswith("### BEGIN SOLUTION") and source.endswith("### END SOLUTION")
    for check in checks:
        assert "remove-input" in check.metadata["tags"] and check.metadata["nbgrader"]["points"]
        assert "### BEGIN HIDDEN TESTS" in check.source
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("key", list(STUDIES))
def test_the_student_version_has_no_solution(key, tmp_path):
    study = STUDIES[key]
    paths = make_assignment(study, tmp_path / "course")
    student = nbformat.read(paths["student"], as_version=4)
    text = json.dumps(student)
    for marker in (*SOLUTION_MARKERS, "HIDDEN TESTS"):
        assert marker not in text, marker
    source = nbformat.read(study.notebook, as_version=4)
    for solution in _solutions(source):  # a distinctive line of each solution is gone
        line = max(solution.splitlines()[1:-1], key=len)
        assert line.strip() and line not in text
    assert text.count("raise NotImplementedError()") == 3
    assert sum(c.source.startswith(":::{exercise}") for c in student.cells) == 3
    assert [c for c in student.cells if "parameters" in c.metadata.get("tags", [])]
    config = (paths["course"] / "nbgrader_config.py").read_text()
    assert "InjectParameters" in config and "OUTPUT_DIR" in config


@pytest.mark.notebook
@pytest.mark.slow
def test_nbgrader_scores_the_student_version_zero_and_the_solutions_full(tmp_path, capsys):
    course = tmp_path / "course"
    argv = ["assignment", "2", "--output", str(course), "-p", "RUN_TRAINING", "false"]
    assert cli.main(argv) == 0
    assert "nbgrader autograde 02_ew_tune" in capsys.readouterr().out
    for student, version in (("alice", "release"), ("teacher", "source")):
        folder = course / "submitted" / student / "02_ew_tune"
        folder.mkdir(parents=True)
        shutil.copy(course / version / "02_ew_tune" / "02_ew_tune.ipynb", folder)
    run_nbgrader(course, "autograde", "02_ew_tune", "--force")
    run_nbgrader(course, "export")
    with open(course / "grades.csv") as f:
        grades = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}
    assert grades == {"alice": 0.0, "teacher": 3.0}


def test_answers_are_compared_with_tolerance_nan_and_structure():
    assert same(0.1 + 0.2, 0.3) and not same(0.31, 0.3)
    assert same(math.nan, float("nan")) and not same(0.0, math.nan)
    assert same({"a": 1.0, "b": [1, 2.0]}, {"a": 1, "b": [1.0, 2]})
    assert not same({"a": 1.0}, {"a": 1.0, "b": 2.0}) and not same(None, 0.0)
    assert same(None, None) and same("lora", "lora") and not same("x", 1.0)
