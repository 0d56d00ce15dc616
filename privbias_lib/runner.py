"""Running the study notebooks: one validated run, a resumable sweep over a parameter
grid (in local processes or as Ray tasks), and collecting many runs into one table.

A run's folder only ever appears complete. The notebook executes in ``<folder>.partial``
and, once it finished, that folder is renamed into place. An interrupted or failed run
keeps its ``.partial`` folder, so a rerun resumes it (the notebooks' run stores keep
their finished sub-runs), and nothing in it counts as finished. A finished folder holds
``run.json`` (status, identity, timings), the executed notebook, ``papermill.log`` (each
cell's start and output), ``manifest.json`` and the files it lists with their SHA-256,
which are checked before a run is reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ._io import clear_folder, sha256_file, write_json_atomic
from .notebook import ParameterError, stable_hash
from .studies import PROFILES, STUDIES, Study, execute, load_profile, notebook_defaults

if TYPE_CHECKING:
    import pandas as pd

RUN_FILE = "run.json"
LOG_FILE = "papermill.log"
PARTIAL = ".partial"
# files a manifest may list that change after it is written (not checked on reuse)
_UNCHECKED = (".ipynb", ".log", RUN_FILE)


# --------------------------------------------------------------------------- parameters


def find_study(name: str) -> Study:
    """A study by key (``03_lora_vs_dp``), number (``03``, ``3``) or name (``lora_vs_dp``)."""
    if name in STUDIES:
        return STUDIES[name]
    for key, study in STUDIES.items():
        number, rest = key.split("_", 1)
        if name in (number, number.lstrip("0"), rest):
            return study
    raise ParameterError(
        f"unknown study {name!r}; known: {list(STUDIES)} (or a number 1-4, or the key "
        "without its number)"
    )


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse_value(text: str) -> Any:
    """A ``-p NAME VALUE`` value, read as YAML: ``8`` is an int, ``[1, 8]`` a list,
    ``null`` None, ``1e-5`` a float (YAML 1.1 would keep it a string), and anything
    that is not YAML stays a string."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        return float(value)
    return value


def read_parameter_file(path: str | Path) -> dict:
    """A YAML file of ``NAME: value`` overrides (``-f params.yaml``)."""
    values = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(values, dict):
        raise ParameterError(f"{path}: expected a mapping of parameter names to values")
    return values


def resolve_parameters(study: Study, profile: str, overrides: dict | None = None) -> dict:
    """The parameters a run injects: the notebook's defaults, then the ``profile`` file,
    then ``overrides``; validated by the study's parameter class *before* any kernel
    starts. Raises :class:`ParameterError` naming the parameter (unknown names list the
    known ones). ``OUTPUT_DIR`` is not among them: the runner chooses it."""
    overrides = dict(overrides or {})
    if profile not in PROFILES:
        raise ParameterError(f"unknown profile {profile!r}; known: {list(PROFILES)}")
    params_type = study.params_type()
    known = sorted(set(params_type.names()) - {"OUTPUT_DIR"})
    if "OUTPUT_DIR" in overrides:
        raise ParameterError("OUTPUT_DIR is set by the runner: use --output instead")
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {unknown} for {study.key}; known: {', '.join(known)}"
        )
    merged = {**notebook_defaults(study), **load_profile(study, profile), **overrides}
    merged.pop("OUTPUT_DIR", None)
    try:
        params_type.from_mapping({**merged, "OUTPUT_DIR": "unused"})
    except ParameterError as e:
        where = f"{study.key}, profile {profile}" + (
            f", overrides {overrides}" if overrides else ""
        )
        raise ParameterError(f"{where}: {e}") from None
    return merged


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


def run_id_for(overrides: dict, label: list[str] | None = None) -> str:
    """A stable, readable id for a run: the ``label`` parameters (default: every
    override) and a hash of all overrides, e.g. ``TARGET_EPSILON=8.0-64f67b2e``."""
    if not overrides:
        return "default"

    def short(v: Any) -> str:
        if isinstance(v, list | tuple):
            return "-".join(short(x) for x in v)
        if isinstance(v, dict):
            return "-".join(f"{k}.{short(x)}" for k, x in v.items())
        return str(v)

    names = sorted(label if label is not None else overrides)
    slug = "_".join(f"{k}={short(overrides[k])}" for k in names)
    slug = re.sub(r"[^A-Za-z0-9._=+-]+", "-", slug)[:60].strip("-_.") or "run"
    return f"{slug}-{stable_hash(overrides)[:8]}"


@functools.cache
def library_fingerprint() -> str:
    """SHA-256 over the source of every ``privbias_lib`` module (path and bytes)."""
    import hashlib

    package = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


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
    folder = Path(folder)
    try:
        record = json.loads((folder / RUN_FILE).read_text())
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if record.get("status") != "finished" or not manifest.get("files"):
        return None
    for name, digest in manifest["files"].items():
        if name.endswith(_UNCHECKED):
            continue
        path = folder / name
        if not path.is_file() or sha256_file(path) != digest:
            return None
    return record


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


def _error_summary(exc: BaseException) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    return f"{type(exc).__name__}: {exc}"


def reusable_record(spec: RunSpec, identity: str | None = None) -> dict | None:
    """The record of ``spec``'s finished run, marked ``reused``, if its identity (the
    notebook, the library source, every parameter) is unchanged; else None."""
    if identity is None:
        study = STUDIES[spec.study]
        identity = run_identity(
            study, spec.profile, resolve_parameters(study, spec.profile, spec.overrides)
        )
    done = finished_record(spec.folder)
    if done and done.get("identity") == identity:
        return {**done, "status": "reused"}
    return None


def execute_run(spec: RunSpec, *, force: bool = False, progress_bar: bool = False) -> dict:
    """Run one notebook unless an identical finished run is already in its folder.

    Returns the run's record: ``status`` is ``reused``, ``finished`` or ``failed`` (with
    ``error`` and the executed ``notebook`` where the error shows). Bad parameters raise
    :class:`ParameterError` before a kernel starts; an interrupt is recorded and re-raised.
    """
    study = STUDIES[spec.study]
    parameters = resolve_parameters(study, spec.profile, spec.overrides)
    identity = run_identity(study, spec.profile, parameters)
    if not force and (done := reusable_record(spec, identity)):
        return done
    check_output(spec.folder, spec.study, force=force)  # never replace a user's folder
    with _exclusive(spec):
        _prepare_partial(spec.partial, fresh=force)
        params = study.params_type().from_mapping({**parameters, "OUTPUT_DIR": str(spec.partial)})
        study.experiment().fail_early(params)  # device, model kind: still before the kernel
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
            execute(
                study,
                spec.profile,
                spec.partial,
                parameters,
                progress_bar=progress_bar,
                log_file=spec.partial / LOG_FILE,
            )
        except BaseException as e:
            interrupted = isinstance(e, KeyboardInterrupt | SystemExit)
            record.update(
                status="interrupted" if interrupted else "failed",
                error=_error_summary(e),
                notebook=str((spec.partial / f"{study.key}.ipynb").resolve()),
                seconds=round(time.perf_counter() - start, 1),
            )
            write_json_atomic(spec.partial / RUN_FILE, record)
            if interrupted or not _is_notebook_error(e):
                raise
            return record
        record.update(
            status="finished", finished_at=_now(), seconds=round(time.perf_counter() - start, 1)
        )
        _point_manifest_at(spec.partial / "manifest.json", spec.folder)
        problem = output_problem(spec.folder, spec.study, force=force)
        if problem:  # something appeared in the output folder while the notebook ran
            record.update(status="failed", error=f"not moved into place: {problem}")
            record["notebook"] = str((spec.partial / f"{study.key}.ipynb").resolve())
            write_json_atomic(spec.partial / RUN_FILE, record)
            raise UnsafeOutput(f"{record['error']} (the finished run stays in {spec.partial})")
        write_json_atomic(spec.partial / RUN_FILE, record)
        _replace_folder(spec.partial, spec.folder)
    return record


def _prepare_partial(partial: Path, fresh: bool) -> None:
    """An empty ``.partial`` folder but for ``runs/``, the notebook's store of finished
    sub-runs (checksummed and keyed by their parameters), which a rerun resumes from;
    ``fresh`` drops that too. Outputs of an earlier attempt never leak into this one."""
    clear_folder(partial, keep=() if fresh else ("runs",))


def _is_notebook_error(exc: BaseException) -> bool:
    import papermill

    return isinstance(exc, papermill.PapermillExecutionError)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _point_manifest_at(manifest: Path, folder: Path) -> None:
    """The notebook ran in the ``.partial`` folder: record the folder it ends up in."""
    if not manifest.is_file():
        raise RuntimeError(f"{manifest.parent}: the notebook finished without a manifest.json")
    data = json.loads(manifest.read_text())
    data.setdefault("parameters", {})["OUTPUT_DIR"] = str(folder.resolve())
    data["executed_in"] = str(manifest.parent.resolve())
    write_json_atomic(manifest, data)


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


# --------------------------------------------------------------------------- sweeps


def expand_grid(grid: dict) -> list[dict]:
    """The runs of a grid file's contents: every combination of the ``grid`` lists (in
    the file's order), each with the fixed ``parameters`` added.

    ``{"parameters": {"EPOCHS": 1}, "grid": {"SEEDS": [[0], [1]], "MODEL": ["a", "b"]}}``
    gives four runs.
    """
    if not isinstance(grid, dict) or "grid" not in grid:
        raise ParameterError("a grid file needs a 'grid:' mapping of NAME: [values, ...]")
    extra = sorted(set(grid) - {"grid", "parameters"})
    if extra:
        raise ParameterError(f"grid file: unknown key(s) {extra}; allowed: grid, parameters")
    axes, fixed = grid["grid"], grid.get("parameters") or {}
    if not isinstance(axes, dict) or not axes or not isinstance(fixed, dict):
        raise ParameterError("grid file: 'grid' and 'parameters' must be mappings")
    for name, values in axes.items():
        if not isinstance(values, list) or not values:
            raise ParameterError(f"grid file: {name} must list at least one value")
        if name in fixed:
            raise ParameterError(f"grid file: {name} is both fixed and swept")
    names = list(axes)
    return [
        {**fixed, **dict(zip(names, combo, strict=True))}
        for combo in itertools.product(*axes.values())
    ]


def plan_sweep(
    study: Study,
    profile: str,
    points: list[dict],
    output: str | Path,
    label: list[str] | None = None,
) -> list[RunSpec]:
    """One :class:`RunSpec` per grid point, each validated now (before any run starts);
    run ids name the ``label`` parameters (the swept ones)."""
    specs, seen = [], {}
    for point in points:
        resolve_parameters(study, profile, point)
        run_id = run_id_for(point, label)
        if run_id in seen:
            raise ParameterError(f"grid file: the run {point} appears twice")
        seen[run_id] = point
        folder = Path(output).resolve() / run_id  # absolute: Ray workers run elsewhere
        specs.append(RunSpec(study.key, profile, str(folder), point, run_id))
    return specs


def check_sweep_output(output: str | Path, specs: list[RunSpec], *, force: bool = False) -> None:
    """Before a sweep starts: its ``sweep.json`` may only replace a sweep record, and
    every run folder must pass :func:`check_output`."""
    record = Path(output) / "sweep.json"
    if record.exists():
        try:
            ours = {"study", "runs"} <= set(json.loads(record.read_text()))
        except (OSError, ValueError, TypeError):
            ours = False
        if not ours:
            raise UnsafeOutput(f"{record} exists and is not a privbias sweep record")
    for spec in specs:
        check_output(spec.folder, spec.study, force=force)


def gpus_needed(study: Study, profile: str, overrides: dict | None = None) -> int:
    """GPUs one run asks for: one when its ``DEVICE`` is ``cuda`` (the ``paper``
    profiles), none otherwise (``None`` picks CUDA only when the worker has one)."""
    return int(resolve_parameters(study, profile, overrides).get("DEVICE") == "cuda")


def _child_command(spec: RunSpec, force: bool) -> list[str]:
    payload = json.dumps({"spec": asdict(spec), "force": force})
    return [sys.executable, "-m", "privbias_lib.runner", payload]


def run_in_subprocess(spec: RunSpec, force: bool = False, env: dict | None = None) -> dict:
    """Execute one run in a fresh Python process; its record (a crash becomes ``failed``)."""
    done = subprocess.run(
        _child_command(spec, force),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        with contextlib.suppress(ValueError):
            return json.loads(lines[-1])
    return {
        **asdict(spec),
        "status": "failed",
        "error": (done.stderr.strip().splitlines() or ["no output"])[-1][:500],
        "notebook": str(spec.partial / f"{spec.study}.ipynb"),
    }


def _local_backend(specs, *, workers: int, force: bool) -> Iterator[tuple[RunSpec, dict]]:
    threads = max(1, (os.cpu_count() or 1) // workers)
    env = {} if "OMP_NUM_THREADS" in os.environ else {"OMP_NUM_THREADS": str(threads)}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(run_in_subprocess, s, force, env): s for s in specs}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _ray_task(spec: dict, force: bool) -> dict:
    """Body of one Ray task: the run in a subprocess of the Ray worker (which sees only
    the GPUs Ray assigned it through ``CUDA_VISIBLE_DEVICES``)."""
    return run_in_subprocess(RunSpec(**spec), force)


def _ray_backend(
    specs, *, workers: int, force: bool, address: str | None, gpus: int, cpus: int
) -> Iterator[tuple[RunSpec, dict]]:
    try:
        import ray
    except ImportError:
        raise ParameterError(
            "--backend ray needs Ray: pip install -e '.[ray]' (make test installs it)"
        ) from None
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(
                num_cpus=workers * cpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
    available = ray.cluster_resources().get("GPU", 0)
    if gpus > available:
        raise ParameterError(
            f"each run needs {gpus} GPU(s) but the Ray cluster has {available:g}; start the "
            "sweep on a GPU cluster (--address) or choose a profile whose DEVICE is not 'cuda'"
        )
    task = ray.remote(_ray_task).options(num_gpus=gpus, num_cpus=cpus, max_retries=0)
    pending = {task.remote(asdict(s), force): s for s in specs}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        spec = pending.pop(done[0])
        try:
            yield spec, ray.get(done[0])
        except Exception as e:  # the worker died: the run is failed, the others go on
            yield spec, {**asdict(spec), "status": "failed", "error": _error_summary(e)}


@dataclass
class SweepReport:
    """What a sweep did: one record per run, in the grid's order."""

    records: list[dict]
    output: Path

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.records)

    @property
    def failures(self) -> list[dict]:
        return [r for r in self.records if r["status"] not in ("finished", "reused")]

    def summary(self) -> str:
        lines = [
            f"{len(self.records)} runs: {self.count('finished')} ran, {self.count('reused')} "
            f"reused, {len(self.failures)} failed -> {self.output}"
        ]
        for r in self.failures:
            lines.append(f"  FAILED {r['run_id']}: {r.get('error', '')}")
            lines.append(f"         the error shows in {r.get('notebook', '?')}")
        return "\n".join(lines)


def run_sweep(
    specs: list[RunSpec],
    output: str | Path,
    *,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    gpus_per_run: int | None = None,
    cpus_per_run: int = 1,
    force: bool = False,
) -> SweepReport:
    """Execute ``specs`` (from :func:`plan_sweep`): finished runs are reused, the others
    run ``workers`` at a time, locally or as Ray tasks; one failure stops no other run.
    ``sweep.json`` in ``output`` lists every run with its status."""
    from tqdm.auto import tqdm

    if backend not in ("local", "ray"):
        raise ParameterError(f"backend {backend!r} is not one of ['local', 'ray']")
    if workers < 1:
        raise ParameterError(f"workers = {workers} is invalid: expected at least 1")
    output = Path(output)
    check_sweep_output(output, specs, force=force)
    records: dict[str, dict] = {}
    todo = []
    for spec in specs:
        done = None if force else reusable_record(spec)
        if done:
            records[spec.run_id] = done
        else:
            todo.append(spec)
    bar = tqdm(total=len(specs), initial=len(records), unit="run", desc=f"sweep {output.name}")

    def finish(spec: RunSpec, record: dict) -> None:
        records[spec.run_id] = record
        mark = "done" if record["status"] == "finished" else record["status"].upper()
        took = f"{record.get('seconds', 0):.0f} s" if "seconds" in record else ""
        bar.write(f"{mark:>6} {spec.run_id} {took}".rstrip())
        bar.update(1)
        _write_sweep(output, specs, records)

    _write_sweep(output, specs, records)
    try:
        if todo and backend == "local":
            for spec, record in _local_backend(todo, workers=workers, force=force):
                finish(spec, record)
        elif todo:
            first = todo[0]
            gpus = (
                gpus_per_run
                if gpus_per_run is not None
                else gpus_needed(STUDIES[first.study], first.profile, first.overrides)
            )
            for spec, record in _ray_backend(
                todo, workers=workers, force=force, address=address, gpus=gpus, cpus=cpus_per_run
            ):
                finish(spec, record)
    finally:
        bar.close()
    return SweepReport([records[s.run_id] for s in specs if s.run_id in records], output)


def _write_sweep(output: Path, specs: list[RunSpec], records: dict[str, dict]) -> None:
    runs = [
        {
            "run_id": s.run_id,
            "overrides": s.overrides,
            "status": records.get(s.run_id, {}).get("status", "pending"),
        }
        for s in specs
    ]
    study, profile = (specs[0].study, specs[0].profile) if specs else ("", "")
    write_json_atomic(output / "sweep.json", {"study": study, "profile": profile, "runs": runs})


# --------------------------------------------------------------------------- collecting


def finished_runs(root: str | Path) -> Iterable[tuple[Path, dict]]:
    """``(folder, run record)`` of every finished run under ``root`` (partial ones skipped)."""
    root = Path(root)
    for run_file in sorted(root.rglob(RUN_FILE)):
        folder = run_file.parent
        names = [folder.name, *(p.name for p in folder.relative_to(root).parents if p.name)]
        if any(n.endswith(PARTIAL) or n.startswith(".") for n in names):
            continue  # unfinished, or an old folder being replaced
        record = finished_record(folder)
        if record is not None:
            yield folder, record


def collect(root: str | Path) -> pd.DataFrame:
    """Every finished run's ``results.csv`` under ``root`` in one tidy table, with
    ``run_id``, ``study``, ``profile`` and the run's parameter overrides as columns
    (lists and mappings as JSON text). Empty if no run has finished."""
    import pandas as pd

    frames = []
    for folder, record in finished_runs(root):
        results = folder / "results.csv"
        if not results.is_file():
            continue
        df = pd.read_csv(results)
        info = {"run_id": record["run_id"], "study": record["study"], "profile": record["profile"]}
        for name, value in (record.get("overrides") or {}).items():
            info[name] = json.dumps(value) if isinstance(value, list | dict) else value
        for name, value in reversed(info.items()):
            column = name if name not in df.columns else f"param_{name}"
            df.insert(0, column, value)
        frames.append(df)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- reproduce


def reproduce(
    profile: str, runs_root: str | Path, *, force: bool = False, studies: list[str] | None = None
) -> list[dict]:
    """Run every study notebook with ``profile`` into ``runs_root/<study>/<profile>``,
    reusing finished runs unless ``force``. Every study is validated first; a failing
    notebook stops none of the others. Returns one record per study."""
    chosen = [find_study(s) for s in studies] if studies else list(STUDIES.values())
    root = Path(runs_root).resolve()
    specs = [RunSpec(s.key, profile, str(root / s.key / profile)) for s in chosen]
    for spec in specs:  # every bad profile or output folder is reported before anything runs
        resolve_parameters(STUDIES[spec.study], profile)
        check_output(spec.folder, spec.study, force=force)
    records = []
    for spec in specs:
        record = None if force else reusable_record(spec)
        if record is None:
            print(f"{spec.study} ({profile}) ... cell log: {spec.partial / LOG_FILE}", flush=True)
            record = execute_run(spec, force=force, progress_bar=sys.stderr.isatty())
        records.append(record)
        took = record.get("seconds", 0)
        print(f"{spec.study}: {record['status']} ({took:.0f} s) -> {spec.folder}", flush=True)
    return records


def _main(argv: list[str]) -> int:
    """Child-process entry: run one spec, print its record as the last line."""
    payload = json.loads(argv[0])
    spec = RunSpec(**payload["spec"])
    try:
        record = execute_run(spec, force=payload["force"])
    except (ParameterError, RunBusy) as e:
        record = {**asdict(spec), "status": "failed", "error": str(e), "notebook": ""}
    print(json.dumps(record, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
