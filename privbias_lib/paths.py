"""Where privbias keeps its cache and finds its bundled data files."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

CACHE_ENV = "PRIVBIAS_CACHE"
PROFILES = ("smoke", "cpu", "paper")  # every study has these three parameter profiles


def cache_dir() -> Path:
    """Cache root: ``$PRIVBIAS_CACHE`` if set, else the user's cache folder for privbias."""
    root = os.environ.get(CACHE_ENV)
    path = Path(root).expanduser() if root else Path(platformdirs.user_cache_dir("privbias"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """The project's ``data/`` folder (bundled into wheels as ``privbias_lib/_data``)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data", here.parent / "data"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "privbias data files not found: expected privbias_lib/_data (wheel install) or data/ "
        "beside privbias_lib/ (editable install from the repository)."
    )


def run_folder(root: str | Path, study: str, profile: str, run_id: str | None = None) -> Path:
    """Where a run lives: ``<root>/<study key>/<profile>[/<run id>]``, made absolute (the
    kernel runs in ``notebooks/``, sweep workers elsewhere)."""
    folder = Path(root).expanduser().resolve() / study / profile
    return folder / run_id if run_id else folder
