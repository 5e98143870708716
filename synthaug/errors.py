"""Errors a user fixes (bad params, data or model): stages report them as one ``error:`` line."""


class UserError(ValueError):
    """Base class: the message names the key, file or model and says what to fix."""


class DataError(UserError):
    """Bad input data (a file, a line, a folder)."""


class ModelError(UserError):
    """A model that cannot be loaded or cannot do what was asked."""
