"""The CustomerSim-style generator: exact spans, fresh test data, canaries, and the
alignment of spans to SmolLM2's and Gemma's tokens."""

from __future__ import annotations

import itertools

import pytest

from privbias_lib.data.customersim import (
    CANARY_FIELD,
    FIELDS,
    canary_dialogues,
    generate_dialogues,
    generate_splits,
    make_canaries,
    personal_values,
    sensitive_token_labels,
    with_canaries,
)


@pytest.fixture(scope="module")
def splits():
    return generate_splits(60, 40, seed=3)


def test_every_span_is_its_value_and_every_field_is_present(splits):
    for df in splits:
        for _, row in df.iterrows():
            fields = [f for _, _, f in row.spans]
            assert set(FIELDS) <= set(fields)
            for start, end, field in row.spans:
                value = row.text[start:end]
                if field == "name":  # the full name, or the first name when repeated
                    assert value in (row["name"], row["name"].split()[0])
                else:
                    assert value == row[field]
            names = [row.text[a:b] for a, b, f in row.spans if f == "name"]
            assert row["name"] in names
            # spans do not overlap and leave the text around them untouched
            ordered = sorted(row.spans)
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(ordered))


def test_same_seed_same_dialogues_other_seed_others():
    a = generate_dialogues(5, seed=1)
    b = generate_dialogues(5, seed=1)
    c = generate_dialogues(5, seed=2)
    assert a.equals(b)
    assert not (a.text == c.text).any()
    # dialogue i depends only on (seed, split, i): a longer set starts with the shorter one
    assert generate_dialogues(8, seed=1).text.iloc[:5].tolist() == a.text.tolist()


def test_phrasing_varies(splits):
    train = splits[0]
    first_lines = {
        t.split("\n")[0].replace(n, "<name>")
        for t, n in zip(train.text, train["name"], strict=True)
    }
    assert len(first_lines) >= 4
    line_counts = {t.count("\n") for t in train.text}
    assert line_counts == {7}
    assert train.text.nunique() == len(train)


def test_test_dialogues_have_fresh_personal_data(splits):
    train, test = splits
    assert not personal_values(train) & personal_values(test)
    # a value to exclude forces a redraw
    first = generate_dialogues(1, seed=0)
    again = generate_dialogues(1, seed=0, exclude_values={first["name"].iloc[0]})
    assert again["name"].iloc[0] != first["name"].iloc[0]


def test_canaries_are_inserted_as_often_as_asked(splits):
    canaries = make_canaries([1, 3], 4, seed=0)
    assert [c.repeats for c in canaries] == [1, 3]
    assert all(len(c.secret) == 4 and c.secret.isdigit() for c in canaries)
    assert canaries[0].prefix != canaries[1].prefix
    assert canaries[0].candidate_space_size == 10_000
    train = with_canaries(splits[0], canaries, seed=0)
    assert len(train) == len(splits[0]) + 4
    for c in canaries:
        rows = train[train.canary_id == c.canary_id]
        assert len(rows) == c.repeats
        for _, row in rows.iterrows():
            assert c.text in row.text
            (span,) = [s for s in row.spans if s[2] == CANARY_FIELD]
            assert row.text[span[0] : span[1]] == c.secret
    assert with_canaries(splits[0], canaries, seed=0).equals(train)  # reproducible shuffle
    assert len(canary_dialogues([], seed=0)) == 0


def test_a_canary_line_is_the_customers_sentence_alone(splits):
    canaries = make_canaries([2], 3, seed=0)
    lines = canary_dialogues(canaries, seed=0, form="line")
    assert lines.text.tolist() == [f"Customer: {canaries[0].text}"] * 2
    for text, spans in zip(lines.text, lines.spans, strict=True):
        [(start, end, field)] = spans
        assert field == CANARY_FIELD and text[start:end] == canaries[0].secret
    dialogues = canary_dialogues(canaries, seed=0)  # the default: a dialogue ending with it
    assert all(t.count("\n") > 5 and canaries[0].text in t for t in dialogues.text)
    mixed = with_canaries(splits[0], canaries, seed=0, form="line")
    assert len(mixed) == len(splits[0]) + 2
    with pytest.raises(ValueError, match="form='poem'"):
        canary_dialogues(canaries, form="poem")


@pytest.mark.parametrize(
    "repeats, digits, message",
    [([0], 3, "repeats"), ([1] * 9, 3, "at most"), ([1], 0, "digits"), ([True], 2, "repeats")],
)
def test_bad_canaries_are_refused(repeats, digits, message):
    with pytest.raises(ValueError, match=message):
        make_canaries(repeats, digits)


def _check_alignment(tok, texts, spans):
    labels = sensitive_token_labels(tok, texts, spans)
    enc = tok(list(texts), return_offsets_mapping=True)
    for offsets, lab, sp in zip(enc["offset_mapping"], labels, spans, strict=True):
        assert len(lab) == len(offsets)
        for (a, b), label in zip(offsets, lab, strict=True):
            inside = any(s < b and a < e for s, e, *_ in sp)
            if b <= a:
                assert label == -1  # special tokens cover no character
            else:
                assert label == int(inside)
        for s, e, *_ in sp:  # every character of every span is in a sensitive token
            covered = set()
            for (a, b), label in zip(offsets, lab, strict=True):
                if label == 1:
                    covered.update(range(a, b))
            assert set(range(s, e)) <= covered
    return labels


@pytest.mark.slow
@pytest.mark.parametrize("tokenizer", ["smollm2_tokenizer", "gemma3_tokenizer"])
def test_sensitive_tokens_line_up_with_spans(tokenizer, request, splits):
    tok = request.getfixturevalue(tokenizer)
    df = splits[0].head(20)
    _check_alignment(tok, df.text, df.spans)


@pytest.mark.slow
@pytest.mark.parametrize("tokenizer", ["smollm2_tokenizer", "gemma3_tokenizer"])
def test_alignment_edge_cases(tokenizer, request):
    tok = request.getfixturevalue(tokenizer)
    texts = ["4837 2910 is mine", "my card is 4837 2910", "Jessica", "call Jessica Moore now"]
    spans = [[(0, 9, "card")], [(11, 20, "card")], [(0, 7, "name")], [(5, 18, "name")]]
    labels = _check_alignment(tok, texts, spans)
    ids = tok(texts)["input_ids"]
    # a value at the start, one at the end, a whole text, and a value split over tokens
    assert all(1 in lab for lab in labels)
    assert sum(v == 1 for v in labels[1]) >= 8  # every digit of "4837 2910" is its own token
    assert (
        labels[1][-1] == 1 and labels[0][next(i for i, v in enumerate(labels[0]) if v != -1)] == 1
    )
    assert all(v in (1, -1) for v in labels[2])
    if tok.bos_token_id is not None and ids[0][0] == tok.bos_token_id:  # Gemma adds <bos>
        assert labels[0][0] == -1


@pytest.mark.slow
def test_truncation_matches_the_tokenizer(smollm2_tokenizer, splits):
    df = splits[0].head(3)
    labels = sensitive_token_labels(smollm2_tokenizer, df.text, df.spans, max_length=20)
    assert all(len(x) == 20 for x in labels)
