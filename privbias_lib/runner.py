"""Running a study notebook: validated parameters, one safe run, and all four studies.

A run's folder only ever appears complete. The notebook executes in ``<folder>.partial``
and, once it finished, that folder is renamed into place. An interrupted or failed run
keeps its ``.partial`` folder, so a rerun resumes it (the notebooks' run stores keep
their finished sub-runs), and nothing in it counts as finished. A finished folder holds
``run.json`` (status, identity, timings), the executed notebook, ``papermill.log`` (each
cell's start and output), ``manifest.json`` and the files it lists with their SHA-256,
which are checked before a run is reused. A run never replaces a folder that is not a
run (:func:`output_problem`). Sweeps over parameter grids are in :mod:`.sweeps`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._io import clear_folder, write_json_atomic
from .hashing import library_fingerprint, sha256_file, stable_hash
from .manifest import FINAL_FOLDER_ENV, MANIFEST
from .params import ParameterError, load_yaml
from .paths import run_folder
from .store import PROGRESS_ENV
from .studies import STUDIES, Study, find_study

__all__ = [
    "LOG_FILE",
    "RUN_FILE",
    "RunBusy",
    "RunSpec",
    "UnsafeOutput",
    "check_output",
    "execute_run",
    "find_study",
    "finished_record",
    "output_problem",
    "parse_value",
    "read_parameter_file",
    "reproduce",
    "reusable_record",
    "run_identity",
]

RUN_FILE = "run.json"
LOG_FILE = "papermill.log"
KERNEL_LOG_FILE = "kernel.log"  # the kernel process's own stderr
PROGRESS_FILE = ".progress.json"
PARTIAL = ".partial"
KERNEL = "python3"
# files a manifest may list that change after it is written (not checked on reuse)
_UNCHECKED = (".ipynb", ".log", RUN_FILE)


# --------------------------------------------------------------------------- parameters


def parse_value(text: str) -> Any:
    """A ``-p NAME VALUE`` value, read as YAML: ``8`` is an int, ``[1, 8]`` a list,
    ``null`` None, ``1e-5`` a float, also inside a list or mapping (YAML 1.1 would keep it a
    string), and anything that is not YAML stays a string."""
    try:
        return load_yaml(text)
    except yaml.YAMLError:
        return text


def read_parameter_file(path: str | Path) -> dict:
    """A YAML file of ``NAME: value`` (``-f params.yaml``, ``--grid grid.yaml``); a syntax
    error names the file and the line."""
    path = Path(path)
    try:
        values = load_yaml(path.read_text()) or {}
    except OSError as e:
        raise ParameterError(f"{path}: cannot be read ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ParameterError(f"{path}: not valid YAML ({where}{problem})") from None
    if not isinstance(values, dict):
        raise ParameterError(f"{path}: expected a mapping of parameter names to values")
    return values


# --------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class RunSpec:
    """One notebook run: the study, profile, parameter overrides and final folder."""

    study: str
    profile: str
    output_dir: str
    overrides: dict = field(default_factory=dict)
    run_id: str = "default"

    @property
    def folder(self) -> Path:
        return Path(self.output_dir)

    @property
    def partial(self) -> Path:
        return self.folder.with_name(self.folder.name + PARTIAL)


def run_identity(study: Study, profile: str, parameters: dict) -> str:
    """What a finished run must match to be reused: the notebook's bytes, the library's
    source and every parameter (changing any of them makes the old run stale)."""
    return stable_hash(
        {
            "study": study.key,
            "profile": profile,
            "notebook": sha256_file(study.notebook),
            "library": library_fingerprint(),
            "parameters": parameters,
        }
    )


def finished_record(folder: str | Path) -> dict | None:
    """``run.json`` of a finished run in ``folder``, or None: not there, not finished,
    or a file its manifest lists is missing or changed."""
    return _finished(Path(folder))[0]


def _finished(folder: Path) -> tuple[dict | None, str]:
    """(record, "") for a finished run, else (None, why it is not one)."""
    try:
        record = json.loads((folder / RUN_FILE).read_text())
    except OSError:
        return None, f"no {RUN_FILE}"
    except ValueError:
        return None, f"{RUN_FILE} is not valid JSON"
    if not isinstance(record, dict) or record.get("status") != "finished":
        status = record.get("status") if isinstance(record, dict) else None
        return None, f"not finished (status {status!r})"
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None, f"{MANIFEST} is missing or not valid JSON"
    if not manifest.get("files"):
        return None, f"{MANIFEST} lists no files"
    for name, digest in manifest["files"].items():
        if name.endswith(_UNCHECKED):
            continue
        path = folder / name
        if not path.is_file():
            return None, f"{name} is missing"
        if sha256_file(path) != digest:
            return None, f"{name} was changed after the run (its SHA-256 differs)"
    return record, ""


class RunBusy(RuntimeError):
    """Another process is executing this run right now."""


class UnsafeOutput(ParameterError):
    """An output folder holds something a run must not replace (a user's files, or
    another study's run without ``--force``)."""


def _run_study_of(folder: Path) -> str | None:
    """The study named by ``folder/run.json``, "" for a run record without one, None when
    ``folder`` holds no readable run record."""
    try:
        record = json.loads((folder / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return str(record.get("study") or "") if isinstance(record, dict) else None


def _contents(folder: Path, shown: int = 5) -> str:
    entries = sorted(folder.iterdir())
    names = [p.name + ("/" if p.is_dir() else "") for p in entries[:shown]]
    more = f", ... ({len(entries)} entries)" if len(entries) > shown else ""
    return ", ".join(names) + more


def output_problem(folder: str | Path, study: str, *, force: bool = False) -> str | None:
    """Why a run of ``study`` may not use ``folder`` (or its ``.partial`` sibling), or
    None when it may: each must be absent, empty, or a run of the same study (by its
    ``run.json``). Another study's run may be replaced with ``force``; a folder that is
    not a run never is, whatever ``force`` says."""
    folder = Path(folder)
    for path in (folder, folder.with_name(folder.name + PARTIAL)):
        if not path.exists() and not path.is_symlink():
            continue
        if path.is_symlink() or not path.is_dir():
            return f"{path} exists and is not a folder: a run writes its output folder there"
        if not any(path.iterdir()):
            continue
        owner = _run_study_of(path)
        if owner is None:
            return (
                f"{path} already holds files that are not a privbias run ({_contents(path)}; "
                f"no {RUN_FILE}): a run replaces its output folder, so it never writes into "
                "one like this, even with --force. Choose an empty or new --output folder."
            )
        if owner != study and not force:
            what = f"a run of {owner}" if owner else "a run of another study"
            return (
                f"{path} holds {what}, not of {study}: choose another --output, or pass "
                "--force to replace that run"
            )
    return None


def check_output(folder: str | Path, study: str, *, force: bool = False) -> None:
    """Raise :class:`UnsafeOutput` when :func:`output_problem` finds one."""
    problem = output_problem(folder, study, force=force)
    if problem:
        raise UnsafeOutput(problem)


@contextlib.contextmanager
def _exclusive(spec: RunSpec) -> Iterator[None]:
    """Hold a lock on the run (released when the process ends, even if killed)."""
    spec.folder.parent.mkdir(parents=True, exist_ok=True)
    lock = spec.folder.with_name(f".{spec.folder.name}.lock")
    with open(lock, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusy(f"{spec.folder} is being run by another process") from None
        yield


def error_summary(exc: BaseException) -> str:
    """One line for a failed run: the notebook's exception, or the Python one."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    return f"{type(exc).__name__}: {exc}"


def reusable_record(spec: RunSpec, identity: str | None = None) -> dict | None:
    """The record of ``spec``'s finished run, marked ``reused``, if its identity (the
    notebook, the library source, every parameter) is unchanged; else None."""
    if identity is None:
        study = STUDIES[spec.study]
        identity = run_identity(study, spec.profile, study.resolve(spec.profile, spec.overrides))
    done = finished_record(spec.folder)
    if done and done.get("identity") == identity:
        return {**done, "status": "reused"}
    return None


def execute_run(
    spec: RunSpec, *, force: bool = False, show: TerminalProgress | None = None
) -> dict:
    """Run one notebook unless an identical finished run is already in its folder.

    Returns the run's record: ``status`` is ``reused``, ``finished`` or ``failed`` (with
    ``error`` and the executed ``notebook`` where the error shows). Bad parameters, a bad
    model name or an unsafe output folder raise :class:`ParameterError` before a kernel
    starts; an interrupt is recorded and re-raised. ``show`` reports progress.
    """
    study = STUDIES[spec.study]
    parameters = study.resolve(spec.profile, spec.overrides)
    identity = run_identity(study, spec.profile, parameters)
    if not force and (done := reusable_record(spec, identity)):
        return done
    check_output(spec.folder, spec.study, force=force)  # never replace a user's folder
    study.check(study.validate({**parameters, "OUTPUT_DIR": str(spec.partial)}))
    with _exclusive(spec):
        _prepare_partial(spec.partial, fresh=force, previous=spec.folder)
        record = {
            "run_id": spec.run_id,
            "study": spec.study,
            "profile": spec.profile,
            "overrides": spec.overrides,
            "identity": identity,
            "output_dir": str(spec.folder.resolve()),
            "notebook": str((spec.folder / f"{study.key}.ipynb").resolve()),
            "status": "running",
            "started_at": _now(),
            "resumed": (spec.partial / "runs").is_dir(),
            "host": os.uname().nodename,
        }
        write_json_atomic(spec.partial / RUN_FILE, record)
        start = time.perf_counter()
        try:
            execute_notebook(study, spec.partial, parameters, final=spec.folder, show=show)
        except BaseException as e:
            interrupted = isinstance(e, KeyboardInterrupt | SystemExit)
            record.update(
                status="interrupted" if interrupted else "failed",
                error=error_summary(e),
                notebook=str((spec.partial / f"{study.key}.ipynb").resolve()),
                seconds=round(time.perf_counter() - start, 1),
            )
            write_json_atomic(spec.partial / RUN_FILE, record)
            if interrupted or not _is_notebook_error(e):
                raise
            return record
        if not (spec.partial / MANIFEST).is_file():
            raise RuntimeError(f"{spec.partial}: the notebook finished without a {MANIFEST}")
        record.update(
            status="finished", finished_at=_now(), seconds=round(time.perf_counter() - start, 1)
        )
        problem = output_problem(spec.folder, spec.study, force=force)
        if problem:  # something appeared in the output folder while the notebook ran
            record.update(status="failed", error=f"not moved into place: {problem}")
            record["notebook"] = str((spec.partial / f"{study.key}.ipynb").resolve())
            write_json_atomic(spec.partial / RUN_FILE, record)
            raise UnsafeOutput(f"{record['error']} (the finished run stays in {spec.partial})")
        write_json_atomic(spec.partial / RUN_FILE, record)
        _replace_folder(spec.partial, spec.folder)
    return record


def _prepare_partial(partial: Path, fresh: bool, previous: Path | None = None) -> None:
    """An empty ``.partial`` folder but for ``runs/``, the notebook's store of finished
    sub-runs (checksummed and keyed by everything that determines them), which a rerun
    resumes from; the sub-runs of ``previous`` (a finished run being redone, say because
    one of its files was changed) are added to it. ``fresh`` keeps nothing. Outputs of an
    earlier attempt never leak into this one."""
    clear_folder(partial, keep=() if fresh else ("runs",))
    old = previous / "runs" if previous is not None else None
    if fresh or old is None or not old.is_dir() or _run_study_of(previous) is None:
        return
    (partial / "runs").mkdir(exist_ok=True)
    for stored in old.glob("*.json"):
        target = partial / "runs" / stored.name
        if not target.exists():
            shutil.copy2(stored, target)  # the store checks every file's key and checksum


def _is_notebook_error(exc: BaseException) -> bool:
    import papermill

    return isinstance(exc, papermill.PapermillExecutionError)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _replace_folder(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``; an old ``target`` (an empty folder or a run, as
    :func:`output_problem` checked) is moved aside first, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(source, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- papermill


def _ipc_kernel_manager(kernel_log: Path, sockets: Path):
    """Kernels talk over local IPC sockets (no TCP ports, and no warning about TCP
    without encryption from every kernel), named in their own folder ``sockets`` so that
    kernels started at once (a sweep's parallel runs) never share one, and write their own
    stderr (start-up notices, the traceback of a message cut by Ctrl-C) to ``kernel_log``,
    not the terminal."""
    from jupyter_client import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(transport="ipc", ip=str(sockets / "kernel"), **kwargs)

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            with open(kernel_log, "ab") as log:  # the child keeps its own descriptor
                kw.setdefault("stdout", log)
                kw.setdefault("stderr", log)
                return await super()._async_launch_kernel(kernel_cmd, **kw)

    return IPCKernelManager


def execute_notebook(
    study: Study,
    output_dir: Path,
    parameters: dict,
    *,
    final: Path | None = None,
    show: TerminalProgress | None = None,
) -> Path:
    """Run ``study``'s notebook through papermill into ``output_dir`` with ``parameters``
    (and ``OUTPUT_DIR``); every cell's start and output goes to ``papermill.log`` there,
    progress to ``show``. ``final`` is the folder the run will be moved to (what the
    manifest records). Returns the executed notebook's path."""
    import papermill

    output_dir = Path(output_dir).resolve()  # the kernel runs in notebooks/
    output_dir.mkdir(parents=True, exist_ok=True)
    executed = output_dir / f"{study.key}.ipynb"
    log_file = output_dir / LOG_FILE
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("papermill")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the log file, not the terminal, gets every cell
    watcher = show.watch(study, output_dir / PROGRESS_FILE, logger) if show else None
    env = {PROGRESS_ENV: str(output_dir / PROGRESS_FILE), FINAL_FOLDER_ENV: str(final or "")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: v for k, v in env.items() if v})
    try:
        # a short private folder: a socket's path must stay under ~100 characters
        with (
            watcher or contextlib.nullcontext(),
            tempfile.TemporaryDirectory(prefix="privbias-kernel-") as sockets,
        ):
            papermill.execute_notebook(
                str(study.notebook),
                str(executed),
                parameters={**parameters, "OUTPUT_DIR": str(output_dir)},
                kernel_name=KERNEL,
                cwd=str(study.notebook.parent),
                progress_bar=False,
                log_output=True,
                kernel_manager_class=_ipc_kernel_manager(
                    output_dir / KERNEL_LOG_FILE, Path(sockets)
                ),
            )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        logger.removeHandler(handler)
        logger.propagate = True
        handler.close()
    return executed


class TerminalProgress:
    """What a run shows on the terminal while its notebook executes: the study, the cell
    (k of N) and, inside a long cell, the progress the notebook reports (runs k of N,
    elapsed, an estimate of what is left). On a terminal one line is rewritten; in a log
    a line is printed when something changes, at most every ``every`` seconds.
    ``verbose`` streams the cell log itself."""

    def __init__(self, stream=None, *, verbose: bool = False, every: float = 30.0):
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.verbose, self.every = verbose, every

    @contextlib.contextmanager
    def watch(self, study: Study, progress_file: Path, logger: logging.Logger):
        import nbformat

        cells = len(nbformat.read(study.notebook, as_version=4).cells) + 1  # + injected
        state = {"cell": 0, "cells": cells, "line": ""}
        handler = _CellHandler(state, self if self.verbose else None)
        logger.addHandler(handler)
        started, last_print = time.monotonic(), [0.0]

        def tick():
            line = self._line(study, state, progress_file, time.monotonic() - started)
            now = time.monotonic()
            if self.live:
                self._write("\r\033[K" + line[: _width() - 1])
            elif line != state["line"] and now - last_print[0] >= self.every:
                self._write(line + "\n")
                last_print[0] = now
            state["line"] = line

        try:
            with ticking(0.5, tick):
                yield
        finally:
            logger.removeHandler(handler)
            if self.live:
                self._write("\r\033[K")

    def _line(self, study: Study, state: dict, progress_file: Path, elapsed: float) -> str:
        from .store import _duration, describe_progress

        text = f"{study.key} · cell {state['cell']}/{state['cells']} · {_duration(elapsed)}"
        try:
            inner = json.loads(progress_file.read_text())
        except (OSError, ValueError):
            inner = None
        if inner:
            text += " · " + describe_progress(inner)
        return text

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def say(self, text: str) -> None:
        """A line above the live one (the cell log with ``verbose``)."""
        self._write(("\r\033[K" if self.live else "") + text + "\n")


@contextlib.contextmanager
def ticking(seconds: float, tick) -> Iterator[None]:
    """Call ``tick()`` every ``seconds`` in a background thread while the block runs."""
    import threading

    stop = threading.Event()

    def loop():
        while not stop.wait(seconds):
            tick()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class _CellHandler(logging.Handler):
    """Follows papermill's "Executing Cell N" lines (and echoes the log when verbose)."""

    _CELL = re.compile(r"Executing Cell (\d+)")

    def __init__(self, state: dict, echo: TerminalProgress | None):
        super().__init__(logging.INFO)
        self.state, self.echo = state, echo

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if m := self._CELL.search(message):
            self.state["cell"] = int(m.group(1))
        if self.echo is not None:
            for line in message.rstrip().splitlines():
                self.echo.say(f"  | {line}")


def _width() -> int:
    return shutil.get_terminal_size((100, 20)).columns


# --------------------------------------------------------------------------- reproduce


def reproduce(
    profile: str,
    runs_root: str | Path,
    *,
    force: bool = False,
    studies: list[str] | None = None,
    show: TerminalProgress | None = None,
    say=print,
) -> list[dict]:
    """Run every study notebook with ``profile`` into ``runs_root/<study>/<profile>``,
    reusing finished runs unless ``force``. Every study, model name and output folder is
    checked first; a failing notebook stops none of the others. One record per study."""
    chosen = [find_study(s) for s in studies] if studies else list(STUDIES.values())
    specs = [RunSpec(s.key, profile, str(run_folder(runs_root, s.key, profile))) for s in chosen]
    for spec, study in zip(specs, chosen, strict=True):  # everything refused before any run
        parameters = study.resolve(profile)
        check_output(spec.folder, spec.study, force=force)
        study.check(study.validate({**parameters, "OUTPUT_DIR": str(spec.partial)}))
    records = []
    for i, spec in enumerate(specs, 1):
        record = None if force else reusable_record(spec)
        if record is None:
            log = spec.partial / LOG_FILE
            say(f"[{i}/{len(specs)}] {spec.study} ({profile}): running; cell log {log}")
            record = execute_run(spec, force=force, show=show)
        took = record.get("seconds", 0)
        say(f"[{i}/{len(specs)}] {spec.study}: {record['status']} ({took:.0f} s) -> {spec.folder}")
        records.append(record)
    return records


def _main(argv: list[str]) -> int:
    """Child-process entry (a sweep's run): run one spec, print its record last."""
    payload = json.loads(argv[0])
    spec = RunSpec(**payload["spec"])
    try:
        record = execute_run(spec, force=payload["force"])
    except (ParameterError, RunBusy) as e:
        record = {**payload["spec"], "status": "failed", "error": str(e), "notebook": ""}
    except KeyboardInterrupt:
        record = {**payload["spec"], "status": "interrupted", "error": "interrupted"}
    print(json.dumps(record, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
