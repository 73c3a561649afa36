"""User-facing errors.

Every problem a user can cause (bad arrays, unknown names, missing files, corrupt checkpoints,
bad config values) is raised as a :class:`PixeljaxError` whose message names the problem and what
was expected. The command line prints these as one line instead of a traceback.
"""


class PixeljaxError(ValueError):
    """A problem with the user's input, files or configuration."""


class CheckpointError(PixeljaxError):
    """A checkpoint that is missing, corrupt or of another architecture."""


class DataError(PixeljaxError):
    """A data set or array that cannot be read or has the wrong shape, dtype or range."""
