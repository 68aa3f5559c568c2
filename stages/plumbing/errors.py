"""Exceptions that stages turn into one clear message and a non-zero exit."""


class StageError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""


class ConfigError(StageError):
    """The configuration names an unknown value or an impossible combination."""


class DataFileError(StageError):
    """An input artifact (HDF5, checkpoint, raw file) is missing, corrupt or inconsistent."""


class DownloadError(StageError):
    """A raw file could not be downloaded or failed its checksum."""


class NonFiniteLossError(StageError):
    """A loss term became NaN or Inf during training."""
