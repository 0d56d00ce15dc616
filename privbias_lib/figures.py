"""Saving a study's figures, each with the data it shows.

A plotting function returns its figure (or seaborn grid) with the frame it drew attached
(:func:`attach`); :func:`save_figure` writes the PNG and that frame as ``<name>.csv``
beside it, so tests check a figure on its data and a reader can redraw it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ._io import atomic_path
from .tables import write_table

_FRAME = "privbias_frame"


def attach(fig: Any, frame: pd.DataFrame) -> Any:
    """Attach the frame a figure shows to it (returned for chaining)."""
    setattr(fig, _FRAME, frame)
    return fig


def plotted(fig: Any) -> pd.DataFrame | None:
    """The frame :func:`attach` put on ``fig`` (a seaborn grid's own ``data`` otherwise)."""
    frame = getattr(fig, _FRAME, None)
    if frame is None and isinstance(getattr(fig, "data", None), pd.DataFrame):
        frame = fig.data
    return frame


def save_figure(fig: Any, output_dir: str | Path, name: str) -> Path:
    """Save a matplotlib figure (or seaborn grid) as PNG atomically, and the data it
    shows as ``<stem>.data.csv`` beside it."""
    frame = plotted(fig)
    figure = getattr(fig, "figure", fig)
    target = Path(output_dir) / name
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    if frame is not None:
        write_table(frame, target.with_name(f"{target.stem}.data.csv"))
    return target
