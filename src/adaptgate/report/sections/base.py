"""What every section shares: the context, the registry of gate sections, table helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from adaptgate.messages import render
from adaptgate.record import GateRecord
from adaptgate.registry import Registry
from adaptgate.report.doc import Block, Table
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import num
from adaptgate.report.view import RunView


@dataclass(frozen=True)
class Ctx:
    runs: list[RunView]
    t: Labels

    @property
    def merged(self) -> bool:
        return len(self.runs) > 1

    def reason(self, gate: GateRecord) -> str:
        """The gate's reason in the report's language when it recorded a message, else as
        stored (run.json written before the message catalogue)."""
        if gate.reason_id is None:
            return gate.reason
        return render(gate.reason_id, gate.reason_params, self.t.lang)


GateCols = list[tuple[RunView, GateRecord]]
"""The gates a section renders: per run, each gate of the section that left a result."""

GateSection = Callable[[Ctx, GateCols], list[Block]]
SECTIONS: Registry[GateSection] = Registry("report section")
M = TypeVar("M", bound=BaseModel)


def results(cols: GateCols, model: type[M]) -> list[tuple[RunView, GateRecord, M]]:
    """Each column's gate with its result as the gate's typed ``model``."""
    return [(run, g, r) for run, g in cols if (r := run.result(g.name, model)) is not None]


def get(data: Any, path: str, default: Any = None) -> Any:
    """``get(data, "a.b")``: a value deep in free-form JSON (a summary, a gate the report does
    not know), or ``default`` when any step is missing."""
    for key in path.split("."):
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return default
    return default if data is None else data


Rows = list[tuple[str, str]]


def column_table(ctx: Ctx, first: str, per_col: Sequence[tuple[str, Rows]]) -> Table | None:
    """Rows of (label, value) per column, aligned by label: one value column per run (or per
    run and window), a single column "value" when the report is of one run and one column.
    A label missing in a column shows "-"."""
    order: list[str] = []
    values: list[dict[str, str]] = []
    for _, rows in per_col:
        values.append(dict(rows))
        order += [label for label, _ in rows if label not in order]
    if not order:
        return None
    single = len(per_col) == 1 and not ctx.merged
    header = [first] + ([ctx.t("col.value")] if single else [name for name, _ in per_col])
    return Table(header, [[label] + [v.get(label, "-") for v in values] for label in order])


def per_gate(cols: GateCols, model: type[M], fn: Callable[[M], Rows]) -> list[tuple[str, Rows]]:
    return [(run.label, fn(r)) for run, _, r in results(cols, model)]


def yes_no(t: Labels, value: Any) -> str:
    if isinstance(value, bool):
        return t("word.yes") if value else t("word.no")
    return num(value)
