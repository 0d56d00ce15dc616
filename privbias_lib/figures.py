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


def nothing_to_show(message: str, size: tuple[float, float] = (6.0, 1.6)) -> Any:
    """A small figure that says why there is nothing to plot (e.g. no canary in this run),
    so a notebook shows the reason where the figure would be instead of failing."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=11)
    return attach(fig, pd.DataFrame({"nothing to show": [message]}))


def text_extent(note: Any, renderer: Any = None) -> Any:
    """The window box of an annotation's text alone, without its leader line."""
    from matplotlib.text import Text

    return Text.get_window_extent(note, renderer)


def label_points(ax: Any, xs, ys, labels, *, fontsize: float = 8) -> None:
    """Write each label beside its point, moved up or down a line at a time (with a thin
    leader line) until it overlaps no label already placed: neighbours stay readable."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    placed: list = []
    shifts = [0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6]
    for i in sorted(range(len(labels)), key=lambda j: ys[j]):
        for step in shifts:
            note = ax.annotate(
                labels[i], (xs[i], ys[i]), textcoords="offset points",
                xytext=(7, -3 + 11 * step), fontsize=fontsize,
                arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "grey"} if step else None,
            )  # fmt: skip
            box = text_extent(note, renderer)
            if not any(box.overlaps(other) for other in placed) or step == shifts[-1]:
                placed.append(box)
                break
            note.remove()
