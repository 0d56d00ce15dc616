"""How a chapter is staged from a finished run: the verdict box after the question, each
figure numbered with its caption and run, the provenance block under the restated verdict,
and the injected parameters naming the folder the run ended in (never `.partial`)."""

from __future__ import annotations

import json
import re

import nbformat

from privbias_lib.book import (
    _drop_repeated_scripts,
    _stage_notebook,
    _with_figure,
    parameters_page,
    provenance_html,
)
from privbias_lib.verdicts import Verdict, save_verdicts


def _run(tmp_path):
    run = tmp_path / "01_dp_bias" / "cpu"
    run.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Study 1\n\nThe question."),
        nbformat.v4.new_code_cell("X = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            f'OUTPUT_DIR = "{run}.partial"', metadata={"tags": ["injected-parameters"]}
        ),
        nbformat.v4.new_code_cell('run.save_figure(grid, "gaps.png", "caption")'),
        nbformat.v4.new_code_cell("display(run.verdicts(v))"),
        nbformat.v4.new_markdown_cell("## Exercises"),
    ]
    nbformat.write(nb, run / "01_dp_bias.ipynb")
    record = {"run_id": "default", "profile": "cpu", "identity": "abc123def4567890",
              "finished_at": "2026-11-30T12:00:00Z", "seconds": 612.3, "host": "lab-1"}  # fmt: skip
    manifest = {
        "executed_in": f"{run}.partial",
        "parameters": {"OUTPUT_DIR": str(run), "EPSILONS": [0.5, 1.0]},
        "environment": {
            "python": "3.11.7",
            "platform": "Linux",
            "cpu_count": 2,
            "gpu": None,
            "packages": {"torch": "2.13.0", "opacus": "1.6.0"},
        },
        "data": {"dataset": "redditbias", "sha256": "f" * 64},
        "models": [{"model": "minilm-l6", "source": "model", "sha256": "e" * 64}],
    }
    (run / "run.json").write_text(json.dumps(record))
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "figures.json").write_text(json.dumps({"gaps.png": "The gaps against epsilon."}))
    save_verdicts(
        [Verdict("DP lowers it", "-0.16 [-0.19, -0.14]", "direction only", "bigger")], run
    )
    return run, record, manifest


def test_a_chapter_gets_its_verdict_captions_provenance_and_final_folder(tmp_path):
    run, _, _ = _run(tmp_path)
    target = tmp_path / "staged.ipynb"
    _stage_notebook(run, "01_dp_bias", target)
    cells = nbformat.read(target, as_version=4).cells
    assert cells[0].source.startswith("# Study 1")
    assert "pb-verdict" in cells[1].source and "direction only" in cells[1].source
    assert "hide-input" in cells[2].metadata["tags"]  # the default parameters folded
    assert ".partial" not in cells[3].source and str(run) in cells[3].source
    figure = cells[4].metadata["mystnb"]["figure"]
    assert figure["caption"].startswith("The gaps against epsilon.")
    assert (
        "run default, profile cpu" in figure["caption"] and figure["name"] == "fig-01-dp-bias-gaps"
    )
    at = next(i for i, c in enumerate(cells) if "run.verdicts(" in c.source)
    assert "pb-provenance" in cells[at + 1].source and cells[-1].source == "## Exercises"


def test_the_provenance_block_names_run_date_machine_hashes_and_versions(tmp_path):
    _, record, manifest = _run(tmp_path)
    html = provenance_html(record, manifest)
    for shown in ("abc123def456", "2026-11-30T12:00:00Z", "612 s", "lab-1", "2 CPUs",
                  "no GPU", "ffffffffffff", "minilm-l6", "eeeeeeeeeeee", "torch 2.13.0",
                  "EPSILONS", "[0.5, 1.0]"):  # fmt: skip
        assert shown in html, shown
    assert "<details><summary>parameters" in html and ".partial" not in html


def test_the_parameters_page_lists_every_study_parameter_with_its_profiles():
    page = parameters_page()
    assert page.startswith("# Parameters")
    for name in ("EPSILONS", "TUNING_GRID", "LORA_RANKS", "CONDITIONS", "TARGET_EPSILON"):
        assert re.search(rf"\|\s*{name}\s*\|", page), name
    for column in ("default \\(cpu\\)", "smoke", "paper", "description"):
        assert re.search(rf"\|\s*{column}\s*\|", page), column


def test_a_page_keeps_one_copy_of_a_repeated_inline_script(tmp_path):
    """sphinx-thebe's ``const`` config appears twice under Jupyter Book: a browser error."""
    config = '<script>const THEBE_JS_URL = "x"; const thebe_selector = ".cell"</script>'
    other = "<script>var a = 1</script>"
    page = tmp_path / "page.html"
    page.write_text(f"<head>\n    {config}\n    {other}\n    {config}\n</head>\n")
    _drop_repeated_scripts(page)
    text = page.read_text()
    assert text.count("THEBE_JS_URL") == 1 and other in text
    _drop_repeated_scripts(page)  # nothing left to drop: unchanged
    assert page.read_text() == text


def test_a_figure_shown_beside_tables_gets_its_own_captioned_cell():
    """MyST-NB labels every output of a cell with its ``figure`` metadata (duplicate
    targets): the image is moved to a cell of its own, the tables around it kept in order."""
    table = nbformat.v4.new_output("display_data", {"text/html": "<table></table>"})
    image = nbformat.v4.new_output("display_data", {"image/png": "iVBOR"})
    note = nbformat.v4.new_output("stream", name="stdout", text="done")
    figure = {"caption": "A caption.", "name": "fig-x"}
    cell = nbformat.v4.new_code_cell('run.save_figure(grid, "x.png", "A caption.")')
    cell.outputs = [table, image, note]
    code, alone, rest = _with_figure(cell, figure)
    assert code.outputs == [table] and "mystnb" not in code.metadata
    assert alone.outputs == [image] and alone.metadata["mystnb"]["figure"] == figure
    assert rest.outputs == [note]
    assert alone.source and "remove-input" in alone.metadata["tags"]  # kept, input hidden
    single = nbformat.v4.new_code_cell("plot()")
    single.outputs = [image]
    assert _with_figure(single, figure) == [single]
    assert single.metadata["mystnb"]["figure"] == figure
