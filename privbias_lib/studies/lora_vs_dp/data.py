"""Study 3's data: CustomerSim-style dialogues with known personal data and canaries, and
the check that the sensitive-token labels line up with the tokenizer."""

from __future__ import annotations

import dataclasses
import html

import pandas as pd

from ...hashing import frame_hash, stable_hash
from .params import LoraVsDpParams


@dataclasses.dataclass
class StudyData:
    """The dialogues: ``train`` (with the canary dialogues, what the models train on),
    ``members``/``test`` (the training and test dialogues without canaries, what the
    measures compare) and the canaries."""

    train: pd.DataFrame
    members: pd.DataFrame
    test: pd.DataFrame
    canaries: list

    def fingerprint(self) -> str:
        cols = ["dialogue_id", "text", "spans"]
        frames = [self.train[cols], self.test[cols]]
        return stable_hash(
            {
                "frames": [frame_hash(f.astype(str)) for f in frames],
                "canaries": [dataclasses.asdict(c) for c in self.canaries],
            }
        )

    def describe(self) -> dict:
        """The manifest's ``data`` entry."""
        from ...data.customersim import FIELDS

        return {
            "generator": "privbias_lib.data.customersim",
            "sha256": self.fingerprint(),
            "dialogues": {
                "train": len(self.members),
                "canary": len(self.train) - len(self.members),
                "test": len(self.test),
            },
            "fields": list(FIELDS),
            "canaries": [c.__dict__ for c in self.canaries],
        }


def load_data(params: LoraVsDpParams) -> StudyData:
    """Generate the training and test dialogues and insert the canaries."""
    from ...data.customersim import generate_splits, make_canaries, with_canaries

    members, test = generate_splits(
        params.n_train, params.n_test, seed=params.data_seed, locale=params.locale
    )
    canaries = make_canaries(params.canary_repeats, params.canary_digits, seed=params.data_seed)
    train = with_canaries(
        members, canaries, seed=params.data_seed, locale=params.locale, form=params.canary_format
    )
    return StudyData(train=train, members=members, test=test, canaries=canaries)


def alignment_check(tokenizer, df: pd.DataFrame, max_length: int | None = None) -> dict:
    """Do the sensitive-token labels (from the tokenizer's offset mapping) line up with the
    spans? Checked through a second path, the token ids: each run of consecutive
    sensitive tokens is decoded, every span's value must appear in one of them, and every
    run must contain some span's value (or, cut by truncation, part of one). Spans cut off
    by truncation are not checked."""
    from ...data.customersim import sensitive_token_labels

    labels = sensitive_token_labels(tokenizer, df.text, df.spans, max_length=max_length)
    ids = tokenizer(list(df.text), truncation=max_length is not None, max_length=max_length)[
        "input_ids"
    ]
    spans = missed = stray = runs = 0
    for text, text_spans, tokens, lab in zip(df.text, df.spans, ids, labels, strict=True):
        decoded, run = [], []
        for token, label in [*zip(tokens, lab, strict=True), (None, 0)]:
            if label == 1:
                run.append(token)
            elif run:
                decoded.append(tokenizer.decode(run))
                run = []
        kept = tokenizer.decode([t for t, v in zip(tokens, lab, strict=True) if v != -1])
        values = [text[s:e] for s, e, _ in text_spans]
        for value in values:
            if value in kept:  # not cut off by truncation
                spans += 1
                missed += not any(value in d for d in decoded)
        runs += len(decoded)
        # a run cut by truncation holds part of a value
        stray += sum(not any(v in d or d.strip() in v for v in values) for d in decoded)
    n_tokens = sum(len(x) for x in labels)
    return {
        "spans_checked": spans,
        "spans_not_recovered": missed,
        "sensitive_runs": runs,
        "runs_without_a_value": stray,
        "sensitive_token_share": sum(int(v == 1) for x in labels for v in x) / n_tokens,
        "ok": spans > 0 and missed == 0 and stray == 0,
    }


def highlight_tokens(tokenizer, text: str, spans, max_tokens: int = 80) -> pd.DataFrame:
    """The first tokens of one text with their labels, for showing the alignment."""
    from ...data.customersim import sensitive_token_labels

    ids = tokenizer(text)["input_ids"][:max_tokens]
    labels = sensitive_token_labels(tokenizer, [text], [spans])[0][:max_tokens]
    return pd.DataFrame(
        {
            "token": [tokenizer.decode([i]) for i in ids],
            "label": [{1: "sensitive", 0: "", -1: "special"}[v] for v in labels],
        }
    )


_TOKEN_STYLES = {
    "sensitive": "background:#fcc;border-color:#c33",
    "special": "background:#eee;color:#777",
    "": "",
}


def highlight_html(tokens: pd.DataFrame) -> str:
    """`highlight_tokens`'s table as wrapped HTML: one box per token, sensitive tokens
    red, special ones grey; spaces shown as a middle dot, line breaks as a return sign."""
    boxes = []
    for token, label in zip(tokens.token, tokens.label, strict=True):
        shown = html.escape(token).replace(" ", "\N{MIDDLE DOT}").replace("\n", "\N{RETURN SYMBOL}")
        boxes.append(
            '<span style="display:inline-block;border:1px solid #ccc;margin:1px;'
            f'padding:0 2px;white-space:pre;{_TOKEN_STYLES[label]}">{shown}</span>'
        )
    legend = (
        f"<div>the first {len(tokens)} tokens; "
        f'<span style="{_TOKEN_STYLES["sensitive"]}">sensitive</span>, '
        f'<span style="{_TOKEN_STYLES["special"]}">special</span></div>'
    )
    style = "font-family:monospace;font-size:0.8em;line-height:1.9"
    return f'<div style="{style}">{legend}{"".join(boxes)}</div>'
