"""Privacy accounting for DP-SGD: the Edgeworth accountant beside RDP, PRV, GDP and PLD.

Every epsilon is reported with the accountant that produced it. Edgeworth, GDP and
the PRV point estimate are *estimates*; RDP, PRV (upper) and PLD are upper bounds.
Quote an upper bound whenever a guarantee is meant.
"""

from .api import DEFAULT_METHODS, compare, epsilon, is_upper_bound, noise_multiplier
from .edgeworth import Edgeworth2Accountant, EdgeworthAccountant, EdgeworthError
from .errors import AccountingError
from .methods import ESTIMATE, METHODS, UPPER_BOUND

__all__ = [
    "DEFAULT_METHODS",
    "ESTIMATE",
    "METHODS",
    "UPPER_BOUND",
    "AccountingError",
    "Edgeworth2Accountant",
    "EdgeworthAccountant",
    "EdgeworthError",
    "compare",
    "epsilon",
    "is_upper_bound",
    "noise_multiplier",
]
