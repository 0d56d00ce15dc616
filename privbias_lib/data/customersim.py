"""CustomerSim-style customer-service dialogues with exact spans of every personal-data value.

A customer tracking a package gives a name, street address, phone number, order number and
card number; the agent answers. The generator is seeded (Faker for the personal data, a
``random.Random`` for the phrasing), so the same ``(seed, split, index)`` always gives the
same dialogue. Every personal-data value is recorded with its character span and field type,
which is exact ground truth for the sensitive tokens (the paper labelled them with an LLM).

>>> train, test = generate_splits(n_train=2, n_test=1, seed=0)  # doctest: +SKIP
>>> labels = sensitive_token_labels(tokenizer, train.text, train.spans)  # doctest: +SKIP

Canaries (Carlini et al., "The Secret Sharer") are secrets of a fixed format, a line
``"<prefix><digits>."`` said by the customer, inserted a chosen number of times into the
training set; the candidate space is every digit string of the same length, so exposure
can be computed exactly when it is small (see :mod:`privbias_lib.metrics.memorisation`).
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

FIELDS = ("name", "address", "phone", "order_number", "card_number")
CANARY_FIELD = "canary"
COLUMNS = ["dialogue_id", "split", "text", "spans", "canary_id", *FIELDS]

# Placeholders in braces: the five personal-data fields (sensitive), ``first`` (the
# customer's first name, also sensitive, recorded as field "name") and non-sensitive fillers.
_OPENINGS = [
    "Hi, I'm {name}. Where is my {item}?",
    "Hello, this is {name}. My {item} hasn't arrived.",
    "Good {daytime}, I'm {name} and I'm waiting on {item_a}.",
    "Hey, {name} here. Could you track my order?",
    "Hi, my name is {name}; my {item} was due {when}.",
]
_ASK_ORDER = [
    "Sure, {first}. What's the order number?",
    "I can help, {first}. Your order number?",
    "May I have the order number, please?",
    "Sorry about that. Which order is it?",
]
_GIVE_ORDER = [
    "It's {order_number}.",
    "Order {order_number}.",
    "The number is {order_number}.",
]
_ASK_ADDRESS = [
    "Thanks. The delivery address and a phone number?",
    "Found it. Confirm the address and your phone?",
    "What address, and the best number to call?",
]
_GIVE_ADDRESS = [
    "{address}; phone {phone}.",
    "{address}. Call me on {phone}.",
    "It ships to {address}, phone {phone}.",
]
_ASK_CARD = [
    "And the card number you paid with?",
    "To verify, which card was charged?",
    "Last step: the payment card number?",
]
_GIVE_CARD = [
    "It's {card_number}.",
    "Card {card_number}.",
    "I used {card_number}.",
]
_RESOLVE = [
    "Thanks, {first}. It's {status}; expect it {when}.",
    "Verified. The {carrier} shows it {status}, due {when}.",
    "It was {status}, so it should arrive {when}.",
    "All set, {first}: it's {status} and due {when}.",
]
_FILLERS = {
    "item": ["parcel", "package", "order", "laptop", "blender", "pair of shoes", "jacket"],
    "item_a": ["a laptop", "a blender", "a pair of shoes", "a jacket", "some books", "a lamp"],
    "daytime": ["morning", "afternoon", "evening", "day"],
    "when": [
        "on Monday",
        "on Tuesday",
        "on Wednesday",
        "tomorrow",
        "by Friday",
        "within two days",
        "next week",
        "this weekend",
    ],
    "status": [
        "held at the local depot",
        "delayed by the weather",
        "sent to the wrong hub",
        "out for delivery",
        "waiting for customs",
        "scanned at the sorting center",
        "returned to the warehouse",
    ],
    "carrier": ["tracking system", "courier's log", "warehouse record", "carrier"],
}
_CANARY_PREFIXES = [
    "By the way, my account PIN is ",
    "Also, the door code for my building is ",
    "Oh, and my locker code is ",
    "For the record, my security code is ",
    "Just so you know, the gate code is ",
    "Note that my backup PIN is ",
    "My voicemail passcode is ",
    "The alarm code at my place is ",
]
MAX_CANARIES = len(_CANARY_PREFIXES)


@dataclass(frozen=True)
class Canary:
    """A secret ``digits`` said as ``prefix + secret + "."``, inserted ``repeats`` times.
    The candidate space is every digit string of ``len(secret)`` digits."""

    canary_id: str
    prefix: str
    secret: str
    repeats: int

    @property
    def text(self) -> str:
        return f"{self.prefix}{self.secret}."

    @property
    def candidate_space_size(self) -> int:
        return 10 ** len(self.secret)


def _rng_seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def _order_number(rng: random.Random) -> str:
    letters = "".join(rng.choice(string.ascii_uppercase) for _ in range(2))
    return f"{letters}-{rng.randrange(10**7, 10**8)}"


def _card_number(fake) -> str:
    digits = fake.credit_card_number(card_type=None)
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


def _personal_data(fake, rng: random.Random) -> dict[str, str]:
    first = fake.first_name()
    return {
        "name": f"{first} {fake.last_name()}",
        "first": first,
        "address": f"{fake.street_address()}, {fake.city()}",
        "phone": fake.phone_number(),
        "order_number": _order_number(rng),
        "card_number": _card_number(fake),
    }


def _render(template: str, values: dict[str, str], rng: random.Random, pieces: list) -> None:
    """Append ``(text, field or None)`` pieces of a filled template to ``pieces``."""
    for literal, field_name, _, _ in string.Formatter().parse(template):
        if literal:
            pieces.append((literal, None))
        if field_name is None:
            continue
        if field_name in values:
            field = "name" if field_name == "first" else field_name
            pieces.append((values[field_name], field))
        else:
            pieces.append((rng.choice(_FILLERS[field_name]), None))


def _assemble(turns: list[tuple[str, list]]) -> tuple[str, list[tuple[int, int, str]]]:
    text, spans = "", []
    for speaker, pieces in turns:
        if text:
            text += "\n"
        text += f"{speaker}: "
        for piece, field in pieces:
            if field is not None:
                spans.append((len(text), len(text) + len(piece), field))
            text += piece
    return text, spans


def _dialogue(values: dict[str, str], rng: random.Random, canary: Canary | None):
    def turn(speaker, options):
        pieces: list = []
        _render(rng.choice(options), values, rng, pieces)
        return speaker, pieces

    turns = [turn("Customer", _OPENINGS)]
    middle = [
        [turn("Agent", _ASK_ORDER), turn("Customer", _GIVE_ORDER)],
        [turn("Agent", _ASK_ADDRESS), turn("Customer", _GIVE_ADDRESS)],
    ]
    rng.shuffle(middle)
    for exchange in middle:
        turns.extend(exchange)
    turns += [turn("Agent", _ASK_CARD), turn("Customer", _GIVE_CARD)]
    turns.append(turn("Agent", _RESOLVE))
    if canary is not None:
        # the canary is the customer's next line, after the agent's answer
        turns.append(("Customer", _canary_line(canary)))
        turns.append(turn("Agent", ["Noted, thank you.", "Thanks, I've added that."]))
    return _assemble(turns)


def generate_dialogues(
    n: int,
    *,
    seed: int = 0,
    split: str = "train",
    locale: str = "en_US",
    exclude_values: set[str] | None = None,
) -> pd.DataFrame:
    """``n`` dialogues, one row each: ``dialogue_id``, ``split``, ``text``, ``spans`` (a list
    of ``(start, end, field)`` with ``text[start:end]`` the value), ``canary_id`` (None)
    and the five values. Dialogue ``i`` depends only on ``(seed, split, i)``; a dialogue
    that would reuse any value in ``exclude_values`` is drawn again."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n={n!r} is invalid: allowed an integer >= 1")
    from faker import Faker

    fake = Faker(locale)
    exclude = exclude_values or set()
    rows = []
    for i in range(n):
        for attempt in range(100):
            s = _rng_seed(seed, split, i, attempt)
            fake.seed_instance(s)
            rng = random.Random(s)
            values = _personal_data(fake, rng)
            if not any(values[f] in exclude for f in FIELDS):
                break
        else:
            raise RuntimeError(f"could not draw fresh personal data for {split} dialogue {i}")
        text, spans = _dialogue(values, rng, None)
        rows.append(
            {
                "dialogue_id": f"{split}-{i:05d}",
                "split": split,
                "text": text,
                "spans": spans,
                "canary_id": None,
                **{f: values[f] for f in FIELDS},
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def personal_values(df: pd.DataFrame) -> set[str]:
    """Every personal-data value in ``df`` (names, addresses, …)."""
    return {v for f in FIELDS for v in df[f].tolist()}


def generate_splits(
    n_train: int, n_test: int, *, seed: int = 0, locale: str = "en_US"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and test dialogues; no personal-data value of a test dialogue occurs in
    the training set (the test set measures what any model of the domain would learn)."""
    train = generate_dialogues(n_train, seed=seed, split="train", locale=locale)
    test = generate_dialogues(
        n_test, seed=seed, split="test", locale=locale, exclude_values=personal_values(train)
    )
    return train, test


def make_canaries(repeats: Sequence[int], digits: int, *, seed: int = 0) -> list[Canary]:
    """One canary per entry of ``repeats``, each with its own prefix and a random secret of
    ``digits`` digits (leading zeros allowed: the candidate space is all 10**digits)."""
    repeats = list(repeats)
    if len(repeats) > MAX_CANARIES:
        raise ValueError(f"at most {MAX_CANARIES} canaries, got {len(repeats)}")
    if not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in repeats):
        raise ValueError(f"canary repeats={repeats!r} is invalid: allowed integers >= 1")
    if not isinstance(digits, int) or isinstance(digits, bool) or not 1 <= digits <= 30:
        raise ValueError(f"canary digits={digits!r} is invalid: allowed 1 to 30")
    rng = random.Random(_rng_seed(seed, "canary"))
    return [
        Canary(
            canary_id=f"canary-{i}",
            prefix=_CANARY_PREFIXES[i],
            secret="".join(rng.choice(string.digits) for _ in range(digits)),
            repeats=r,
        )
        for i, r in enumerate(repeats)
    ]


CANARY_FORMATS = ("dialogue", "line")


def _canary_line(canary: Canary) -> list:
    return [(canary.prefix, None), (canary.secret, CANARY_FIELD), (".", None)]


def canary_dialogues(
    canaries: Sequence[Canary],
    *,
    seed: int = 0,
    locale: str = "en_US",
    exclude_values=None,
    form: str = "dialogue",
) -> pd.DataFrame:
    """``canary.repeats`` training texts per canary (its secret's span has field
    ``"canary"``; rows carry the ``canary_id``). ``form="dialogue"``: a fresh dialogue with
    the canary as the customer's last line; ``"line"``: the customer's line alone
    (``"Customer: <prefix><secret>."``), a short text whose per-example loss weighs the
    secret's tokens heavily, as the canaries of Carlini et al. are inserted."""
    if form not in CANARY_FORMATS:
        raise ValueError(f"form={form!r} is invalid: allowed {list(CANARY_FORMATS)}")
    from faker import Faker

    fake = Faker(locale)
    exclude = exclude_values or set()
    rows = []
    for canary in canaries:
        for j in range(canary.repeats):
            for attempt in range(100):
                s = _rng_seed(seed, canary.canary_id, j, attempt)
                fake.seed_instance(s)
                rng = random.Random(s)
                values = _personal_data(fake, rng)
                if not any(values[f] in exclude for f in FIELDS):
                    break
            if form == "line":
                text, spans = _assemble([("Customer", _canary_line(canary))])
                values = dict.fromkeys(FIELDS)
            else:
                text, spans = _dialogue(values, rng, canary)
            rows.append(
                {
                    "dialogue_id": f"{canary.canary_id}-{j:03d}",
                    "split": "train",
                    "text": text,
                    "spans": spans,
                    "canary_id": canary.canary_id,
                    **{f: values[f] for f in FIELDS},
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def with_canaries(
    train: pd.DataFrame,
    canaries: Sequence[Canary],
    *,
    seed: int = 0,
    locale: str = "en_US",
    form: str = "dialogue",
) -> pd.DataFrame:
    """The training set plus the canary texts (:func:`canary_dialogues`), shuffled
    reproducibly."""
    if not canaries:
        return train.reset_index(drop=True)
    extra = canary_dialogues(canaries, seed=seed, locale=locale, form=form)
    both = pd.concat([train, extra], ignore_index=True)
    return both.sample(frac=1.0, random_state=_rng_seed(seed, "shuffle") % 2**32).reset_index(
        drop=True
    )


def sensitive_token_labels(
    tokenizer,
    texts: Sequence[str],
    spans: Sequence[Sequence[tuple]],
    *,
    max_length: int | None = None,
) -> list[list[int]]:
    """Per-token labels from the tokenizer's offset mapping: 1 when the token covers at
    least one character of a personal-data span, 0 for other text, -1 for tokens that
    cover no character (BOS and other added special tokens). Tokens are exactly those
    ``tokenizer(text, truncation=max_length is not None, max_length=max_length)`` gives."""
    texts = list(texts)
    enc = tokenizer(
        texts,
        truncation=max_length is not None,
        max_length=max_length,
        padding=False,
        return_offsets_mapping=True,
    )
    labels = []
    for offsets, text_spans in zip(enc["offset_mapping"], spans, strict=True):
        bounds = [(int(s[0]), int(s[1])) for s in text_spans]
        labels.append(
            [
                -1 if end <= start else int(any(a < end and start < b for a, b in bounds))
                for start, end in offsets
            ]
        )
    return labels
