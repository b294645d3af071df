"""Errors of training that the command line reports in one line (exit status 2), without torch."""


class NumericalError(ValueError):
    """Training produced numbers it cannot go on with; the message says which and what to change."""
