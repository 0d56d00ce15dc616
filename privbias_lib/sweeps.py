"""Sweeps: a grid of parameter settings, each a run of :mod:`.runner` in its own process
(locally, or as Ray tasks), resumable; and collecting many runs into one table."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._io import write_json_atomic
from .hashing import stable_hash
from .params import ParameterError
from .runner import (
    PARTIAL,
    PROGRESS_FILE,
    RUN_FILE,
    RunSpec,
    UnsafeOutput,
    _finished,
    check_output,
    error_summary,
    reusable_record,
    ticking,
)
from .store import describe_progress
from .studies import STUDIES, Study

if TYPE_CHECKING:
    import pandas as pd

SWEEP_FILE = "sweep.json"


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


def plan_sweep(
    study: Study,
    profile: str,
    points: list[dict],
    output: str | Path,
    label: list[str] | None = None,
) -> list[RunSpec]:
    """One :class:`RunSpec` per grid point, each validated now (before any run starts,
    model names included); run ids name the ``label`` parameters (the swept ones)."""
    specs, seen = [], {}
    for point in points:
        parameters = study.resolve(profile, point)
        # the device is checked where each run executes (a Ray worker may have the GPU)
        study.check(study.validate({**parameters, "OUTPUT_DIR": "unused"}), here=False)
        run_id = run_id_for(point, label)
        if run_id in seen:
            raise ParameterError(f"grid file: the run {point} appears twice")
        seen[run_id] = point
        folder = Path(output).resolve() / run_id  # absolute: Ray workers run elsewhere
        specs.append(RunSpec(study.key, profile, str(folder), point, run_id))
    return specs


def check_sweep_output(output: str | Path, specs: list[RunSpec], *, force: bool = False) -> None:
    """Before a sweep starts: its ``sweep.json`` may only replace a sweep record, and
    every run folder must pass :func:`~privbias_lib.runner.check_output`."""
    record = Path(output) / SWEEP_FILE
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
    return int(study.resolve(profile, overrides).get("DEVICE") == "cuda")


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


def _local_backend(specs, *, workers: int, force: bool, flight: set) -> Iterator[tuple]:
    threads = max(1, (os.cpu_count() or 1) // workers)
    env = {} if "OMP_NUM_THREADS" in os.environ else {"OMP_NUM_THREADS": str(threads)}

    def one(spec):
        flight.add(spec.run_id)
        try:
            return run_in_subprocess(spec, force, env)
        finally:
            flight.discard(spec.run_id)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(one, s): s for s in specs}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _ray_task(spec: dict, force: bool) -> dict:
    """Body of one Ray task: the run in a subprocess of the Ray worker (which sees only
    the GPUs Ray assigned it through ``CUDA_VISIBLE_DEVICES``)."""
    return run_in_subprocess(RunSpec(**spec), force)


def _ray_backend(
    specs, *, workers: int, force: bool, address: str | None, gpus: int, cpus: int, flight: set
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
    flight.update(s.run_id for s in specs)  # queued or running: Ray decides
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        spec = pending.pop(done[0])
        flight.discard(spec.run_id)
        try:
            yield spec, ray.get(done[0])
        except Exception as e:  # the worker died: the run is failed, the others go on
            yield spec, {**asdict(spec), "status": "failed", "error": error_summary(e)}


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
    ``sweep.json`` in ``output`` lists every run with its status; the terminal shows one
    bar over the runs and the progress of those in flight."""
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
    flight: set[str] = set()
    by_id = {s.run_id: s for s in specs}

    def finish(spec: RunSpec, record: dict) -> None:
        records[spec.run_id] = record
        mark = "done" if record["status"] == "finished" else record["status"].upper()
        took = f"{record.get('seconds', 0):.0f} s" if "seconds" in record else ""
        bar.write(f"{mark:>6} {spec.run_id} {took}".rstrip())
        bar.update(1)
        _write_sweep(output, specs, records, flight)

    _write_sweep(output, specs, records)
    with _inner_progress(bar, flight, by_id, lambda: _write_sweep(output, specs, records, flight)):
        try:
            if todo and backend == "local":
                for spec, record in _local_backend(
                    todo, workers=workers, force=force, flight=flight
                ):
                    finish(spec, record)
            elif todo:
                first = todo[0]
                gpus = (
                    gpus_per_run
                    if gpus_per_run is not None
                    else gpus_needed(STUDIES[first.study], first.profile, first.overrides)
                )
                for spec, record in _ray_backend(
                    todo, workers=workers, force=force, address=address, gpus=gpus,
                    cpus=cpus_per_run, flight=flight,
                ):  # fmt: skip
                    finish(spec, record)
        except BaseException:
            for run_id in list(flight):  # runs cut short: say so, never "pending"
                records[run_id] = {**asdict(by_id[run_id]), "status": "interrupted"}
            _write_sweep(output, specs, records)
            raise
        finally:
            bar.close()
    return SweepReport([records[s.run_id] for s in specs if s.run_id in records], output)


@contextlib.contextmanager
def _inner_progress(bar, flight: set, by_id: dict[str, RunSpec], record):
    """Every second, the progress of the runs in flight as the bar's postfix; ``record``
    (the sweep file) is rewritten when the set of runs in flight changes."""
    seen: set = set()

    def tick():
        if set(flight) != seen:
            seen.clear()
            seen.update(flight)
            record()
        parts = []
        for run_id in sorted(flight):
            try:
                state = json.loads((by_id[run_id].partial / PROGRESS_FILE).read_text())
            except (OSError, ValueError, KeyError):
                continue
            parts.append(f"{run_id}: {describe_progress(state)}")
        bar.set_postfix_str(" | ".join(parts)[:160], refresh=True)

    with ticking(1.0, tick):
        yield


def _write_sweep(
    output: Path, specs: list[RunSpec], records: dict[str, dict], flight: set | None = None
) -> None:
    """``sweep.json``: every run's status — finished, reused, failed or interrupted from
    its record; ``running`` while in flight; ``interrupted`` for a run left half-done by
    an earlier sweep (its ``.partial`` folder, resumed when it runs); else ``pending``."""

    def status(spec: RunSpec) -> str:
        if spec.run_id in records:
            return records[spec.run_id]["status"]
        if flight and spec.run_id in flight:
            return "running"
        return "interrupted" if spec.partial.is_dir() else "pending"

    runs = [{"run_id": s.run_id, "overrides": s.overrides, "status": status(s)} for s in specs]
    study, profile = (specs[0].study, specs[0].profile) if specs else ("", "")
    write_json_atomic(output / SWEEP_FILE, {"study": study, "profile": profile, "runs": runs})


# --------------------------------------------------------------------------- collecting


@dataclass
class Collected:
    """The stacked results of every usable run, and every run left out, with why."""

    table: pd.DataFrame
    runs: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def collect(root: str | Path) -> Collected:
    """Every finished run's ``results.csv`` under ``root`` in one tidy table, with
    ``run_id``, ``study``, ``profile`` and the run's parameter overrides as columns
    (lists and mappings as JSON text). A run that cannot be used — unfinished, or
    changed after it finished — is listed in ``skipped``, never dropped silently."""
    import pandas as pd

    root = Path(root)
    frames, skipped = [], []
    for run_file in sorted(root.rglob(RUN_FILE)):
        folder = run_file.parent
        names = [folder.name, *(p.name for p in folder.relative_to(root).parents if p.name)]
        if any(n.startswith(".") for n in names):
            continue  # an old folder being replaced
        if any(n.endswith(PARTIAL) for n in names):
            skipped.append((folder, "unfinished (a .partial folder: interrupted or failed)"))
            continue
        record, why = _finished(folder)
        if record is None:
            skipped.append((folder, why))
            continue
        results = folder / "results.csv"
        df = pd.read_csv(results)
        info = {"run_id": record["run_id"], "study": record["study"], "profile": record["profile"]}
        for name, value in (record.get("overrides") or {}).items():
            info[name] = json.dumps(value) if isinstance(value, list | dict) else value
        for name, value in reversed(info.items()):
            column = name if name not in df.columns else f"param_{name}"
            df.insert(0, column, value)
        frames.append(df)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return Collected(table, len(frames), skipped)
