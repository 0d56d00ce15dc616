"""Verdicts: for each claim of a paper, what we found, with its uncertainty, and one word
for how the two compare — computed from the results, so that the box a reader sees and the
numbers cannot disagree."""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ._io import write_json_atomic

VERDICT_FILE = "verdicts.json"
OUTCOMES = {
    "reproduced": "our numbers support the paper's claim, beyond their uncertainty",
    "direction only": "the effect goes the paper's way, but its size differs clearly",
    "not reproduced": "our numbers contradict the claim",
    "inconclusive": "our uncertainty covers both the claim and its opposite",
    "not assessed": "this run lacks what the claim needs",
}


@dataclass(frozen=True)
class Verdict:
    """One claim of the paper, weighed against our run."""

    claim: str  # the paper's claim, with its own number where it gave one
    ours: str  # what we measured, with its uncertainty
    outcome: str  # one of OUTCOMES
    because: str  # the reason, in a sentence

    def __post_init__(self):
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome={self.outcome!r} is not one of {list(OUTCOMES)}")


def save_verdicts(verdicts: list[Verdict], output_dir: str | Path) -> Path:
    """``verdicts.json`` beside the results (the book puts the box at the chapter's top)."""
    return write_json_atomic(Path(output_dir) / VERDICT_FILE, [asdict(v) for v in verdicts])


def load_verdicts(output_dir: str | Path) -> list[Verdict]:
    path = Path(output_dir) / VERDICT_FILE
    return [Verdict(**v) for v in json.loads(path.read_text())] if path.is_file() else []


def verdict_html(verdicts: list[Verdict], title: str = "Verdict") -> str:
    """The verdict box: one row per claim — the paper's claim, ours, the outcome and why."""
    rows = "".join(
        f'<tr class="pb-{v.outcome.replace(" ", "-")}">'
        f"<td>{html.escape(v.claim)}</td><td>{html.escape(v.ours)}</td>"
        f'<td><span class="pb-outcome" title="{html.escape(OUTCOMES[v.outcome])}">'
        f"{html.escape(v.outcome)}</span><br><small>{html.escape(v.because)}</small></td></tr>"
        for v in verdicts
    )
    return (
        f'<div class="pb-verdict"><div class="pb-verdict-title">{html.escape(title)}</div>'
        "<table><thead><tr><th>the paper claims</th><th>we find</th><th>verdict</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></div>"
    )


def interval_outcome(
    estimate: float, low: float, high: float, *, paper: float, claim_sign: int, tolerance: float
) -> str:
    """The outcome for a claim that an effect has sign ``claim_sign`` (+1 or -1) and the
    size ``paper``: "reproduced" when our interval excludes zero on the claimed side and
    holds the paper's value within ``tolerance``, "direction only" when it excludes zero on
    that side but the size differs, "not reproduced" when it excludes zero on the other
    side, "inconclusive" when it holds zero (or is undefined)."""
    values = (estimate, low, high)
    if any(v != v for v in values):  # NaN: nothing to weigh
        return "inconclusive"
    low, high = sorted((low, high))
    if low <= 0 <= high:
        return "inconclusive"
    if (low > 0) != (claim_sign > 0):
        return "not reproduced"
    if low - tolerance <= paper <= high + tolerance:
        return "reproduced"
    return "direction only"
