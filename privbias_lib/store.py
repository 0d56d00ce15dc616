"""Resumable runs: a checksummed store of finished runs, and the one loop that executes a
study's plan against it (:func:`execute_plan`), which also owns the key policy and
reports progress."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._io import write_json_atomic
from .hashing import stable_hash

PROGRESS_ENV = "PRIVBIAS_PROGRESS"  # a file the runner shows on the terminal, or "off"


class RunStore:
    """Finished runs, one JSON file each under ``folder``, keyed by a hash of everything
    that determines the run. A crash loses at most the run in progress; a file whose
    recorded key or checksum does not match is ignored (and counted in ``corrupt``) and
    the run is redone."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.corrupt: set[str] = set()

    def _path(self, key: str) -> Path:
        return self.folder / f"{key[:32]}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text())
            payload = stored.get("payload")
            intact = stored.get("key") == key and stored.get("sha256") == stable_hash(payload)
        except (OSError, ValueError, AttributeError):
            intact = False
        if not intact:
            self.corrupt.add(key)
            return None
        return payload

    def put(self, key: str, payload: dict) -> None:
        write_json_atomic(
            self._path(key), {"key": key, "sha256": stable_hash(payload), "payload": payload}
        )

    def get_or_compute(self, key: str, compute: Callable[[], dict]) -> dict:
        """The stored payload for ``key``, or ``compute()``'s result, stored at once."""
        payload = self.get(key)
        if payload is None:
            payload = compute()
            self.put(key, payload)
        return payload

    def __len__(self) -> int:
        return len(list(self.folder.glob("*.json"))) if self.folder.is_dir() else 0


@dataclass(frozen=True)
class Run:
    """One unit of a study's plan: ``name`` (shown and used in results), ``spec`` (what
    the run is; the study's ``compute`` reads it), the ``model`` it loads (its weights'
    fingerprint enters the key) and ``config``: anything else its result depends on
    (a training configuration), part of the key only."""

    name: str
    spec: dict
    model: str | None = None
    config: dict = field(default_factory=dict)


def run_key(run: Run, common: dict, fingerprint: str | None) -> str:
    """The store key of ``run``: its spec and config, its model and that model's weights,
    and ``common`` (study, data hash, library version, device and package versions)."""
    model = [run.model, fingerprint] if run.model is not None else None
    return stable_hash({**common, "run": run.spec, "config": run.config, "model": model})


def execute_plan(
    runs: list[Run],
    compute: Callable[[Run], dict],
    store: RunStore,
    *,
    common: dict,
    fingerprint: Callable[[str], str | None] = lambda name: None,
    task: str = "runs",
    say: Callable[[str], None] = print,
) -> list[dict]:
    """Every run of the plan, in order: stored ones read back (checksums verified),
    the others computed and stored as soon as each ends. Says how many were reusable
    (and how many stored files were damaged), and reports progress per run."""
    prints: dict[str, str | None] = {}
    keys = []
    for run in runs:
        if run.model is not None and run.model not in prints:
            prints[run.model] = fingerprint(run.model)
        keys.append(run_key(run, common, prints.get(run.model)))
    found = [store.get(k) for k in keys]
    stored = sum(p is not None for p in found)
    damaged = len(store.corrupt & set(keys))
    note = f"; {damaged} stored result(s) failed their checksum and run again" if damaged else ""
    say(
        f"{task}: {len(runs)} planned, {stored} already done, {len(runs) - stored} to compute{note}"
    )
    progress = Progress(task, len(runs))
    out = []
    try:
        for run, key, payload in zip(runs, keys, found, strict=True):
            progress.start(run.name, cached=payload is not None)
            if payload is None:
                payload = compute(run)
                store.put(key, payload)
            out.append(payload)
            progress.finish()
    finally:
        progress.close()
    return out


class Progress:
    """Progress of a loop over runs: written as JSON to the file named by
    ``$PRIVBIAS_PROGRESS`` (the runner shows it on the terminal and it stays out of the
    notebook's outputs), a text bar on stderr in an interactive session, else silent."""

    def __init__(self, task: str, total: int):
        self.task, self.total, self.done = task, total, 0
        self.computed, self.computed_seconds = 0, 0.0
        self.started = time.monotonic()
        self.current, self._t0, self._cached = "", 0.0, False
        target = os.environ.get(PROGRESS_ENV, "")
        self.file = Path(target) if target and target != "off" else None
        self.bar = None
        if self.file is None and target != "off" and _interactive():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=task, file=sys.stderr, mininterval=1)

    def start(self, name: str, cached: bool) -> None:
        self.current, self._cached, self._t0 = name, cached, time.monotonic()
        self._report()

    def finish(self) -> None:
        self.done += 1
        if not self._cached:
            self.computed += 1
            self.computed_seconds += time.monotonic() - self._t0
        if self.bar is not None:
            self.bar.update(1)
        self._report()

    def eta(self) -> float | None:
        """Seconds left, from the mean time of the runs computed so far (None before one)."""
        if not self.computed:
            return None
        return self.computed_seconds / self.computed * (self.total - self.done)

    def _report(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(self.current, refresh=False)
        if self.file is None:
            return
        state = {
            "task": self.task,
            "done": self.done,
            "total": self.total,
            "current": self.current if self.done < self.total else "",
            "elapsed_s": round(time.monotonic() - self.started, 1),
            "eta_s": None if (eta := self.eta()) is None else round(eta, 1),
        }
        with contextlib.suppress(OSError):  # progress is a courtesy: never fail a run over it
            write_json_atomic(self.file, state)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.file is not None:
            self.file.unlink(missing_ok=True)


def _interactive() -> bool:
    """A Jupyter kernel a person drives, or a terminal."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
        return True
    return sys.stderr.isatty()


def describe_progress(state: dict[str, Any]) -> str:
    """One terminal line for a progress state: ``runs 3/30 · 1m12s · ~9m left · <name>``."""
    text = f"{state['task']} {state['done']}/{state['total']} · {_duration(state['elapsed_s'])}"
    if state.get("eta_s") is not None:
        text += f" · ~{_duration(state['eta_s'])} left"
    if state.get("current"):
        text += f" · {state['current']}"
    return text


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
