"""Building the Jupyter Book from the executed study notebooks.

The sources in ``book/`` are copied into ``<out>/<profile>/`` with each study's executed
notebook (from the runner's ``<runs>/<study>/<profile>/``) as its chapter, and built
there with warnings as errors, so a smoke book and a cpu book never overwrite each other
and the repository's ``book/`` stays clean.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ._io import clear_folder, write_text_atomic
from .paths import run_folder
from .runner import finished_record
from .studies import STUDIES
from .study import FIGURES_FILE, ROOT

BOOK_SOURCE = ROOT / "book"
STAGED_MARK = ".privbias-book"  # marks a folder this module staged (safe to clear)


class BookError(RuntimeError):
    """The book cannot be built (a study has no finished run, or Sphinx failed)."""


def stage(profile: str, runs_root: str | Path, target: str | Path) -> Path:
    """Copy the book's sources and every study's executed notebook into ``target``."""
    target = Path(target)
    if target.exists() and any(target.iterdir()) and not (target / STAGED_MARK).is_file():
        raise BookError(
            f"{target} already holds files that are not a staged privbias book; the book "
            "replaces its folder's contents, so choose an empty or new --output folder (a book "
            "staged by an older privbias has no .privbias-book mark: delete it to rebuild there)"
        )
    missing = [
        key for key in STUDIES if finished_record(run_folder(runs_root, key, profile)) is None
    ]
    if missing:
        raise BookError(
            f"no finished {profile!r} run of {missing} under {runs_root}; run "
            f"`privbias reproduce --profile {profile}` (or make book PROFILE={profile}) first"
        )
    clear_folder(target, keep=("_build",))  # keep Sphinx's cache, replace the sources
    (target / STAGED_MARK).write_text("staged by privbias book; cleared on every build\n")
    shutil.copytree(
        BOOK_SOURCE, target, ignore=shutil.ignore_patterns("_build", "studies"), dirs_exist_ok=True
    )
    (target / "studies").mkdir()
    for key in STUDIES:
        run = run_folder(runs_root, key, profile)
        _stage_notebook(run, key, target / "studies" / f"{key}.ipynb")
    write_text_atomic(target / "parameters.md", parameters_page())
    shutil.copytree(_mathjax_folder(), target / "_mathjax" / "mathjax")
    return target


def _stage_notebook(run: Path, key: str, target: Path) -> None:
    """The chapter: the executed notebook with its default ``parameters`` cell folded (the
    injected cell below it shows the values that ran, with the folder the run ended in),
    the verdict box after the question, each figure numbered with its caption and run, and
    the provenance block under the restated verdict."""
    import nbformat

    from .verdicts import load_verdicts, verdict_html

    record = json.loads((run / "run.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    captions = _read_json(run / FIGURES_FILE, {})
    nb = nbformat.read(run / f"{key}.ipynb", as_version=4)
    executed_in = manifest.get("executed_in")
    cells = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "parameters" in tags and "hide-input" not in tags:
            cell.metadata["tags"] = [*tags, "hide-input"]
        if "injected-parameters" in tags and executed_in:
            cell.source = cell.source.replace(executed_in, str(run))
        figure = None
        if cell.cell_type == "code":
            for name, caption in captions.items():
                if f'"{name}"' in cell.source:
                    label = f"{caption} *(run {record.get('run_id', '?')}, profile "
                    label += f"{record.get('profile', '?')}: `{name}` in its folder)*"
                    figure = {
                        "caption": label,
                        "name": f"fig-{key}-{Path(name).stem}".replace("_", "-"),
                    }
        cells.extend(_with_figure(cell, figure) if figure else [cell])
    nb.cells = cells
    verdicts = load_verdicts(run)
    if verdicts:
        box = nbformat.v4.new_markdown_cell(verdict_html(verdicts, "Verdict of this run"))
        nb.cells.insert(1, box)
    at = next((i + 1 for i, c in enumerate(nb.cells) if "run.verdicts(" in c.source), len(nb.cells))
    nb.cells.insert(at, nbformat.v4.new_markdown_cell(provenance_html(record, manifest)))
    nbformat.write(nb, target)


def _with_figure(cell, figure: dict) -> list:
    """``cell`` with its figure captioned and numbered. MyST-NB puts a code cell's
    ``figure`` metadata on every output, so a cell that also shows tables is split: the
    code with the outputs before the image, the image alone (captioned), then the rest."""
    import nbformat

    outputs = cell.get("outputs", [])
    at = next((i for i, o in enumerate(outputs) if "image/png" in o.get("data", {})), None)
    if at is None or len(outputs) == 1:
        cell.metadata.setdefault("mystnb", {})["figure"] = figure
        return [cell]

    def outputs_only(part):
        # MyST-NB drops a cell without source: a comment, hidden by the tag
        extra = nbformat.v4.new_code_cell(
            "# outputs of the cell above", metadata={"tags": ["remove-input"]}
        )
        extra.outputs = part
        return extra

    image = outputs_only([outputs[at]])
    image.metadata["mystnb"] = {"figure": figure}
    cell.outputs = outputs[:at]
    split = [cell, image]
    if outputs[at + 1 :]:
        split.append(outputs_only(outputs[at + 1 :]))
    return split


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def provenance_html(record: dict, manifest: dict) -> str:
    """Where this page's numbers came from: the run, its date, profile, time and machine,
    the data and model hashes, and (folded) every package version and parameter."""
    env = manifest.get("environment", {})
    data = manifest.get("data", {})
    machine = f"{record.get('host', '?')}: {env.get('platform', '?')}, "
    machine += f"{env.get('cpu_count', '?')} CPUs, {env.get('gpu') or 'no GPU'}"
    models = (
        "; ".join(
            f"{m.get('model')} ({m.get('source')}, sha256 {str(m.get('sha256') or '—')[:12]})"
            for m in manifest.get("models", [])
        )
        or "—"
    )
    rows = [
        ("run", f"{record.get('run_id', '?')} · profile {record.get('profile', '?')} · "
                f"identity {str(record.get('identity', '?'))[:12]}"),
        ("finished", f"{record.get('finished_at', '?')} after {record.get('seconds', 0):,.0f} s"),
        ("machine", machine + f", Python {env.get('python', '?')}"),
        ("data", f"sha256 {str(data.get('sha256') or '—')[:12]} · "
                 + html.escape(json.dumps({k: v for k, v in data.items() if k != 'sha256'},
                                          default=str)[:300])),
        ("models", models),
    ]  # fmt: skip
    table = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v) if k != 'data' else v}</td></tr>"
        for k, v in rows
    )
    packages = ", ".join(
        f"{name} {version}" for name, version in env.get("packages", {}).items() if version
    )
    parameters = "".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(repr(v))}</code></td></tr>"
        for k, v in manifest.get("parameters", {}).items()
        if k != "OUTPUT_DIR"
    )
    return (
        '<div class="pb-provenance"><div class="pb-provenance-title">Provenance of this page'
        f"</div><table>{table}</table>"
        f"<details><summary>package versions</summary><p>{html.escape(packages)}</p></details>"
        f"<details><summary>parameters</summary><table>{parameters}</table></details>"
        "<p>From the run's <code>run.json</code> and <code>manifest.json</code>, which also "
        "hold the SHA-256 of every file it wrote.</p></div>"
    )


def _mathjax_folder() -> Path:
    """MathJax 2, as the jupyter-server-mathjax package ships it (offline formulas)."""
    import jupyter_server_mathjax

    return Path(jupyter_server_mathjax.__file__).parent / "static"


def parameters_page() -> str:
    """The "Parameters" page: per study, every parameter with its type and description
    (from the study's JSON schema), its default (the notebook's ``parameters`` cell, which
    is the ``cpu`` profile) and what the ``smoke`` and ``paper`` profiles change."""
    from .params import parameter_table

    lines = [
        "# Parameters",
        "",
        "Every study's parameters, generated from its parameter model (types, ranges and",
        "descriptions) and its notebook (the defaults, which are the `cpu` profile). The",
        "`smoke` and `paper` columns show what those profiles change; empty means the default.",
        "Any of them can be set with `privbias run STUDY -p NAME VALUE`; a bad value is refused",
        "before a kernel starts, with a message naming the parameter.",
        "",
    ]
    for study in STUDIES.values():
        columns = {"default (cpu)": study.defaults()}
        for profile in ("smoke", "paper"):
            columns[profile] = study.profile(profile)
        table = parameter_table(study.Params, columns)
        lines += [f"## {study.key}: {study.title}", "", table.to_markdown(index=False), ""]
    return "\n".join(lines)


def build(profile: str, runs_root: str | Path, out_root: str | Path, say=print) -> Path:
    """Stage and build the book with ``jupyter-book build -W -n --keep-going``;
    returns the path of its ``index.html``. ``say`` reports each step."""
    target = Path(out_root) / profile
    say(f"book ({profile}): staging sources and executed notebooks in {target}")
    source = stage(profile, runs_root, target)
    say("book: building the pages (Sphinx, warnings are errors)")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    done = subprocess.run(
        [str(jupyter_book), "build", str(source), "-W", "-n", "--keep-going"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BookError(
            "jupyter-book build failed (warnings are errors):\n"
            + done.stdout[-4000:]
            + done.stderr[-4000:]
        )
    html_root = source / "_build" / "html"
    for page in html_root.rglob("*.html"):
        _drop_repeated_scripts(page)
    return html_root / "index.html"


_INLINE_SCRIPT = re.compile(r"[ \t]*<script>[^<]*</script>\n?")


def _drop_repeated_scripts(page: Path) -> None:
    """Keep the first of identical inline scripts: sphinx-thebe adds its ``const``
    configuration twice under Jupyter Book, which every browser reports as an error
    ("Identifier 'THEBE_JS_URL' has already been declared")."""
    text = page.read_text(encoding="utf-8")
    seen: set[str] = set()

    def once(match: re.Match) -> str:
        block = match.group(0).strip()
        if block in seen:
            return ""
        seen.add(block)
        return match.group(0)

    kept = _INLINE_SCRIPT.sub(once, text)
    if kept != text:
        page.write_text(kept, encoding="utf-8")
