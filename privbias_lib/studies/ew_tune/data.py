"""Study 2, Part B's data: RedditBias (offline, one row per distinct comment) or a GLUE
task from the hub, with a train / validation split."""

from __future__ import annotations

import pandas as pd

from ...hashing import frame_hash
from .params import EWTuneParams


def load_data(params: EWTuneParams) -> pd.DataFrame:
    """Labelled examples with a ``split`` (train / validation). RedditBias: one row per
    distinct comment (comments filed under two groups with the same label kept once,
    those with conflicting labels dropped), split 80/20 stratified by label. GLUE: the
    task's train and validation splits (MNLI: validation_matched) from the hub or a
    local copy."""
    from ...data import load_glue, load_redditbias, stratified_split

    if params.dataset == "redditbias":
        df = load_redditbias()[["id", "text", "label"]]
        agree = df.groupby("text").label.transform("nunique") == 1
        df = df[agree].drop_duplicates("text").reset_index(drop=True)
        df = stratified_split(
            df.assign(group="all"), {"train": 0.8, "validation": 0.2}, seed=params.split_seed
        ).drop(columns="group")
        df["text_pair"] = None
    else:
        src = params.data_source or "nyu-mll/glue"
        val = "validation_matched" if params.glue_task == "mnli" else "validation"
        parts = [
            load_glue(params.glue_task, split, src).assign(split=name)
            for name, split in [("train", "train"), ("validation", val)]
        ]
        df = pd.concat(parts, ignore_index=True)
    keep = []
    for split, limit in [
        ("train", params.max_train_examples),
        ("validation", params.max_eval_examples),
    ]:
        part = df[df.split == split]
        if limit is not None and len(part) > limit:
            part = part.sample(n=limit, random_state=params.split_seed).sort_index()
        keep.append(part)
    out = pd.concat(keep).reset_index(drop=True)
    for split in ("train", "validation"):
        if out[out.split == split].label.nunique() < 2:
            raise ValueError(f"the {split} split has only one class: use more data")
    return out


def data_fingerprint(data: pd.DataFrame) -> str:
    """Hash of everything a run reads from the data, second sentences of pairs included."""
    cols = data[["id", "text", "label", "split"]].assign(
        text_pair=data["text_pair"].fillna("") if "text_pair" in data else ""
    )
    return frame_hash(cols)


def _has_pairs(data: pd.DataFrame) -> bool:
    return "text_pair" in data.columns and data.text_pair.notna().any()
