"""Options and error handling every command shares.

Conventions (also in the README): ``--json`` prints the result JSON on stdout; exit code 0 when the
command succeeds or the gate passes, 1 when a gate's verdict is FAIL, 2 for bad input or usage,
3 for an internal error. Errors are one line on stderr; ``ADAPTGATE_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import click

from adaptgate.console import Output
from adaptgate.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, AdaptgateError

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
        try:
            code = fn(*args, **kwargs)
        except AdaptgateError as exc:
            if os.environ.get("ADAPTGATE_DEBUG") == "1":
                traceback.print_exc()
            fail(exc.message, exc.fix, exc.exit_code)
        except KeyboardInterrupt:
            click.echo("adaptgate: interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 3
            if os.environ.get("ADAPTGATE_DEBUG") == "1":
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


def cpu_option(option: str, text: str | None) -> list[int] | None:
    """``--cpus``-style text (``0``, ``0-2,5``) as CPU numbers; a one-line UsageError if bad."""
    from adaptgate.errors import UsageError
    from adaptgate.serve.cpus import parse_cpu_list

    if text is None:
        return None
    try:
        return parse_cpu_list(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}", fix="write it like 1 or 0-2,5") from None
