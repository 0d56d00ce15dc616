"""The studies: one package each, exporting one :class:`~privbias_lib.study.Study`
(``STUDY``). This registry is what the runner, the book and the command line iterate over;
a fifth study is one more package and one more line here."""

from __future__ import annotations

from ..params import ParameterError
from ..study import PROFILES, Study
from .bias_transfer import STUDY as BIAS_TRANSFER
from .dp_bias import STUDY as DP_BIAS
from .ew_tune import STUDY as EW_TUNE
from .lora_vs_dp import STUDY as LORA_VS_DP

STUDIES: dict[str, Study] = {s.key: s for s in (DP_BIAS, EW_TUNE, LORA_VS_DP, BIAS_TRANSFER)}

__all__ = ["PROFILES", "STUDIES", "Study", "find_study"]


def find_study(name: str) -> Study:
    """A study by key (``03_lora_vs_dp``), number (``03``, ``3``) or name (``lora_vs_dp``)."""
    if name in STUDIES:
        return STUDIES[name]
    for study in STUDIES.values():
        number = study.key.split("_", 1)[0]
        if name in (number, number.lstrip("0"), study.name):
            return study
    raise ParameterError(
        f"unknown study {name!r}; known: {list(STUDIES)} (or a number 1-{len(STUDIES)}, or "
        "the key without its number)"
    )
