"""Human rendering of a SmokeResult: one table, protocol checks then quality checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptgate.smoke.models import CheckStatus, SmokeResult

if TYPE_CHECKING:
    from rich.console import Console

_STYLE = {CheckStatus.PASS: "green", CheckStatus.FAIL: "red", CheckStatus.SKIPPED: "yellow"}


def render_smoke(result: SmokeResult, console: Console) -> None:
    from rich.table import Table

    table = Table(title=f"smoke: {result.model} at {result.url}")
    table.add_column("category")
    table.add_column("check")
    table.add_column("status")
    table.add_column("evidence / reason", overflow="fold")
    for r in result.checks:
        style = _STYLE[r.status]
        table.add_row(r.category, r.id, f"[{style}]{r.status.value}[/]", r.reason.text)
    console.print(table)
    console.print(
        f"protocol: {result.protocol_verdict}   quality: {result.quality_verdict} "
        "(quality checks depend on the model's weights and never decide the verdict)"
    )
