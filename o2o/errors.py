"""Errors and warnings that o2o shows to users.

Every message names the thing, the place and the expectation, so that the first line printed is enough to fix the input.
"""


class O2OError(Exception):
    """A problem with the user's input or request; the CLI prints it as one line and exits non-zero."""


class DatasetError(O2OError, ValueError):
    """A dataset that cannot be read or does not meet o2o's expectations."""


class DatasetWarning(UserWarning):
    """A dataset that o2o can use after a documented repair (the input file itself is never changed)."""


class Interrupted(O2OError):
    """Ctrl-C stopped a run; its directory holds a checkpoint and the message says how to resume it (exit status 130)."""
