"""Share of women per WinoBias occupation (US labour statistics, as published with WinoBias)."""

from __future__ import annotations

import pandas as pd

from ..paths import data_dir
from ._common import (
    DataValidationError,
    numeric_column,
    read_text_table,
    require_columns,
    row_numbers,
)

SOURCE = (
    "US Bureau of Labor Statistics, as published with WinoBias "
    "(Zhao et al., NAACL 2018; uclanlp/corefBias README)"
)


def occupation_stats() -> pd.DataFrame:
    """One row per WinoBias occupation: ``occupation``, ``share_women_pct`` (0-100),
    ``majority`` ("male"/"female") and ``source``."""
    path = data_dir() / "winobias_occupations.csv"
    df = read_text_table(path)
    require_columns(df, ["occupation", "share_women_pct", "majority"], path)
    duplicated = df["occupation"].duplicated(keep=False).to_numpy()
    if duplicated.any():
        raise DataValidationError(path, "duplicate occupations", row_numbers(duplicated))
    share = numeric_column(df, "share_women_pct", path, lo=0, hi=100)
    wrong = ~df["majority"].isin(["male", "female"]).to_numpy()
    if wrong.any():
        raise DataValidationError(path, "majority must be 'male' or 'female'", row_numbers(wrong))
    return df.assign(share_women_pct=share, source=SOURCE)
