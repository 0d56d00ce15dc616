"""Share of women per WinoBias occupation (US labour statistics, as published with WinoBias)."""

from __future__ import annotations

import pandas as pd

from ..paths import data_dir
from ._common import DataValidationError, require_columns

SOURCE = (
    "US Bureau of Labor Statistics, as published with WinoBias "
    "(Zhao et al., NAACL 2018; uclanlp/corefBias README)"
)


def occupation_stats() -> pd.DataFrame:
    """One row per WinoBias occupation: ``occupation``, ``share_women_pct`` (0-100),
    ``majority`` ("male"/"female") and ``source``."""
    path = data_dir() / "winobias_occupations.csv"
    if not path.is_file():
        raise DataValidationError(path, "file not found")
    df = pd.read_csv(path)
    require_columns(df, ["occupation", "share_women_pct", "majority"], path)
    if df["occupation"].duplicated().any():
        raise DataValidationError(path, "duplicate occupations")
    share = pd.to_numeric(df["share_women_pct"], errors="coerce")
    if share.isna().any() or not share.between(0, 100).all():
        raise DataValidationError(path, "share_women_pct must be numbers in [0, 100]")
    if not df["majority"].isin(["male", "female"]).all():
        raise DataValidationError(path, "majority must be 'male' or 'female'")
    return df.assign(share_women_pct=share.astype(float), source=SOURCE)
