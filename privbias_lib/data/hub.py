"""The papers' datasets from the Hugging Face hub, or from local files in the hub's layout.

These machines cannot reach the hub; a user's machine can. Every loader takes
``source``: a hub dataset id or a local copy of the hub repository (both loaded with
:func:`datasets.load_dataset`), or a single ``.csv``/``.tsv``/``.parquet``/``.jsonl``
file with the hub's columns (e.g. Kaggle's Jigsaw ``train.csv``). All go through
the same normalisation, so tests on local copies check the hub path too.

Identity datasets return the RedditBias schema (:func:`~privbias_lib.data.load_redditbias`):
``id``, ``text``, ``label``, ``group`` and one boolean ``group_<name>`` column per
subgroup (subgroups may overlap here; ``group`` is the single subgroup, or
"multiple"/"none"). GLUE returns ``id``, ``text``, ``text_pair``, ``label``.

Careless input fails loudly: a file that is blank or cannot be parsed, a cell that is not
a number where one is expected, or a result with no rows raises
:class:`~privbias_lib.data.DataValidationError` naming the file, the rows and the problem.
Rows without text are dropped with a :class:`~privbias_lib.data.DataWarning` that counts
them: a row with no text cannot be classified, and the published data must stay loadable
as it is (refusing the whole file over a few blank comments would leave the user no way
in short of editing it), but the change in size must not go unseen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ._common import (
    CSV_NA,
    DataValidationError,
    blank_text,
    numeric_column,
    reading,
    require_columns,
    row_numbers,
    warn_dropped,
)

JIGSAW_GROUPS = {
    "male": "male",
    "female": "female",
    "transgender": "transgender",
    "white": "white",
    "black": "black",
    "asian": "asian",
}
MHS_GROUPS = {
    "men": ["target_gender_men"],
    "women": ["target_gender_women"],
    "transgender": [
        "target_gender_transgender_men",
        "target_gender_transgender_women",
        "target_gender_transgender_unspecified",
    ],
    "white": ["target_race_white"],
    "black": ["target_race_black"],
    "asian": ["target_race_asian"],
}
GLUE_TASKS = {
    "sst2": ("sentence", None),
    "qnli": ("question", "sentence"),
    "mnli": ("premise", "hypothesis"),
    "qqp": ("question1", "question2"),
}
GLUE_LABELS = {"sst2": 2, "qnli": 2, "mnli": 3, "qqp": 2}


def read_source(source: str | Path, *, config: str | None = None, split: str = "train"):
    """Read a dataset split into a DataFrame: a hub id or a local folder in the hub
    repository's layout goes through :func:`datasets.load_dataset` (the same call for
    both); a single local file is read directly. Returns ``(frame, description)``."""
    path = Path(source).expanduser()
    if path.is_file():
        suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
        readers = {  # reader, and the format's name for errors
            ".csv": (lambda p: pd.read_csv(p, **CSV_NA), "CSV"),
            ".csv.gz": (lambda p: pd.read_csv(p, **CSV_NA), "CSV"),
            ".parquet": (pd.read_parquet, "Parquet"),
            ".tsv": (lambda p: pd.read_csv(p, sep="\t", quoting=3, **CSV_NA), "TSV"),
            ".jsonl": (lambda p: pd.read_json(p, lines=True), "JSONL"),
            ".json": (pd.read_json, "JSON"),
        }
        if suffix not in readers:
            raise DataValidationError(
                path, f"unsupported file type {suffix!r}; use {list(readers)}"
            )
        reader, kind = readers[suffix]
        with reading(path, kind):
            frame = reader(path)
        if len(frame.columns) == 0:
            raise DataValidationError(path, "empty file (no columns)")
        return frame.reset_index(drop=True), str(path)
    looks_like_file = str(source).startswith((".", "/", "~")) or path.suffix in (
        ".csv",
        ".tsv",
        ".parquet",
        ".jsonl",
        ".json",
        ".gz",
    )
    if looks_like_file and not path.is_dir():
        raise DataValidationError(source, "file not found")
    import datasets

    try:
        ds = datasets.load_dataset(str(path) if path.is_dir() else str(source), config, split=split)
    except Exception as e:  # connection, offline mode, gated or manual-download datasets
        where = "the local folder" if path.is_dir() else "the Hugging Face hub"
        raise ConnectionError(
            f"could not load {source!r} (config={config!r}, split={split!r}) from {where}: "
            f"{type(e).__name__}: {e}. Without hub access, download the data once and pass "
            "the local copy (repository folder or data file) as `source`."
        ) from e
    return ds.to_pandas(), f"{source}[{config or ''}:{split}]"


def _require_filled(raw: pd.DataFrame, column: str, where: str) -> None:
    """An identifier column must have a value in every row."""
    empty = blank_text(raw, [column])
    if empty.any():
        raise DataValidationError(where, f"column {column!r} is empty", row_numbers(empty))


def _keep_rows_with_text(raw: pd.DataFrame, columns: list[str], where: str) -> np.ndarray:
    """Mask of the rows whose text ``columns`` are all non-blank; the others are dropped
    with a :class:`DataWarning` (stack: user -> loader -> here), or all: an error."""
    empty = blank_text(raw, columns)
    what = f"empty {' or '.join(columns)}"
    if empty.all():
        raise DataValidationError(where, f"no rows left: all {len(raw)} rows have {what}")
    warn_dropped(where, empty, what, stacklevel=3)
    return ~empty


def _identity_frame(ids, text, label, member: dict[str, pd.Series]) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "id": ids.astype(str).values,
            "text": text.astype(str).values,
            "label": label.astype(int).values,
        }
    )
    names = list(member)
    mat = np.column_stack([member[g].to_numpy(bool) for g in names]) if names else None
    for j, g in enumerate(names):
        df[f"group_{g}"] = mat[:, j]
    count = mat.sum(1) if names else np.zeros(len(df), int)
    single = np.array(names, dtype=object)[mat.argmax(1)] if names else np.array([], object)
    df.insert(3, "group", np.where(count == 1, single, np.where(count > 1, "multiple", "none")))
    df.attrs["groups"] = names
    return df


def load_jigsaw(
    source: str | Path = "google/jigsaw_unintended_bias",
    split: str = "train",
    *,
    groups: list[str] | tuple[str, ...] = tuple(JIGSAW_GROUPS),
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Jigsaw Unintended Bias (Civil Comments with identity annotations).

    Label: ``target`` (or ``toxicity``) >= ``threshold``. Identity columns are
    annotator fractions in [0, 1]; a comment belongs to a subgroup when its column is
    >= ``threshold`` (empty = 0: most comments were never identity-annotated), as in
    study 1's paper. Any other non-number is an error. Comments with empty text are
    dropped with a :class:`DataWarning` (see the module docstring). The hub dataset
    needs the Kaggle files (manual download); a local ``train.csv`` works the same way.
    """
    raw, where = read_source(source, split=split)
    text_col = "comment_text" if "comment_text" in raw.columns else "text"
    label_col = "target" if "target" in raw.columns else "toxicity"
    unknown = [g for g in groups if g not in JIGSAW_GROUPS]
    if unknown:
        raise ValueError(f"unknown Jigsaw groups {unknown}; known: {list(JIGSAW_GROUPS)}")
    require_columns(raw, [text_col, label_col, *(JIGSAW_GROUPS[g] for g in groups)], where)
    score = numeric_column(raw, label_col, where, lo=0, hi=1)
    shares = {
        g: numeric_column(raw, JIGSAW_GROUPS[g], where, missing=0.0, lo=0, hi=1) for g in groups
    }
    if "id" in raw.columns:
        _require_filled(raw, "id", where)
    keep = _keep_rows_with_text(raw, [text_col], where)
    ids = raw["id"] if "id" in raw.columns else pd.Series(raw.index)
    member = {g: shares[g][keep] >= threshold for g in groups}
    return _identity_frame(ids[keep], raw[text_col][keep], (score >= threshold)[keep], member)


def load_measuring_hate_speech(
    source: str | Path = "ucberkeley-dlab/measuring-hate-speech",
    split: str = "train",
    *,
    groups: list[str] | tuple[str, ...] = tuple(MHS_GROUPS),
    threshold: float = 0.5,
) -> pd.DataFrame:
    """UC Berkeley Measuring Hate Speech, one row per comment, as study 1's authors did it.

    Annotations with ``hatespeech == 1`` (unclear) are dropped and 2 is mapped to 1;
    the label of a comment is that of its first remaining annotation (the authors
    deduplicated by ``comment_id``); each ``target_*`` column is averaged over the
    comment's remaining annotations and membership is mean >= ``threshold``.
    "transgender" is any of the three ``target_gender_transgender_*`` columns. Target
    cells are booleans or shares in [0, 1] (empty = 0); annotations with empty text are
    dropped with a :class:`DataWarning`; nothing left (e.g. only unclear annotations) is
    an error saying why.
    """
    raw, where = read_source(source, split=split)
    unknown = [g for g in groups if g not in MHS_GROUPS]
    if unknown:
        raise ValueError(
            f"unknown Measuring Hate Speech groups {unknown}; known: {list(MHS_GROUPS)}"
        )
    cols = sorted({c for g in groups for c in MHS_GROUPS[g]})
    require_columns(raw, ["comment_id", "text", "hatespeech", *cols], where)
    hs = numeric_column(raw, "hatespeech", where, allowed=(0, 1, 2))
    shares = pd.DataFrame({c: numeric_column(raw, c, where, missing=0.0, lo=0, hi=1) for c in cols})
    _require_filled(raw, "comment_id", where)
    unclear = (hs == 1).to_numpy()
    empty = blank_text(raw, ["text"]) & ~unclear
    keep = ~unclear & ~empty
    if not keep.any():
        raise DataValidationError(
            where,
            f"no rows left: of the {len(raw)} annotations, {unclear.sum()} are unclear "
            f"(hatespeech == 1), which the recipe drops, and {empty.sum()} have empty text"
            if empty.any()
            else f"no rows left: all {len(raw)} annotations are unclear (hatespeech == 1), "
            "which the recipe drops",
        )
    warn_dropped(where, empty, "empty text")
    kept = raw[keep].assign(label=(hs[keep] == 2).astype(int))
    targets = pd.DataFrame({g: shares.loc[keep, MHS_GROUPS[g]].max(axis=1) for g in groups})
    targets["comment_id"] = kept["comment_id"].values
    mean = targets.groupby("comment_id", sort=False).mean()
    first = kept.drop_duplicates("comment_id", keep="first").set_index("comment_id")
    mean = mean.loc[first.index]
    member = {g: mean[g] >= threshold for g in groups}
    return _identity_frame(first.index.to_series(), first["text"], first["label"], member)


def load_glue(task: str, split: str = "train", source: str | Path = "nyu-mll/glue") -> pd.DataFrame:
    """A GLUE task (sst2, qnli, mnli, qqp): ``id``, ``text``, ``text_pair`` (None for
    single-sentence tasks) and ``label``. MNLI's validation split is "validation_matched"
    (or "validation_mismatched"). Test splits have hidden labels and are refused. Rows
    with an empty sentence are dropped with a :class:`DataWarning`."""
    if task not in GLUE_TASKS:
        raise ValueError(f"task={task!r} is not one of {list(GLUE_TASKS)}")
    if split.startswith("test"):
        raise ValueError("GLUE test labels are hidden (-1); use a validation split")
    raw, where = read_source(source, config=task, split=split)
    first, second = GLUE_TASKS[task]
    require_columns(raw, [first, *([second] if second else []), "label"], where)
    n = GLUE_LABELS[task]
    label = numeric_column(
        raw, "label", where, allowed=range(n), rule=f"must be in 0..{n - 1} for {task}"
    )
    if "idx" in raw.columns:
        _require_filled(raw, "idx", where)
    keep = _keep_rows_with_text(raw, [first, *([second] if second else [])], where)
    ids = raw["idx"] if "idx" in raw.columns else pd.Series(raw.index)
    return pd.DataFrame(
        {
            "id": ids[keep].astype(str).values,
            "text": raw.loc[keep, first].astype(str).values,
            "text_pair": raw.loc[keep, second].astype(str).values if second else None,
            "label": label[keep].astype(int).values,
        }
    )
