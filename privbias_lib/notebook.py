"""The notebook contract in code: validated parameters, resumable runs, tidy results and
the manifest every study notebook writes into its ``OUTPUT_DIR``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._io import atomic_path, write_json_atomic
from .repro import environment


class ParameterError(ValueError):
    """A notebook parameter has a bad value; the message names the parameter."""


def bad(name: str, value: Any, expected: str) -> ParameterError:
    return ParameterError(f"parameter {name} = {value!r} is invalid: expected {expected}")


def check_int(name: str, value: Any, minimum: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad(name, value, "an integer")
    if minimum is not None and value < minimum:
        raise bad(name, value, f"an integer >= {minimum}")


def check_number(
    name: str, value: Any, *, low: float | None = None, high: float | None = None, open_low=False
) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        raise bad(name, value, "a number")
    if low is not None and (value < low or (open_low and value == low)):
        raise bad(name, value, f"a number {'>' if open_low else '>='} {low}")
    if high is not None and value > high:
        raise bad(name, value, f"a number <= {high}")


def check_choice(name: str, value: Any, choices) -> None:
    if value not in choices:
        raise bad(name, value, f"one of {list(choices)}")


def check_list(name: str, value: Any, *, allow_empty: bool = False) -> list:
    if not isinstance(value, list | tuple) or (not value and not allow_empty):
        raise bad(name, value, "a list" + ("" if allow_empty else " with at least one entry"))
    if len(set(map(repr, value))) != len(value):
        raise bad(name, value, "a list without repeated entries")
    return list(value)


@dataclasses.dataclass(frozen=True)
class StudyParams:
    """Base of a study's parameters: one field per notebook parameter (the notebook's
    UPPER_CASE name lower-cased). Subclasses validate in ``validate``."""

    output_dir: str

    @classmethod
    def names(cls) -> list[str]:
        return [f.name.upper() for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> StudyParams:
        """Build from ``{"EPSILONS": [...], ...}``; unknown or missing names are errors."""
        known = set(cls.names())
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParameterError(f"unknown parameter(s) {unknown}; known: {sorted(known)}")
        missing = sorted(known - set(values))
        if missing:
            raise ParameterError(f"missing parameter(s) {missing}")
        params = cls(**{k.lower(): v for k, v in values.items()})
        params.validate()
        return params

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any]) -> StudyParams:
        """Collect the parameters from a notebook's globals and validate them."""
        return cls.from_mapping({n: namespace[n] for n in cls.names() if n in namespace})

    def validate(self) -> None:
        if not isinstance(self.output_dir, str) or not self.output_dir:
            raise bad("OUTPUT_DIR", self.output_dir, "a folder path")

    def to_dict(self) -> dict[str, Any]:
        return {k.upper(): v for k, v in dataclasses.asdict(self).items()}


def stable_hash(obj: Any) -> str:
    """SHA-256 of ``obj`` as canonical JSON."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def frame_hash(df: pd.DataFrame) -> str:
    """SHA-256 of a DataFrame's values, index and column names (order-sensitive)."""
    h = hashlib.sha256()
    h.update(json.dumps([str(c) for c in df.columns]).encode())
    h.update(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
    return h.hexdigest()


class RunStore:
    """Finished runs, one JSON file each under ``folder``, keyed by a hash of everything
    that determines the run. A crash loses at most the run in progress; a file whose
    recorded key or checksum does not match is ignored and the run is redone."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key[:32]}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        payload = stored.get("payload")
        if stored.get("key") != key or stored.get("sha256") != stable_hash(payload):
            return None
        return payload

    def put(self, key: str, payload: dict) -> None:
        write_json_atomic(
            self._path(key), {"key": key, "sha256": stable_hash(payload), "payload": payload}
        )

    def get_or_compute(self, key: str, compute) -> dict:
        """The stored payload for ``key``, or ``compute()``'s result, stored at once."""
        payload = self.get(key)
        if payload is None:
            payload = compute()
            self.put(key, payload)
        return payload

    def __len__(self) -> int:
        return len(list(self.folder.glob("*.json"))) if self.folder.is_dir() else 0


class Timer:
    """Named wall-clock timings for the manifest: ``with timer("train"): ...``."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


RESULT_COLUMNS = ("run", "subgroup", "metric", "value")


def write_results(df: pd.DataFrame, output_dir: str | Path, name: str = "results.csv") -> Path:
    """Write a tidy table (at least run, subgroup, metric, value) atomically."""
    missing = [c for c in RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"results table lacks columns {missing}")
    target = Path(output_dir) / name
    with atomic_path(target) as tmp:
        df.to_csv(tmp, index=False)
    return target


def fold_constant_columns(frame: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, str]:
    """Move those of `columns` that hold one value in every row into a caption
    ("name: value · …"), so a table shown on a page keeps only what varies."""
    folded = [c for c in columns if c in frame and frame[c].nunique(dropna=False) == 1]
    caption = " · ".join(f"{c}: {_caption_value(frame[c].iloc[0])}" for c in folded)
    return frame.drop(columns=folded), caption


def readable_number(value: Any) -> str:
    """A table cell for reading: whole numbers with thousands separators from 1000 on, four
    significant digits below; anything else as it is."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _caption_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def save_figure(fig, output_dir: str | Path, name: str) -> Path:
    """Save a matplotlib figure (or seaborn grid) as PNG atomically."""
    fig = getattr(fig, "figure", fig)
    target = Path(output_dir) / name
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return target


def write_manifest(
    output_dir: str | Path,
    *,
    study: str,
    params: StudyParams,
    seeds: list[int],
    models: list[dict],
    data: dict[str, Any],
    timings: dict[str, float],
    extra: dict[str, Any] | None = None,
) -> Path:
    """``manifest.json``: every parameter, seed, package version, model and data hash,
    timings and the files written beside it (with their SHA-256)."""
    from ._io import sha256_file

    out = Path(output_dir)
    files = {
        p.name: sha256_file(p)
        for p in sorted(out.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.name != "manifest.json"
    }
    manifest = {
        "study": study,
        "parameters": params.to_dict(),
        "seeds": seeds,
        "models": models,
        "data": data,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "environment": environment(),
        "files": files,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    return write_json_atomic(out / "manifest.json", manifest)
