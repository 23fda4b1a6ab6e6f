"""The error hierarchy.

Every error the user can cause derives from :class:`AdaptgateError` and also from the matching
built-in type, so library callers can catch either. The CLI turns each into one line -- what is
wrong, then how to fix it -- and the error's exit code.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


class AdaptgateError(Exception):
    """Root of adaptgate's errors: bad input unless a subclass says otherwise."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        if self.fix:
            text += f" -- fix: {' '.join(self.fix.split())}"
        return text

    def __str__(self) -> str:
        return self.one_line()


class UsageError(AdaptgateError, ValueError):
    """Options that do not fit together or are out of range."""


class UnknownKind(AdaptgateError, KeyError):
    """A name that no registry knows."""


class CheckpointNotFound(AdaptgateError, FileNotFoundError):
    """The model directory, a file in it, or a cache entry does not exist."""


class CheckpointFormatError(AdaptgateError, ValueError):
    """A file exists but its content is not a valid checkpoint file."""


class ConfigError(AdaptgateError, ValueError):
    """config.json (or another JSON file of the model) is missing a field or unparsable."""


class PickleRefused(AdaptgateError, PermissionError):
    """Pickle weights were found and --allow-pickle was not given."""


class RunDirError(AdaptgateError, ValueError):
    """A run directory that holds no run, a corrupt run.json, or a run of other settings."""


class InternalError(AdaptgateError, RuntimeError):
    """A bug in adaptgate: exit code 3."""

    exit_code = EXIT_INTERNAL


class KernelUnavailable(AdaptgateError, RuntimeError):
    """A device kernel cannot run here (no Triton, or no device and no interpreter)."""
