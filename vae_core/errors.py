"""Errors that carry a one-line message meant for the user (CLI and dashboard print them as is)."""


class VampvizError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class DatasetError(VampvizError):
    """A dataset is unknown, missing, or its files are malformed."""


class CheckpointError(VampvizError):
    """A checkpoint folder is missing, truncated, foreign or does not match its config."""


class TrainingDivergedError(VampvizError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
