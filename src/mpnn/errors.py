"""Errors that reach a user as one line (the CLI prints them without a traceback)."""


class MpnnError(Exception):
    """Base class of the errors the command line reports as a single line."""


class DataError(MpnnError, ValueError):
    """Malformed or unusable input; the message names the file and line, or the field."""


class FeaturizationError(DataError):
    """A molecule whose graph features cannot be derived (bonds, RDKit failure)."""
