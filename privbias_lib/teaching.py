"""Teaching with the study notebooks: exercises with worked solutions and autograded checks
in nbgrader's markup, a student version generated from the one source notebook, and a
course folder a teacher grades with nbgrader's own commands.

In a study notebook, an exercise is: a markdown cell with a ``{exercise}`` directive (the
book numbers it); the solution between ``{solution-start}`` and ``{solution-end}`` cells
(tagged ``remove-student``: the book folds it, the student version drops the markers) — a
code cell whose answer sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
(nbgrader metadata ``solution: true``) and a markdown explanation (``remove-student``); then
a check cell (nbgrader ``grade: true`` with points, tagged ``remove-input``), whose hidden
tests sit between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``. The checks run
with the notebook in every profile, so they hold for whatever subset a run computed.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .study import Study

COURSE_ID = "privbias"
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "solution-start", "solution-end")


def same(answer: Any, expected: Any, tol: float = 1e-9) -> bool:
    """Whether a student's answer equals the expected one: numbers to ``tol`` (two NaNs
    agree: a measure the run could not compute), mappings and sequences entry by entry."""
    if isinstance(expected, dict):
        return (
            isinstance(answer, dict)
            and set(answer) == set(expected)
            and all(same(answer[k], v, tol) for k, v in expected.items())
        )
    if isinstance(expected, list | tuple):
        return len(answer) == len(expected) and all(
            same(a, e, tol) for a, e in zip(answer, expected, strict=True)
        )
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return answer == expected
    try:
        a, e = float(answer), float(expected)
    except (TypeError, ValueError):
        return False
    if math.isnan(e):
        return math.isnan(a)
    return math.isclose(a, e, rel_tol=tol, abs_tol=tol)


def _inject_parameters_class():
    """nbgrader's autograder runs a submission at the notebook's defaults (the cpu
    profile); this preprocessor injects a profile's values first, as papermill would."""
    from nbconvert.preprocessors import Preprocessor
    from traitlets import Dict

    class InjectParameters(Preprocessor):
        parameters = Dict({}).tag(config=True)

        def preprocess(self, nb, resources):
            if self.parameters:
                from papermill.parameterize import parameterize_notebook

                for cell in nb.cells:  # papermill expects a tags list on every cell
                    cell.metadata.setdefault("tags", [])
                nb.metadata.setdefault("papermill", {})
                nb = parameterize_notebook(nb, dict(self.parameters))
            return nb, resources

    return InjectParameters


InjectParameters = _inject_parameters_class()


def nbgrader_config(parameters: dict[str, Any]) -> str:
    """``nbgrader_config.py`` for a course folder: the student version drops the book-only
    cells (``remove-student``); autograding injects ``parameters`` (a profile) before it
    runs a submission; submissions are collected from ``<student>__<notebook>`` files."""
    return f'''"""nbgrader configuration written by `privbias assignment` (see its --help)."""
import os

from nbconvert.preprocessors import TagRemovePreprocessor
from nbgrader.converters.autograde import Autograde
from nbgrader.converters.generate_assignment import GenerateAssignment

from privbias_lib.teaching import InjectParameters

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = {COURSE_ID!r}
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
# the student version: without the book's solution markers, before nbgrader's own steps
c.TagRemovePreprocessor.enabled = True
c.TagRemovePreprocessor.remove_cell_tags = {{"remove-student"}}
c.GenerateAssignment.preprocessors = [
    TagRemovePreprocessor, *GenerateAssignment.class_traits()["preprocessors"].default()
]
# a study notebook trains models: give each cell time
c.Execute.timeout = 3600
# grade at these parameters (a profile: the cpu defaults take minutes per submission)
c.InjectParameters.enabled = True
c.InjectParameters.parameters = {parameters!r}
c.Autograde.autograde_preprocessors = [
    InjectParameters, *Autograde.class_traits()["autograde_preprocessors"].default()
]
# `nbgrader zip_collect NAME`: downloaded/NAME/archive/<student>__<notebook>.ipynb (or .zip)
c.FileNameCollectorPlugin.named_regexp = (
    r".*/(?P<student_id>[A-Za-z0-9\\-]+)__(?:[^/]*/)?(?P<file_id>[^/]+)$"
)
'''


def make_assignment(study: Study, output: str | Path, *, grade_profile: str = "smoke",
                    overrides: dict | None = None) -> dict[str, Path]:  # fmt: skip
    """A course folder for ``study`` in ``output``: ``source/`` (the study notebook: the
    instructor version, with solutions and checks), ``release/`` (the student version,
    generated by ``nbgrader generate_assignment``), ``nbgrader_config.py`` grading at
    ``grade_profile`` (with ``overrides``). Returns the notebooks' paths."""
    output = Path(output).resolve()
    parameters = {**study.resolve(grade_profile, overrides), "OUTPUT_DIR": "privbias-output"}
    name = study.key
    source = output / "source" / name / f"{name}.ipynb"
    source.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(study.notebook, source)
    (output / "nbgrader_config.py").write_text(nbgrader_config(parameters))
    run_nbgrader(output, "generate_assignment", name, "--force")
    student = output / "release" / name / f"{name}.ipynb"
    if not student.is_file():
        raise RuntimeError(f"nbgrader wrote no student notebook at {student}")
    return {"course": output, "instructor": source, "student": student}


def run_nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    """``nbgrader ARGS`` in ``course`` (its alembic and jupyter on the PATH: this
    environment's). Raises with nbgrader's output when it fails."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    done = subprocess.run(
        [str(Path(bin_dir) / "nbgrader"), *args], cwd=course, env=env,
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(
            f"nbgrader {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done
