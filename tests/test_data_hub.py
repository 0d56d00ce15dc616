"""Hub dataset loaders, exercised on local copies in the hub's own layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privbias_lib.data import (
    DataValidationError,
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
    with pytest.raises(DataValidationError, match=r"label must be in 0\.\.1 for qqp"):
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
