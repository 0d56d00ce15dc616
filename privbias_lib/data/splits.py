"""Deterministic stratified splits that also work for tiny strata."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import format_rows, row_numbers


def stratified_split(
    df: pd.DataFrame,
    fractions: dict[str, float] | None = None,
    *,
    by: tuple[str, ...] | list[str] = ("group", "label"),
    seed: int = 0,
) -> pd.DataFrame:
    """Return ``df`` with a ``split`` column, stratified by the ``by`` columns.

    ``fractions`` maps split names to shares summing to 1 (default 0.8/0.1/0.1
    train/validation/test). Within each stratum the rows are shuffled with
    ``seed`` and allocated by largest remainder, so every split's share of every
    stratum is as close to ``fractions`` as whole rows allow. Same seed, same split.
    An empty value in a ``by`` column is an error naming the rows (1-based).
    """
    fractions = fractions or {"train": 0.8, "validation": 0.1, "test": 0.1}
    names = list(fractions)
    shares = np.array([fractions[n] for n in names], dtype=float)
    if (shares < 0).any() or not np.isclose(shares.sum(), 1.0):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    missing = [c for c in by if c not in df.columns]
    if missing:
        raise ValueError(f"stratify columns {missing} not in the data ({list(df.columns)})")
    for c in by:  # groupby would leave rows with an empty stratum value without a split
        empty = df[c].isna().to_numpy()
        if empty.any():
            raise ValueError(
                f"{format_rows(row_numbers(empty))}: stratify column {c!r} is empty; "
                "every row needs a value to be given a split"
            )
    rng = np.random.default_rng(seed)
    split = pd.Series("", index=df.index, dtype=object)
    for _, idx in sorted(df.groupby(list(by), sort=True).groups.items(), key=lambda kv: str(kv[0])):
        idx = np.asarray(idx)[rng.permutation(len(idx))]
        exact = shares * len(idx)
        counts = np.floor(exact).astype(int)
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[: len(idx) - counts.sum()]] += 1
        split.loc[idx] = np.repeat(names, counts)
    return df.assign(split=split.astype("string"))
