"""``manifest.json``: what produced a run's results — every parameter, seed, package
version, model and data hash, timings, and the files written beside it with their
SHA-256 (checked before a finished run is reused). Written once, by the notebook."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ._io import write_json_atomic
from .hashing import sha256_file
from .repro import environment

MANIFEST = "manifest.json"
# The runner executes a notebook in ``<folder>.partial`` and renames it into place once it
# finished; it names the final folder here so that the manifest records where its files are.
FINAL_FOLDER_ENV = "PRIVBIAS_RUN_FOLDER"


def write_manifest(
    output_dir: str | Path,
    *,
    study: str,
    parameters: dict[str, Any],
    seeds: list[int],
    models: list[dict],
    data: dict[str, Any],
    timings: dict[str, float],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``manifest.json`` into ``output_dir`` (atomically)."""
    out = Path(output_dir)
    final = os.environ.get(FINAL_FOLDER_ENV) or str(out.resolve())
    files = {
        p.name: sha256_file(p)
        for p in sorted(out.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.name != MANIFEST
    }
    manifest = {
        "study": study,
        "parameters": {**parameters, "OUTPUT_DIR": final},
        "seeds": seeds,
        "models": models,
        "data": data,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "environment": environment(),
        "files": files,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    if final != str(out.resolve()):
        manifest["executed_in"] = str(out.resolve())
    return write_json_atomic(out / MANIFEST, manifest)
