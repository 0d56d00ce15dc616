"""The one error type accountants raise when they cannot give a number."""


class AccountingError(ArithmeticError):
    """An accountant gives no usable epsilon at this setting; the message says why."""
