"""Human rendering of an AccuracyResult: one table, a row per task, the baseline beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptgate.accuracy.models import AccuracyResult
from adaptgate.record import GateStatus

if TYPE_CHECKING:
    from rich.console import Console

_STYLE = {GateStatus.PASS: "green", GateStatus.FAIL: "red", GateStatus.INCONCLUSIVE: "yellow"}


def render_accuracy(result: AccuracyResult, console: Console) -> None:
    from rich.table import Table

    how = "chat template applied" if result.chat_template else "no chat template"
    table = Table(title=f"accuracy: {result.model} at {result.url} ({how})")
    repeated = any(t.repeats.count > 1 for t in result.tasks)
    compared = {c.task: c for c in result.comparisons}
    columns = ["task", "accuracy [95% CI]", "items"]
    columns += ["repeats min-max"] if repeated else []
    columns += ["baseline", "diff", "verdict"] if compared else []
    for column in columns:
        table.add_column(column, overflow="fold")
    for t in result.tasks:
        row = [t.task, f"{t.accuracy:.3f} [{t.ci.low:.3f}, {t.ci.high:.3f}]", str(t.samples)]
        if repeated:
            row.append(f"{t.repeats.min:.3f}-{t.repeats.max:.3f} ({t.repeats.count})")
        if compared:
            c = compared.get(t.task)
            row += [
                f"{c.baseline_accuracy:.3f}" if c else "-",
                f"{c.difference:+.3f}" if c else "-",
                f"[{_STYLE[c.verdict]}]{c.verdict.value}[/]" if c else "-",
            ]
        table.add_row(*row)
    console.print(table)
    style = _STYLE[result.verdict]
    console.print(f"verdict: [{style}]{result.verdict.value}[/] - {result.reason}")
