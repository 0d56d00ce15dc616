"""`make book PROFILE=smoke` builds the whole book from the four executed smoke notebooks
(warnings are errors): every page exists and every chapter shows its run's figures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from notebook_checks import run_smoke, smoke_runs_root

from privbias_lib.book import BookError, stage
from privbias_lib.studies import STUDIES
from privbias_lib.study import ROOT

pytestmark = [pytest.mark.notebook, pytest.mark.slow]  # the four smoke runs and the book
PAGES = ["intro", "teaching", "gpu", "models_and_data", "parameters", "adding_a_study", "api"]


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory):
    """``make book PROFILE=smoke`` on this session's smoke runs (shared with the study
    tests, so each notebook runs once per session)."""
    for study in STUDIES.values():
        run_smoke(study, tmp_path_factory)
    runs = smoke_runs_root(tmp_path_factory)
    out = tmp_path_factory.mktemp("book")
    venv = Path(sys.executable).parent.parent
    make = ["make", "--no-print-directory", "-C", str(ROOT), "book", "PROFILE=smoke"]
    done = subprocess.run(
        [*make, f"RUNS={runs}", f"BOOK_OUT={out}", f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return out / "smoke" / "_build" / "html", done.stdout


def test_make_book_reuses_the_runs_and_says_where_the_book_is(smoke_book):
    html, stdout = smoke_book
    assert stdout.count(": reused") == len(STUDIES)  # no notebook ran twice
    assert f"The book is at {(html / 'index.html').resolve()}" in stdout


@pytest.mark.parametrize("key", list(STUDIES))
def test_every_chapter_shows_its_figures_and_no_traceback(smoke_book, tmp_path_factory, key):
    html, _ = smoke_book
    page = (html / "studies" / f"{key}.html").read_text()
    run = smoke_runs_root(tmp_path_factory) / key / "smoke"
    notebook = json.loads((run / f"{key}.ipynb").read_text())
    shown = sum(
        "image/png" in out.get("data", {})
        for cell in notebook["cells"]
        for out in cell.get("outputs", [])
    )
    assert shown >= 2 and len(re.findall(r"<img [^>]*src=", page)) >= shown
    # every saved figure is numbered and captioned, also from a cell that shows tables too
    captions = json.loads((run / "figures.json").read_text())
    for name in captions:
        anchor = f'id="fig-{key}-{Path(name).stem}"'.replace("_", "-")
        assert page.count(anchor) == 1, anchor
    assert "Traceback" not in page and "ipythontb" not in page  # no raw error output
    title = notebook["cells"][0]["source"]
    title = (title if isinstance(title, str) else "".join(title)).splitlines()[0].lstrip("# ")
    assert title.split(":")[0] in page


def test_every_other_page_is_built(smoke_book):
    html, _ = smoke_book
    for name in PAGES:
        assert (html / f"{name}.html").is_file(), name
    api = (html / "api.html").read_text()
    for documented in ("execute_run", "run_sweep", "noise_multiplier", "bias_metrics"):
        assert documented in api, documented
    intro = re.sub(r"<[^>]+>", "", (html / "intro.html").read_text())  # code is highlighted
    assert "make reproduce" in intro and "make test" in intro


def test_the_book_refuses_studies_without_a_finished_run(tmp_path):
    with pytest.raises(BookError, match="no finished 'smoke' run"):
        stage("smoke", tmp_path / "no-runs", tmp_path / "book")


def test_every_page_reads_offline_in_chromium(smoke_book):
    """Issue 22: no request to any outside host, no console error, no broken image, no
    untypeset LaTeX; every study shows its verdict twice and its provenance."""
    from browser import browser, read_page, served

    html, _ = smoke_book
    pages = [*(f"{p}.html" for p in PAGES), *(f"studies/{k}.html" for k in STUDIES)]
    with served(html) as base, browser() as b:
        for name in ["index.html", *pages]:
            report = read_page(b, f"{base}/{name}")
            assert not report.outside, (name, report.outside)
            assert not report.errors, (name, report.errors)
            assert not report.broken_images, (name, report.broken_images)
            assert not report.raw_latex, (name, report.raw_latex)
            if name.startswith("studies/"):
                assert report.text.count("Verdict of this run") == 1
                assert "Verdict: " in report.text  # restated after the results
                assert "Provenance of this page" in report.text
                assert "Traceback" not in report.text and "WARNING" not in report.text
                assert report.text.count("Exercise") >= 3


def test_every_solution_is_folded_until_clicked(smoke_book):
    from browser import browser, served, solution_folding

    html, _ = smoke_book
    with served(html) as base, browser() as b:
        for key in STUDIES:
            hidden, shown = solution_folding(b, f"{base}/studies/{key}.html")
            assert hidden and shown, key
