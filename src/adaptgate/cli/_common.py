"""Options and error handling every command shares.

Conventions (also in the README): ``--json`` prints the result JSON on stdout; exit code 0 when the
command succeeds or the gate passes, 1 when a gate's verdict is FAIL, 2 for bad input or usage,
3 for an internal error. Errors are one line on stderr; ``ADAPTGATE_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from adaptgate.client import API_KEY_ENV, EndpointOptions
from adaptgate.console import Output
from adaptgate.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, AdaptgateError
from adaptgate.record import KV_CACHE_DTYPES
from adaptgate.settings import load_settings

F = TypeVar("F", bound=Callable[..., Any])


def output_options(fn: F) -> F:
    """Adds --json and --quiet, and passes an :class:`Output` as ``out``."""

    @click.option("--json", "as_json", is_flag=True, help="Print the result JSON on stdout.")
    @click.option("--quiet", "-q", is_flag=True, help="No tables or progress; exit code only.")
    @functools.wraps(fn)
    def wrapper(*args: Any, as_json: bool, quiet: bool, **kwargs: Any) -> Any:
        return fn(*args, out=Output(json=as_json, quiet=quiet), **kwargs)

    return wrapper  # type: ignore[return-value]


def fail(message: str, fix: str | None = None, code: int = EXIT_BAD_INPUT) -> None:
    line = " ".join(message.split())
    if fix:
        line += f" -- fix: {' '.join(fix.split())}"
    click.echo(f"adaptgate: error: {line}", err=True)
    sys.exit(code)


def handle_errors(fn: F) -> F:
    """Maps exceptions to one line and an exit code; the command's return value is its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = False
        try:
            debug = load_settings().debug  # a bad ADAPTGATE_* value is bad input, like an option
            code = fn(*args, **kwargs)
        except AdaptgateError as exc:
            if debug:
                traceback.print_exc()
            fail(exc.message, exc.fix, exc.exit_code)
        except KeyboardInterrupt:
            click.echo("adaptgate: interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 3
            if debug:
                traceback.print_exc()
            fail(
                f"internal error: {type(exc).__name__}: {exc}",
                "rerun with ADAPTGATE_DEBUG=1 for the traceback and report it",
                EXIT_INTERNAL,
            )
        sys.exit(int(code or 0))

    return wrapper  # type: ignore[return-value]


def emit_json(out: Output, payload: str) -> None:
    """In --json mode, the result JSON is the only thing on stdout."""
    if out.json:
        click.echo(payload)


def deprecated(old: str, new: str) -> None:
    """The one line an old spelling prints; it keeps working for one release."""
    click.echo(f"adaptgate: warning: {old} is deprecated; use {new}", err=True)


def renamed_option(old: str, new: str, name: str) -> Callable[[F], F]:
    """``old``, the spelling of the option ``new`` before it was renamed, kept hidden for one
    release: its value reaches the command as ``name`` (``new``'s parameter), after one
    deprecation line. Giving both is a usage error."""
    hidden = f"old_{name}"

    def decorator(fn: F) -> F:
        @click.option(old, hidden, hidden=True, help=f"Deprecated: use {new}.")
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            value = kwargs.pop(hidden)
            if value is not None:
                deprecated(old, new)
                source = click.get_current_context().get_parameter_source(name)
                if source is click.core.ParameterSource.COMMANDLINE:
                    raise click.UsageError(f"{old} is the old spelling of {new}: give only {new}")
                kwargs[name] = value
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


# Options several commands take, each declared here once: one name, one meaning, one help text,
# one type. A command takes them as decorators; its parameter has the name given here.

TARGETS = ("ascend-a2", "ascend-a3", "ascend-a5", "cuda", "cpu")


def target_option(*only: str, required: bool = False) -> Callable[[F], F]:
    """``--target``; ``only``: the targets this command handles, when not every one."""
    return click.option(
        "--target",
        required=required,
        type=click.Choice(only or TARGETS),
        help="The platform the model is served on.",
    )


device_option = click.option(
    "--device",
    help="Device profile id (see `adaptgate inspect --list-devices`) [default: per target: "
    "910b3, a3, h100 or cpu].",
)
devices_option = click.option(
    "--devices", default=1, show_default=True, type=click.IntRange(min=1), help="Devices per node."
)
release_option = click.option(
    "--release",
    help="Engine release to plan for (vllm-ascend / vLLM version, e.g. 0.18.0) [default: the "
    "installed engine's, else the newest known].",
)
gpu_memory_utilization_option = click.option(
    "--gpu-memory-utilization",
    type=click.FloatRange(0.05, 1.0),
    help="Share of device memory vLLM may take [default: the device profile's].",
)
config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Plan from config.json alone (before downloading).",
)
allow_pickle_option = click.option(
    "--allow-pickle", is_flag=True, help="Accept pickle (.bin/.pt) weights."
)
cpu_memory_gib_option = click.option(
    "--cpu-memory-gib",
    type=click.FloatRange(min=0.1),
    help="RAM of the cpu device profile, GiB [default: this machine's MemTotal].",
)


def max_model_len_option(
    name: str = "max_model_len", role: str = "to plan for"
) -> Callable[[F], F]:
    """``--max-model-len``: the context length, in the ``role`` the command gives it."""
    return click.option(
        "--max-model-len", name, type=click.IntRange(min=16), help=f"Context length {role}."
    )


def kv_cache_dtype_option(
    default: str | None = "auto", *, formats_too: bool = False
) -> Callable[[F], F]:
    """``--kv-cache-dtype``: the one KV-cache dtype the server launches with (``default`` None:
    the kvcache gate's verdict picks it). ``formats_too`` lets through what is no dtype: run's
    --kv-cache-dtype named the formats to test before --kv-formats did, and run takes such a
    value as --kv-formats for one release."""
    return click.option(
        "--kv-cache-dtype",
        type=click.STRING if formats_too else click.Choice(KV_CACHE_DTYPES),
        metavar="[" + "|".join(KV_CACHE_DTYPES) + "]",
        default=default,
        show_default=default is not None or "the kvcache gate's verdict, else auto",
        help="KV-cache dtype the server launches with (vLLM's; int8: vllm-ascend's C8 cache).",
    )


def kv_formats_option(default: str | None, more: str = "") -> Callable[[F], F]:
    """``--kv-formats``: the KV-cache formats the kvcache gate tests (``more``: what else this
    command's value may say)."""
    return click.option(
        "--kv-formats",
        default=default,
        show_default=default is not None,
        help="KV-cache formats to test, comma-separated: fp8_e4m3, fp8_e5m2, int8_c8 "
        f"(fp8 = fp8_e4m3, int8 = int8_c8){more}.",
    )


def thresholds_option(package: str) -> Callable[[F], F]:
    """``--thresholds``: a YAML shaped like the built-in one of ``package`` (the gate judging)."""
    return click.option(
        "--thresholds",
        "thresholds_file",
        type=click.Path(path_type=Path),
        help=f"Threshold YAML shaped like adaptgate/{package}/thresholds.yaml [default: that "
        "file].",
    )


profile_option = click.option("--profile", help="Threshold profile: device (default) or quantized.")
served_model_option = click.option(
    "--model", help="Served model name [default: the first /v1/models lists]."
)


def api_key_env_option(default: str | None = API_KEY_ENV) -> Callable[[F], F]:
    """``--api-key-env``; ``default`` None where another source (a scenario file) may name it."""
    return click.option(
        "--api-key-env",
        default=default,
        help="Environment variable holding the API key (sent as Bearer, never printed) "
        f"[default: {API_KEY_ENV}].",
    )


def endpoint_options(fn: F) -> F:
    """The ``URL`` argument, ``--model`` and ``--api-key-env`` of a command that calls a server,
    passed as ``endpoint``: the :class:`EndpointOptions` its options model extends."""

    @click.argument("url")
    @served_model_option
    @api_key_env_option()
    @functools.wraps(fn)
    def wrapper(*args: Any, url: str, model: str | None, api_key_env: str, **kwargs: Any) -> Any:
        endpoint = EndpointOptions(url=url, model=model, api_key_env=api_key_env)
        return fn(*args, endpoint=endpoint, **kwargs)

    return wrapper  # type: ignore[return-value]


def cpu_list_option(flag: str, what: str) -> Callable[[F], F]:
    """An option naming CPUs (``0``, ``0-2,5``); the command gets their numbers, or None."""

    def parse(_ctx: click.Context, _param: click.Parameter, text: str | None) -> list[int] | None:
        from adaptgate.serve.cpus import parse_cpu_list

        if text is None:
            return None
        try:
            return parse_cpu_list(text)
        except ValueError as exc:
            raise click.BadParameter(f"{exc} (write it like 1 or 0-2,5)") from None

    return click.option(flag, metavar="CPUS", callback=parse, help=f"{what} (e.g. 0 or 0-2,5).")


prompts_option = click.option(
    "--prompts",
    "prompts_file",
    type=click.Path(path_type=Path),
    help="JSONL prompts (text / prompt / messages, id, chat) [default: the reference's built-in "
    "set].",
)


def _memory_size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    from adaptgate.convert.models import parse_size

    return None if value is None else parse_size(value)


max_memory_option = click.option(
    "--max-memory",
    metavar="SIZE",
    callback=_memory_size,
    help="Bytes of dequantized weights the reference may hold (e.g. 8GiB): a model over it is "
    "streamed one layer at a time; when passes repeat (greedy decoding), streamed layers are "
    "cached in RAM up to it [default: 60% of MemAvailable].",
)
dtype_option = click.option(
    "--dtype",
    type=click.Choice(["float32", "bfloat16"]),
    default="float32",
    show_default=True,
    help="Dtype the reference computes in.",
)
stream_layers_option = click.option(
    "--stream-layers/--full-load",
    "stream",
    default=None,
    help="Load one decoder layer at a time [default: when the model does not fit].",
)
stage_option = click.option(
    "--stage",
    type=click.Choice(["dummy", "real"]),
    default="real",
    show_default=True,
    help="dummy: random weights (--load-format dummy), proves architecture and operators; real: "
    "the checkpoint's.",
)
vllm_src_option = click.option(
    "--vllm-src",
    type=click.Path(path_type=Path, file_okay=False),
    help="vLLM source tree the operator scan reads [default: the installed vllm package].",
)
vllm_ascend_src_option = click.option(
    "--vllm-ascend-src",
    type=click.Path(path_type=Path, file_okay=False),
    help="vllm-ascend source tree (a checkout at a release tag) the operator scan checks "
    "against [default: the installed vllm_ascend package, else not checked].",
)
