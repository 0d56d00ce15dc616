"""Hub dataset loaders, exercised on local copies in the hub's own layout."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from privbias_lib.data import (
    DataValidationError,
    DataWarning,
    load_glue,
    load_jigsaw,
    load_measuring_hate_speech,
)
from privbias_lib.data import hub as hub_module


def test_jigsaw_thresholds_identities_and_label_at_half(tmp_path):
    # Kaggle train.csv layout (also google/jigsaw_unintended_bias): fractions, NaN identities
    path = tmp_path / "train.csv"
    pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "target": [0.5, 0.49, 0.9, 0.0],
            "comment_text": ["a", "b", "c", "d"],
            "male": [0.5, 0.49, 0.6, np.nan],
            "female": [0.0, 0.0, 0.7, np.nan],
            "transgender": [0, 0, 0, np.nan],
            "white": [0, 0, 0, np.nan],
            "black": [0, 1.0, 0, np.nan],
            "asian": [0, 0, 0, np.nan],
            "identity_annotator_count": [4, 4, 4, 0],
        }
    ).to_csv(path, index=False)
    df = load_jigsaw(path)
    assert df["label"].tolist() == [1, 0, 1, 0]
    assert df["group_male"].tolist() == [True, False, True, False]
    assert df["group"].tolist() == ["male", "black", "multiple", "none"]
    assert df.attrs["groups"] == ["male", "female", "transgender", "white", "black", "asian"]


def test_jigsaw_missing_identity_column_is_named(tmp_path):
    path = tmp_path / "train.csv"
    pd.DataFrame({"comment_text": ["a"], "target": [0.1], "male": [0.0]}).to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"train.csv: missing column\(s\) \['female'"):
        load_jigsaw(path)


def test_measuring_hate_speech_follows_the_papers_recipe(tmp_path):
    # hub layout: one annotation per row, boolean target columns
    tcols = [c for cols in hub_module.MHS_GROUPS.values() for c in cols]
    rows = []

    def add(cid, hs, text, **targets):
        rows.append(
            {
                "comment_id": cid,
                "annotator_id": len(rows),
                "hatespeech": hs,
                "text": text,
                **{c: targets.get(c, False) for c in tcols},
            }
        )

    add(10, 2, "ten", target_gender_women=True)
    add(10, 0, "ten", target_gender_women=True)
    add(10, 1, "ten")  # unclear: dropped
    add(20, 0, "twenty", target_race_black=True)
    add(20, 0, "twenty")  # black mean 0.5: member
    add(30, 1, "thirty")  # only unclear: comment dropped
    add(40, 0, "forty", target_gender_transgender_women=True)
    add(40, 0, "forty", target_race_asian=True)
    add(40, 0, "forty")
    repo = tmp_path / "measuring-hate-speech"
    repo.mkdir()
    pd.DataFrame(rows).to_parquet(repo / "measuring-hate-speech.parquet")
    df = load_measuring_hate_speech(repo).set_index("id")  # through datasets.load_dataset
    assert df.index.tolist() == ["10", "20", "40"]
    assert df["label"].to_dict() == {"10": 1, "20": 0, "40": 0}
    assert df.loc["10", "group"] == "women"
    assert df.loc["20", "group"] == "black"
    assert not df.loc["40", "group_transgender"] and not df.loc["40", "group_asian"]  # 1/3 < 0.5


def write_glue_repo(root, task, split, frame):
    """A local copy of nyu-mll/glue's repository layout (parquet files + configs)."""
    (root / task).mkdir(parents=True, exist_ok=True)
    frame.to_parquet(root / task / f"{split}-00000-of-00001.parquet")
    (root / "README.md").write_text(
        f"---\nconfigs:\n- config_name: {task}\n  data_files:\n"
        f"  - split: {split}\n    path: {task}/{split}-*\n---\n"
    )


def test_glue_pairs_and_singles_from_a_hub_layout_repo(tmp_path):
    write_glue_repo(
        tmp_path / "g1",
        "mnli",
        "validation_matched",
        pd.DataFrame(
            {"premise": ["p0", "p1"], "hypothesis": ["h0", "h1"], "label": [0, 2], "idx": [0, 1]}
        ),
    )
    mnli = load_glue("mnli", "validation_matched", source=tmp_path / "g1")
    assert mnli.to_dict("list") == {
        "id": ["0", "1"],
        "text": ["p0", "p1"],
        "text_pair": ["h0", "h1"],
        "label": [0, 2],
    }
    write_glue_repo(
        tmp_path / "g2",
        "sst2",
        "train",
        pd.DataFrame({"sentence": ["good", "bad"], "label": [1, 0], "idx": [5, 6]}),
    )
    sst2 = load_glue("sst2", source=tmp_path / "g2")
    assert sst2["text_pair"].isna().all() and sst2["label"].tolist() == [1, 0]


def test_glue_refuses_hidden_test_labels_and_wrong_labels(tmp_path):
    with pytest.raises(ValueError, match="hidden"):
        load_glue("qnli", "test")
    path = tmp_path / "qqp.csv"
    pd.DataFrame({"question1": ["a"], "question2": ["b"], "label": [-1]}).to_csv(path, index=False)
    with pytest.raises(
        DataValidationError, match=r"qqp.csv: row 1: column .label. must be in 0\.\.1"
    ):
        load_glue("qqp", source=path)


def test_unreachable_hub_says_how_to_work_offline(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ConnectionError, match="pass the local copy"):
        load_glue("sst2")
    with pytest.raises(DataValidationError, match="file not found"):
        load_jigsaw("/no/such/train.csv")


# --- careless input: every problem names the file, the row and what is wrong ------------

IDENTITIES = ["male", "female", "transgender", "white", "black", "asian"]


def write_jigsaw(path, **columns):
    """A Kaggle ``train.csv`` with three rows; ``columns`` override the defaults."""
    frame = {
        "id": [1, 2, 3],
        "target": [0.5, 0.1, 0.9],
        "comment_text": ["a", "b", "c"],
        **{g: [0.0, 0.0, 0.0] for g in IDENTITIES},
    }
    pd.DataFrame({**frame, **columns}).to_csv(path, index=False)
    return path


def test_jigsaw_drops_rows_without_text_and_counts_them(tmp_path):
    path = write_jigsaw(tmp_path / "train.csv", comment_text=["a", "", "  "])
    with pytest.warns(
        DataWarning,
        match=r"train\.csv: dropped 2 of 3 rows with empty comment_text \(rows 2, 3\)",
    ):
        df = load_jigsaw(path)
    assert df["text"].tolist() == ["a"] and df["id"].tolist() == ["1"]
    write_jigsaw(path, comment_text=["", " ", None])
    with pytest.raises(DataValidationError, match=r"train\.csv: no rows left: all 3 rows have"):
        load_jigsaw(path)


def test_jigsaw_keeps_comments_that_spell_a_missing_value(tmp_path):
    path = write_jigsaw(tmp_path / "train.csv", comment_text=["NA", "null", "None"])
    path.write_text(path.read_text().replace(",0.0,", ",NA,", 1))  # a missing identity share
    assert load_jigsaw(path)["text"].tolist() == ["NA", "null", "None"]


def test_jigsaw_identity_that_is_not_a_number_names_row_and_column(tmp_path):
    path = write_jigsaw(tmp_path / "train.csv", male=[0.0, "yes", 1.0])
    with pytest.raises(
        DataValidationError, match=r"train\.csv: row 2: column 'male' must be a number; found 'yes'"
    ):
        load_jigsaw(path)
    with pytest.raises(DataValidationError) as err:
        load_jigsaw(path)
    assert (err.value.source, err.value.rows) == (str(path), [2])
    assert str(pickle.loads(pickle.dumps(err.value))) == str(err.value)
    write_jigsaw(path, black=[0.0, 2.0, -1.0])
    with pytest.raises(
        DataValidationError, match=r"train\.csv: rows 2, 3: column 'black' must be in \[0, 1\]"
    ):
        load_jigsaw(path)
    write_jigsaw(path, target=[0.5, None, 0.2])
    with pytest.raises(DataValidationError, match=r"train\.csv: row 2: column 'target' is empty"):
        load_jigsaw(path)


@pytest.mark.parametrize("name", ["train.csv", "train.tsv", "train.jsonl", "train.json"])
def test_file_holding_only_a_newline_is_named(tmp_path, name):
    path = tmp_path / name
    path.write_text("\n")
    with pytest.raises(DataValidationError, match=rf"{name}: empty file"):
        load_jigsaw(path)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("train.csv", "comment_text,target\na,0.1\nb,0.2,3\n", "not a valid CSV file"),
        ("train.csv", b"comment_text,target\n\x81\x8d,0.1\n", "not UTF-8 text"),
        ("train.parquet", "not parquet", "not a valid Parquet file"),
        ("train.jsonl", '{"a": 1}\n{not json\n', "not a valid JSONL file"),
    ],
)
def test_unreadable_file_is_named(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataValidationError, match=rf"{name}: {problem}"):
        load_jigsaw(path)


MHS_COLUMNS = [c for cols in hub_module.MHS_GROUPS.values() for c in cols]


def write_mhs(path, hatespeech, **columns):
    """Measuring Hate Speech in the hub's layout: one annotation per row, boolean targets."""
    n = len(hatespeech)
    frame = {
        "comment_id": [10 + i // 2 for i in range(n)],
        "annotator_id": list(range(n)),
        "hatespeech": hatespeech,
        "text": [f"comment {10 + i // 2}" for i in range(n)],
        **{c: [False] * n for c in MHS_COLUMNS},
    }
    frame = pd.DataFrame({**frame, **columns})
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path)
    return path


def test_measuring_hate_speech_with_only_unclear_annotations_says_why_it_is_empty(tmp_path):
    path = write_mhs(tmp_path / "mhs.parquet", [1, 1, 1])
    with pytest.raises(
        DataValidationError,
        match=r"mhs\.parquet: no rows left: all 3 annotations are unclear \(hatespeech == 1\)",
    ):
        load_measuring_hate_speech(path)


def test_measuring_hate_speech_bad_values_name_row_and_column(tmp_path):
    path = write_mhs(tmp_path / "mhs.csv", [0, 2, 0], target_race_black=[False, "yes", True])
    with pytest.raises(
        DataValidationError,
        match=r"mhs\.csv: row 2: column 'target_race_black' must be a number; found 'yes'",
    ):
        load_measuring_hate_speech(path)
    write_mhs(path := tmp_path / "mhs2.parquet", [0, 3, None])
    with pytest.raises(DataValidationError, match=r"mhs2\.parquet: row 3: column 'hatespeech'"):
        load_measuring_hate_speech(path)
    write_mhs(path, [0, 3, 0])
    with pytest.raises(
        DataValidationError,
        match=r"mhs2\.parquet: row 2: column 'hatespeech' must be one of \[0, 1, 2\]; found 3",
    ):
        load_measuring_hate_speech(path)


def test_measuring_hate_speech_drops_annotations_without_text(tmp_path):
    path = write_mhs(tmp_path / "mhs.parquet", [0, 2, 0, 1], text=["", "", "x", "x"])
    with pytest.warns(
        DataWarning, match=r"mhs\.parquet: dropped 2 of 4 rows with empty text \(rows 1"
    ):
        df = load_measuring_hate_speech(path)
    assert df["text"].tolist() == ["x"]


def test_glue_drops_rows_without_text_and_names_bad_labels(tmp_path):
    path = tmp_path / "qqp.csv"
    pd.DataFrame(
        {"question1": ["a", "b", " "], "question2": ["x", None, "z"], "label": [1, 0, 1]}
    ).to_csv(path, index=False)
    with pytest.warns(
        DataWarning,
        match=r"qqp\.csv: dropped 2 of 3 rows with empty question1 or question2 \(rows 2, 3\)",
    ):
        df = load_glue("qqp", source=path)
    assert df.to_dict("list") == {"id": ["0"], "text": ["a"], "text_pair": ["x"], "label": [1]}
    path = tmp_path / "sst2.tsv"
    path.write_text("sentence\tlabel\ngood\t1\nbad\tpos\nok\t0.5\n")
    with pytest.raises(
        DataValidationError, match=r"sst2\.tsv: row 2: column 'label' must be a number; found 'pos'"
    ):
        load_glue("sst2", source=path)
    path.write_text("sentence\tlabel\ngood\t1\nbad\t0.5\nok\t\n")
    with pytest.raises(DataValidationError, match=r"sst2\.tsv: row 3: column 'label' is empty"):
        load_glue("sst2", source=path)
