"""Reproducibility: one call seeds every random source; the environment is recorded."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import sys

import numpy as np
import torch

# the packages a stored run's numbers depend on (they enter its key; see run_environment)
COMPUTE_PACKAGES = ("torch", "opacus", "dp-accounting", "transformers", "peft")
# every package a manifest records
RECORDED_PACKAGES = (
    "privbias",
    *COMPUTE_PACKAGES,
    "tokenizers",
    "accelerate",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "datasets",
    "gguf",
    "papermill",
    "seaborn",
    "matplotlib",
)


def set_seed(seed: int, *, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a seeded torch generator
    for data loaders and noise. ``deterministic`` also asks torch for deterministic
    kernels where it has them (warn-only, so unsupported ops still run)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        if torch.cuda.is_available():
            # the flash and memory-efficient attention backward passes on CUDA are not
            # deterministic; the plain ("math") kernel is
            torch.backends.cuda.enable_flash_sdp(False)
            torch.backends.cuda.enable_mem_efficient_sdp(False)
    return torch.Generator().manual_seed(seed)


def package_versions(packages: tuple[str, ...] = RECORDED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None when absent)."""
    out: dict[str, str | None] = {}
    for p in packages:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            out[p] = None
    return out


def run_environment(device: str | None) -> dict:
    """What a stored run depends on beyond its parameters: the device it runs on (None
    resolved as training resolves it) and the versions of ``COMPUTE_PACKAGES``."""
    resolved = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return {"device": resolved, **package_versions(COMPUTE_PACKAGES)}


def environment() -> dict[str, object]:
    """Python, platform, device and package versions, for a run's manifest."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "packages": package_versions(),
    }
