"""The one output layer: human tables and progress on a terminal, JSON on request, quiet."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


@dataclass
class Output:
    """How a command talks: ``json`` sends the result JSON to stdout; ``quiet`` hides tables."""

    json: bool = False
    quiet: bool = False

    @property
    def human(self) -> bool:
        return not (self.json or self.quiet)

    def console(self) -> Console:
        """Tables go to stdout in human mode; with --json they would corrupt it, so stderr."""
        from rich.console import Console

        return Console(file=sys.stderr if self.json else sys.stdout, soft_wrap=False)

    def status(self, message: str) -> None:
        """One line of progress for people, on stderr, never in JSON mode or quiet mode."""
        if self.human:
            print(message, file=sys.stderr, flush=True)


class Progress:
    """A progress bar with rate and ETA; silent when stderr is not a terminal."""

    def __init__(self, total: float | None, description: str, *, unit: str = "items") -> None:
        self.total = total
        self.description = description
        self.unit = unit
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                MofNCompleteColumn,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
            if self.unit == "bytes":
                columns += [DownloadColumn(), TransferSpeedColumn()]
            else:
                columns += [MofNCompleteColumn()]
            columns.append(TimeRemainingColumn())
            self._bar = RichProgress(*columns, console=Console(file=sys.stderr), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=self.total)
        return self

    def advance(self, amount: float = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, amount)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


@contextmanager
def progress(total: float | None, description: str, *, unit: str = "items") -> Iterator[Progress]:
    with Progress(total, description, unit=unit) as bar:
        yield bar
