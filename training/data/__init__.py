"""Dataset loaders for the formats users have; each fails with a :class:`DataError` naming the problem."""


class DataError(ValueError):
    """A dataset is missing or malformed; the message says which file or folder and what was expected."""
