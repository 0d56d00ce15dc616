"""Study 1's data: labelled comments with identity-group columns, split 70/15/15, and the
training sets of the distribution experiment."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .params import DPBiasParams


def load_data(params: DPBiasParams) -> pd.DataFrame:
    """The labelled comments with ``group_<name>`` columns and a train/validation/test
    ``split`` (70/15/15, stratified by group and label, as the paper's MHS split)."""
    from ...data import load_jigsaw, load_measuring_hate_speech, load_redditbias, stratified_split

    groups = tuple(params.subgroups)
    if params.dataset == "redditbias":
        df = load_redditbias(groups)
    elif params.dataset == "jigsaw":
        df = load_jigsaw(params.data_source or "google/jigsaw_unintended_bias", groups=groups)
    else:
        src = params.data_source or "ucberkeley-dlab/measuring-hate-speech"
        df = load_measuring_hate_speech(src, groups=groups)
    df = stratified_split(
        df, {"train": 0.7, "validation": 0.15, "test": 0.15}, seed=params.split_seed
    )
    keep = []
    for split, limit in [
        ("train", params.max_train_examples),
        ("validation", params.max_test_examples),
        ("test", params.max_test_examples),
    ]:
        part = df[df.split == split]
        if limit is not None and len(part) > limit:
            part = _stratified_cap(part, limit, params.split_seed).assign(split=split)
        keep.append(part)
    out = pd.concat(keep).reset_index(drop=True)
    out.attrs["groups"] = list(groups)
    for split in ("train", "validation", "test"):
        part = out[out.split == split]
        if part.label.nunique() < 2:
            raise ValueError(f"the {split} split has only one class: use more data")
    return out


def _stratified_cap(part: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """Exactly ``limit`` rows of ``part``, stratified by group and label up to the
    rounding of each stratum (which is settled by a seeded draw)."""
    from ...data import stratified_split

    marked = stratified_split(
        part, {"keep": limit / len(part), "drop": 1 - limit / len(part)}, seed=seed
    )
    kept, dropped = marked[marked.split == "keep"], marked[marked.split == "drop"]
    if len(kept) > limit:
        kept = kept.sample(n=limit, random_state=seed)
    elif len(kept) < limit:
        kept = pd.concat([kept, dropped.sample(n=limit - len(kept), random_state=seed)])
    return kept


def data_summary(data: pd.DataFrame) -> pd.DataFrame:
    """Examples and positive rate per split and subgroup."""
    rows = []
    for split in ("train", "validation", "test"):
        part = data[data.split == split]
        for g in data.attrs["groups"]:
            m = part[f"group_{g}"]
            rows.append(
                {
                    "split": split,
                    "subgroup": g,
                    "examples": int(m.sum()),
                    "positive_rate": float(part.label[m].mean()) if m.any() else math.nan,
                }
            )
        rows.append(
            {
                "split": split,
                "subgroup": "all",
                "examples": len(part),
                "positive_rate": float(part.label.mean()),
            }
        )
    return pd.DataFrame(rows)


def distribution_train_set(
    train: pd.DataFrame, group: str, share: float, positive_rate: float, size: int, seed: int
) -> pd.DataFrame:
    """``size`` training examples of which a ``share`` belongs to ``group``, with the
    given ``positive_rate`` inside it; the rest are drawn from the other examples at
    their natural mix. Raises ValueError if the training split is too small."""
    member = train[f"group_{group}"].to_numpy(bool)
    n_g = round(share * size)
    n_pos = round(positive_rate * n_g)
    need = {"positives": (n_pos, member & (train.label == 1).to_numpy())}
    need["negatives"] = (n_g - n_pos, member & (train.label == 0).to_numpy())
    need["other examples"] = (size - n_g, ~member)
    rng = np.random.default_rng(seed)
    parts = []
    for what, (n, mask) in need.items():
        have = int(mask.sum())
        if n > have:
            raise ValueError(
                f"DIST_TRAIN_SIZE={size}, share {share}, positive rate {positive_rate}: "
                f"needs {n} {group} {what} but the training split has {have}"
                if what != "other examples"
                else f"DIST_TRAIN_SIZE={size}: needs {n} examples outside {group}, has {have}"
            )
        parts.append(np.flatnonzero(mask)[rng.permutation(have)[:n]])
    idx = np.sort(np.concatenate(parts))
    return train.iloc[idx]


def check_distribution(params: DPBiasParams, data: pd.DataFrame) -> None:
    """Fail before any training if a distribution setting cannot be drawn."""
    if params.dist_group is None:
        return
    train = data[data.split == "train"]
    for share in params.dist_shares:
        for rate in params.dist_positive_rates:
            distribution_train_set(train, params.dist_group, share, rate, params.dist_train_size, 0)
