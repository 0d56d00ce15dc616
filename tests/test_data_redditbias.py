"""RedditBias loading and the stratified split."""

from __future__ import annotations

import pandas as pd
import pytest

from privbias_lib.data import DataValidationError, load_redditbias, stratified_split
from privbias_lib.data.redditbias import GROUP_FILES, GROUPS


@pytest.fixture(scope="module")
def reddit():
    return load_redditbias()


def test_five_groups_both_labels(reddit):
    assert set(reddit["group"]) == set(GROUPS) == {"women", "black", "jewish", "muslim", "lgbtq"}
    counts = reddit.groupby(["group", "label"]).size().unstack()
    assert (counts > 500).all().all()  # real data: hundreds of each label per group
    assert set(reddit["label"]) == {0, 1}
    assert 10_000 < len(reddit) < 13_000


def test_schema_ids_and_no_duplicates(reddit):
    assert list(reddit.columns[:4]) == ["id", "text", "label", "group"]
    assert reddit["id"].is_unique
    assert not reddit.duplicated(["group", "text"]).any()
    one_hot = reddit[[f"group_{g}" for g in GROUPS]]
    assert (one_hot.sum(axis=1) == 1).all()
    assert (one_hot.idxmax(axis=1).str.removeprefix("group_") == reddit["group"]).all()
    assert reddit.attrs["groups"] == list(GROUPS)


def write_group_files(folder, rows_by_group, encoding="utf-8"):
    for group, rows in rows_by_group.items():
        path = folder / GROUP_FILES[group]
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(path, index=False, encoding=encoding)


def test_labels_notes_and_duplicates_on_hand_made_files(tmp_path):
    rows = [
        {"id": "a", "comment": "first   comment", "bias_sent": "1"},
        {"id": "b", "comment": "second", "bias_sent": "0.0"},
        {"id": "c", "comment": "unlabelled", "bias_sent": None},
        {"id": "d", "comment": "a note", "bias_sent": "biased?"},
        {"id": "e", "comment": "first comment", "bias_sent": "1"},  # duplicate, same label
        {"id": "f", "comment": "conflict", "bias_sent": "1"},
        {"id": "g", "comment": "conflict", "bias_sent": "0"},  # conflicting copies
        {"id": None, "comment": "caf\u00e9 comment", "bias_sent": 0},
    ]
    write_group_files(tmp_path, {"jewish": rows}, encoding="cp1252")
    df = load_redditbias(["jewish"], folder=tmp_path)
    assert df["text"].tolist() == ["first comment", "second", "caf\u00e9 comment"]
    assert df["label"].tolist() == [1, 0, 0]
    assert df["id"].tolist() == ["jewish/a", "jewish/b", "jewish/row7"]


def test_unexpected_label_names_the_file(tmp_path):
    write_group_files(tmp_path, {"women": [{"comment": "x", "bias_sent": "maybe"}]})
    with pytest.raises(DataValidationError, match=r"gender_female.*unexpected bias_sent.*maybe"):
        load_redditbias(["women"], folder=tmp_path)


def test_missing_column_and_empty_file(tmp_path):
    write_group_files(tmp_path, {"black": [{"comment": "x", "label": 1}]})
    with pytest.raises(DataValidationError, match=r"missing column\(s\) \['bias_sent'\]"):
        load_redditbias(["black"], folder=tmp_path)
    (tmp_path / GROUP_FILES["black"]).write_text("")
    with pytest.raises(DataValidationError, match="empty file"):
        load_redditbias(["black"], folder=tmp_path)
    with pytest.raises(ValueError, match="non-empty subset"):
        load_redditbias(["men"])


def test_stratified_split_is_deterministic_and_proportional(reddit):
    a = stratified_split(reddit, seed=7)
    b = stratified_split(reddit, seed=7)
    c = stratified_split(reddit, seed=8)
    assert a["split"].equals(b["split"]) and not a["split"].equals(c["split"])
    assert set(a["split"]) == {"train", "validation", "test"}
    for _, g in a.groupby(["group", "label"]):
        share = g["split"].value_counts(normalize=True)
        assert share["train"] == pytest.approx(0.8, abs=2 / len(g))
        assert share["test"] == pytest.approx(0.1, abs=2 / len(g))


def test_stratified_split_handles_tiny_strata():
    df = pd.DataFrame({"group": ["a", "a", "a", "b"], "label": [0, 1, 1, 0]})
    out = stratified_split(df, {"train": 0.5, "test": 0.5}, seed=0)
    assert out["split"].value_counts().sum() == 4
    assert (out[(out.group == "a") & (out.label == 1)]["split"].value_counts() == 1).all()
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(df, {"train": 0.5, "test": 0.4})
    with pytest.raises(ValueError, match="stratify columns"):
        stratified_split(df, by=("subgroup",))


def women_file(folder, text):
    path = folder / GROUP_FILES["women"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_file_holding_only_a_newline_or_unreadable_is_named(tmp_path):
    women_file(tmp_path, "\n")
    with pytest.raises(DataValidationError, match=r"gender_female\w*\.csv: empty file"):
        load_redditbias(["women"], folder=tmp_path)
    women_file(tmp_path, "comment,bias_sent\na,1\nb,0,extra\n")
    with pytest.raises(DataValidationError, match=r"gender_female\w*\.csv: not a valid CSV file"):
        load_redditbias(["women"], folder=tmp_path)
    women_file(tmp_path, b"comment,bias_sent\n\x81\x8d,1\n")  # neither UTF-8 nor cp1252
    with pytest.raises(
        DataValidationError, match=r"gender_female\w*\.csv: not UTF-8 or Windows-1252"
    ):
        load_redditbias(["women"], folder=tmp_path)


def test_labelled_rows_without_a_comment_are_dropped_with_a_warning(tmp_path):
    from privbias_lib.data import DataWarning

    women_file(tmp_path, 'comment,bias_sent\n,1\n"  ",0\nok,1\nNA,0\n')
    with pytest.warns(
        DataWarning,
        match=r"gender_female\w*\.csv: dropped 2 of 4 rows with empty comment \(rows 1, 2\)",
    ):
        df = load_redditbias(["women"], folder=tmp_path)
    assert df["text"].tolist() == ["ok", "NA"]  # "NA" is a comment, not a missing value


def test_bad_label_and_empty_result_name_rows_and_reasons(tmp_path):
    women_file(tmp_path, "comment,bias_sent\na,1\nb,maybe\nc,0\n")
    with pytest.raises(DataValidationError, match=r"\.csv: row 2: unexpected bias_sent.*'maybe'"):
        load_redditbias(["women"], folder=tmp_path)
    women_file(tmp_path, "comment,bias_sent\na,\nb,biased?\n")
    with pytest.raises(
        DataValidationError,
        match=r"\.csv: no labelled rows: 1 unlabelled, 1 annotator note\(s\), 0 empty comment",
    ):
        load_redditbias(["women"], folder=tmp_path)


def test_stratified_split_refuses_missing_stratum_values():
    df = pd.DataFrame({"group": ["a", "a", None, "b"], "label": [0, 1, 1, 0]})
    with pytest.raises(ValueError, match=r"row 3: stratify column 'group' is empty"):
        stratified_split(df, {"train": 0.5, "test": 0.5})
