"""Tables a study writes and shows: the tidy results file, other CSV tables, and the
formatting that makes a table readable on a page."""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._io import atomic_path

RESULT_COLUMNS = ("run", "subgroup", "metric", "value")


def write_table(df: pd.DataFrame, target: str | Path, *, index: bool = False) -> Path:
    """Write ``df`` as CSV to ``target`` atomically."""
    target = Path(target)
    with atomic_path(target) as tmp:
        df.to_csv(tmp, index=index)
    return target


def write_results(df: pd.DataFrame, output_dir: str | Path, name: str = "results.csv") -> Path:
    """Write a tidy table (at least run, subgroup, metric, value) atomically."""
    missing = [c for c in RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"results table lacks columns {missing}")
    return write_table(df, Path(output_dir) / name)


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


def show(frame: pd.DataFrame, caption: str, *, precision: int = 3, transpose: bool = False):
    """A table for the page: a caption, integers as integers, missing values as "—", one
    precision for every other number, and long text wrapped (never cut with "…")."""
    frame = frame.T if transpose else frame
    styler = frame.style.set_caption(caption).format(lambda v: _cell(v, precision), na_rep="—")
    for axis in (0, 1):  # labels: a float as written (0.05, not 0.050)
        styler = styler.format_index(_label, axis=axis)
    return styler.set_table_styles(
        [
            {"selector": "caption", "props": "caption-side: top; text-align: left;"},
            {"selector": "td, th", "props": "white-space: normal; overflow-wrap: anywhere;"},
        ]
    )


def _cell(value: Any, precision: int) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, numbers.Real):
        if float(value).is_integer() and abs(value) < 1e15:
            return f"{int(value):,}" if abs(value) >= 10_000 else str(int(value))
        return f"{value:.{precision}f}" if abs(value) >= 10**-precision else f"{value:.2g}"
    return str(value)


def _label(value: Any) -> str:
    if isinstance(value, float):
        return "—" if value != value else f"{value:g}"
    return str(value)
