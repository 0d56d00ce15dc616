"""WinoBias parsing and the occupation statistics."""

from __future__ import annotations

import shutil

import pytest

from privbias_lib.data import DataValidationError, load_winobias, occupation_stats
from privbias_lib.data.winobias import occupation_lists, parse_line, winobias_dir

OCC = {
    "developer": "male",
    "designer": "female",
    "physician": "male",
    "teacher": "female",
    "assistant": "female",
    "farmer": "male",
    "housekeeper": "female",
    "mechanic": "male",
}


def test_full_set_counts(winobias_all):
    wb = winobias_all
    assert len(wb) == 3168
    assert (wb["stereotype"] == "pro").sum() == 1584
    assert (wb["stereotype"] == "anti").sum() == 1584
    assert wb["occupation"].nunique() == 40
    assert wb.groupby(["split", "type"]).size().tolist() == [792, 792, 792, 792]
    assert wb["id"].is_unique
    assert (wb["mentions"].map(len) == 3).sum() == 87  # lines with a second pronoun


def test_every_occupation_has_statistics(winobias_all):
    stats = occupation_stats()
    assert len(stats) == 40
    assert set(winobias_all["occupation"]) == set(stats["occupation"])
    assert set(winobias_all["other_occupation"]) <= set(stats["occupation"])


def test_spans_point_at_the_mentions(winobias_all):
    for r in winobias_all.itertuples():
        s = r.sentence
        assert "[" not in s and "]" not in s and "  " not in s
        assert s[r.occupation_start : r.occupation_end].lower().endswith(r.occupation.lower())
        assert s[r.other_start : r.other_end].lower().endswith(r.other_occupation.lower())
        assert s[r.pronoun_start : r.pronoun_end].lower() == r.pronoun
        for m in r.mentions:
            assert s[m["start"] : m["end"]] == m["text"]
        assert r.occupation != r.other_occupation


def test_pro_means_pronoun_matches_the_occupations_majority(winobias_all):
    wb = winobias_all
    pro, anti = wb[wb.stereotype == "pro"], wb[wb.stereotype == "anti"]
    assert (pro.pronoun_gender == pro.occupation_majority).all()
    assert (anti.pronoun_gender != anti.occupation_majority).all()


def test_pairs_share_occupations_and_differ_in_pronoun_gender(winobias_all):
    wb = winobias_all.dropna(subset=["pair_id"])
    assert len(winobias_all) - len(wb) == 4  # test type-2 lines 382 and 384 are not pairs
    for _, g in wb.groupby("pair_id"):
        assert sorted(g.stereotype) == ["anti", "pro"]
        assert g.occupation.nunique() == 1 and g.other_occupation.nunique() == 1
        assert g.pronoun_gender.nunique() == 2


@pytest.mark.parametrize(
    ("line", "sentence", "occupation", "other", "pronouns"),
    [
        (
            "1 [The developer] argued with the designer because [he] did not like the design.\r",
            "The developer argued with the designer because he did not like the design.",
            "developer",
            "designer",
            ["he"],
        ),
        (
            "176 The teacher asked the [ physician] about the course and believed [him].",
            "The teacher asked the physician about the course and believed him.",
            "physician",
            "teacher",
            ["him"],
        ),
        (
            "307 The farmer hired [an assistant] and told [him] to come to work.",
            "The farmer hired an assistant and told him to come to work.",
            "assistant",
            "farmer",
            ["him"],
        ),
        (
            "162 The mechanic fixed the [housekeeper] 's car and then [he] wrote a note.",
            "The mechanic fixed the housekeeper 's car and then he wrote a note.",
            "housekeeper",
            "mechanic",
            ["he"],
        ),
        (
            "27 [The developer] visited the designer because [she] needed to cut [her] hair.",
            "The developer visited the designer because she needed to cut her hair.",
            "developer",
            "designer",
            ["she", "her"],
        ),
    ],
)
def test_parse_line_hand_made(line, sentence, occupation, other, pronouns):
    rec = parse_line(line, OCC)
    assert rec["sentence"] == sentence
    assert rec["occupation"] == occupation and rec["other_occupation"] == other
    assert [m["text"] for m in rec["mentions"] if m["role"] == "pronoun"] == pronouns
    assert rec["pronoun_gender"] == ("male" if pronouns[0] in ("he", "him") else "female")


def test_parse_line_rejects_malformed_lines():
    with pytest.raises(ValueError, match="numbered"):
        parse_line("[The developer] argued with [he].", OCC)
    with pytest.raises(ValueError, match="not a WinoBias occupation"):
        parse_line("3 [The pilot] argued with the designer because [he] was late.", OCC)


def test_bad_file_is_reported_with_its_name_and_line(tmp_path):
    folder = tmp_path / "wb"
    shutil.copytree(winobias_dir(), folder)
    target = folder / "anti_stereotyped_type2.txt.dev"
    lines = target.read_text().splitlines()
    lines[4] = "5 The developer argued with the designer because he was late."
    target.write_text("\n".join(lines))
    with pytest.raises(DataValidationError, match=r"anti_stereotyped_type2.txt.dev: line 5"):
        load_winobias("dev", folder=folder)
    (folder / "pro_stereotyped_type1.txt.test").write_text("")
    with pytest.raises(DataValidationError, match=r"pro_stereotyped_type1\.txt\.test: empty file"):
        load_winobias("test", folder=folder)


def test_bad_split_names_the_choices():
    with pytest.raises(ValueError, match="'dev', 'test', 'all'"):
        load_winobias("train")


def test_occupation_stats_agree_with_winobias_lists():
    stats = occupation_stats().set_index("occupation")
    lists = occupation_lists()
    assert stats["majority"].to_dict() == lists
    male = stats[stats.majority == "male"].share_women_pct
    female = stats[stats.majority == "female"].share_women_pct
    assert (male < 50).all() and (female > 50).all()
    assert stats.loc["secretary", "share_women_pct"] == 95
    assert stats.loc["carpenter", "share_women_pct"] == 2.1
    assert stats["source"].str.contains("Bureau of Labor Statistics").all()


def test_line_numbers_count_blank_lines_and_undecodable_files_are_named(tmp_path):
    folder = tmp_path / "wb"
    shutil.copytree(winobias_dir(), folder)
    target = folder / "pro_stereotyped_type1.txt.dev"
    lines = target.read_text().splitlines()
    lines[2:2] = ["", "   "]  # blank lines 3 and 4; the file's line 6 is bad
    lines[5] = "4 The developer argued with the designer because he was late."
    target.write_text("\n".join(lines))
    with pytest.raises(DataValidationError, match=r"pro_stereotyped_type1\.txt\.dev: line 6:"):
        load_winobias("dev", folder=folder)
    target.write_bytes(b"1 [The developer] \xff argued")
    with pytest.raises(DataValidationError, match=r"type1\.txt\.dev: not UTF-8 text"):
        load_winobias("dev", folder=folder)
    (folder / "male_occupations.txt").write_text("\n")
    with pytest.raises(DataValidationError, match=r"male_occupations\.txt: empty file"):
        load_winobias("dev", folder=folder)


def test_occupation_stats_name_the_bad_row(tmp_path, monkeypatch):
    from privbias_lib.data import occupations

    monkeypatch.setattr(occupations, "data_dir", lambda: tmp_path)
    path = tmp_path / "winobias_occupations.csv"
    path.write_text("occupation,share_women_pct,majority\nnurse,90,female\ncook,about half,male\n")
    with pytest.raises(
        DataValidationError,
        match=r"winobias_occupations\.csv: row 2: column 'share_women_pct' must be a number",
    ):
        occupation_stats()
    path.write_text("\n")
    with pytest.raises(DataValidationError, match=r"winobias_occupations\.csv: empty file"):
        occupation_stats()
