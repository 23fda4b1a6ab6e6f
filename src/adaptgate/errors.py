"""The error hierarchy, in one module.

Every error the user can cause derives from :class:`AdaptgateError` and also from the matching
built-in type, so library callers can catch either. The CLI turns each into one line -- what is
wrong, then how to fix it -- and the error's exit code (2, bad input, unless a class says
otherwise).

Sections, in the order work flows through adaptgate:

- usage and internal: options, registries, run directories, bugs;
- checkpoints and formats: reading a model and its quantization scheme, device kernels;
- conversion: what the converter refuses before it writes anything;
- reference dumps: the CPU reference's output directories;
- KV-cache engine: a server per cache format for the kvcache gate;
- serving: launch plans, the managed vLLM process, its log;
- talking to a server: one error for "no OpenAI-compatible server answers" (smoke, precision,
  bench and the client alike);
- accuracy: lm-eval tasks (unknown, data not local) and the baseline an accuracy is judged against.

Private signals a module raises and catches itself (a parser's ``_Stop``, bench's hot-path
``MalformedChunk``) stay in their modules.
"""

from __future__ import annotations

from typing import Any

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


# -- usage and internal -----------------------------------------------------------------------


class UsageError(AdaptgateError, ValueError):
    """Options that do not fit together or are out of range."""


class UnknownKind(AdaptgateError, KeyError):
    """A name that no registry knows."""


class RunDirError(AdaptgateError, ValueError):
    """A run directory that holds no run, a corrupt run.json, or a run of other settings."""


class InternalError(AdaptgateError, RuntimeError):
    """A bug in adaptgate: exit code 3."""

    exit_code = EXIT_INTERNAL


# -- checkpoints and formats ------------------------------------------------------------------


class CheckpointNotFound(AdaptgateError, FileNotFoundError):
    """The model directory, a file in it, or a cache entry does not exist."""


class CheckpointFormatError(AdaptgateError, ValueError):
    """A file exists but its content is not a valid checkpoint file."""


class ConfigError(AdaptgateError, ValueError):
    """config.json (or another JSON file of the model) is missing a field or unparsable."""


class PickleRefused(AdaptgateError, PermissionError):
    """Pickle weights were found and --allow-pickle was not given."""


class KernelUnavailable(AdaptgateError, RuntimeError):
    """A device kernel cannot run here (no Triton, or no device and no interpreter)."""


# -- conversion (all bad input, or an environment that cannot take the output) ----------------


class ConversionInputError(CheckpointFormatError):
    """The input cannot be converted as it is: names the tensor and what is wrong with it."""


class NotConvertible(AdaptgateError, ValueError):
    """The checkpoint is not in a format this converter takes (not FP8, already Ascend, ...)."""


class NoDiskSpace(AdaptgateError, OSError):
    """The output does not fit on its file system."""


class OutputExists(AdaptgateError, FileExistsError):
    """The output directory already holds a model."""


# -- reference dumps --------------------------------------------------------------------------


class DumpError(AdaptgateError, ValueError):
    """A dump directory that is missing, corrupt, or does not match another dump."""


# -- KV-cache engine --------------------------------------------------------------------------


class EngineUnavailable(AdaptgateError):
    """A server could not be started or reached for one cache."""


# -- serving: launch plans, the managed server, its log ---------------------------------------


class PlanError(AdaptgateError, ValueError):
    """No launch plan exists for this model on this target (a FAIL verdict, exit 1)."""

    exit_code = EXIT_FAIL


class PortInUse(AdaptgateError, OSError):
    """The API port is taken by another process."""


class VllmNotFound(AdaptgateError, FileNotFoundError):
    """The configured python cannot import vllm."""


class ServerStartFailed(AdaptgateError, RuntimeError):
    """The server exited or did not become ready before the deadline (exit 1); ``log_tail``
    holds the end of its log for the diagnosis; ``said``, the message as a catalogue sentence
    (an ``adaptgate.messages.Said``, which sits above this module), for the serve gate's reason."""

    exit_code = EXIT_FAIL

    def __init__(
        self, message: str, *, fix: str | None = None, log_tail: str = "", said: Any = None
    ) -> None:
        super().__init__(message, fix=fix)
        self.log_tail = log_tail
        self.said = said


class LogNotFound(AdaptgateError, FileNotFoundError):
    """The server log to read (diagnose, or --server-log) does not exist."""


# -- talking to a server ----------------------------------------------------------------------


class ServerUnreachable(AdaptgateError, ConnectionError):
    """No OpenAI-compatible server answers at the URL, or it answered a request with an error.
    The gates that find the serve gate's server gone catch it and skip."""


# -- accuracy ----------------------------------------------------------------------------------


class UnknownTask(AdaptgateError, KeyError):
    """A task lm-eval's registry does not hold."""


class TaskDataMissing(AdaptgateError, FileNotFoundError):
    """A task whose data is not available locally (the network is never used)."""


class BaselineError(AdaptgateError, ValueError):
    """An accuracy baseline that is no accuracy result."""
