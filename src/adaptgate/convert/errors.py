"""Errors of conversion (all exit code 2: bad input or an environment that cannot take it)."""

from __future__ import annotations

from adaptgate.errors import AdaptgateError, CheckpointFormatError


class ConversionInputError(CheckpointFormatError):
    """The input cannot be converted as it is: names the tensor and what is wrong with it."""


class NotConvertible(AdaptgateError, ValueError):
    """The checkpoint is not in a format this converter takes (not FP8, already Ascend, ...)."""


class NoDiskSpace(AdaptgateError, OSError):
    """The output does not fit on its file system."""


class OutputExists(AdaptgateError, FileExistsError):
    """The output directory already holds a model."""
