"""Any gate's result, rendered from its JSON alone: the section of a gate the report does not
know yet, and the measured values of the known ones beyond their specific tables."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from adaptgate.report.doc import Block, Table
from adaptgate.report.numbers import fixed, gib, num, seconds, size
from adaptgate.report.sections.base import Ctx, GateCols, column_table

BASE_KEYS = frozenset({"schema_version", "kind", "adaptgate_version", "created", "host"})
MEMORY_KEYS = frozenset(
    {"weights_per_rank", "activation_reserve", "non_torch", "kv_budget", "usable"}
)
MAX_ROWS = 20
MAX_COLUMNS = 7


def fmt_by_key(key: str, value: Any) -> str:
    """A value by what its name says it is: bytes, seconds, milliseconds, else as read."""
    name = key.rsplit(".", 1)[-1]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return num(value)
    if name in MEMORY_KEYS or name.endswith("_gib_bytes"):
        return gib(value)
    if name.endswith("_bytes") or name.startswith("bytes_"):
        return size(value)
    if (
        name == "seconds"
        or name.endswith("_seconds")
        or (name.endswith("_s") and not name.endswith(("tok_s", "per_s")))
    ):
        return seconds(value)
    if name.endswith("_ms"):
        return f"{fixed(value)} ms"
    return num(value)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def scalar_rows(
    result: dict[str, Any], skip: Iterable[str] = (), depth: int = 1
) -> list[tuple[str, str]]:
    """Top-level scalar values (and those of nested objects, to ``depth``) as (key, value)."""
    skipped = BASE_KEYS | set(skip)
    rows: list[tuple[str, str]] = []

    def walk(data: dict[str, Any], prefix: str, level: int) -> None:
        for key, value in data.items():
            if key in skipped and not prefix:
                continue
            name = f"{prefix}{key}"
            if _scalar(value) and value is not None and value != "":
                rows.append((name, fmt_by_key(name, value)))
            elif isinstance(value, dict) and level < depth and all(map(_scalar, value.values())):
                walk(value, f"{name}.", level + 1)
            elif isinstance(value, list) and value and all(map(_scalar, value)):
                rows.append((name, num(value)))

    walk(result, "", 0)
    return rows


def list_tables(result: dict[str, Any], skip: Iterable[str] = ()) -> list[Table]:
    """Lists of flat objects at the top level, one table each (first rows, scalar columns)."""
    tables = []
    skipped = BASE_KEYS | set(skip)
    for key, value in result.items():
        if key in skipped or not isinstance(value, list) or not value:
            continue
        items = [v for v in value if isinstance(v, dict)]
        if len(items) != len(value):
            continue
        columns: list[str] = []
        for item in items:
            columns += [k for k, v in item.items() if _scalar(v) and k not in columns]
        columns = columns[:MAX_COLUMNS]
        if not columns:
            continue
        rows = [
            [fmt_by_key(c, item.get(c)) if c in item else "-" for c in columns]
            for item in items[:MAX_ROWS]
        ]
        tables.append(Table(columns, rows, key))
    return tables


def generic_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    """The gate's measured values (summary and result scalars), one column per run."""
    per_run = []
    for run, gate in cols:
        rows = [(k, fmt_by_key(k, v)) for k, v in gate.summary.items()]
        seen = {k for k, _ in rows}
        rows += [(k, v) for k, v in scalar_rows(gate.result or {}) if k not in seen]
        per_run.append((run.label, rows))
    blocks: list[Block] = []
    table = column_table(ctx, ctx.t("col.item"), per_run)
    if table is not None:
        blocks.append(table)
    for run, gate in cols:
        for tab in list_tables(gate.result or {}):
            caption = f"{run.label}: {tab.caption}" if ctx.merged else tab.caption
            blocks.append(Table(tab.header, tab.rows, caption))
    return blocks
