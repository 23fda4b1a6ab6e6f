"""A metric matrix: rows are metrics, one column per compared thing (a compared pair for
precision, a cache format for kvcache), with the verdict of each column as its last row.

Gate results list those things as objects under one key (``comparisons``, ``formats``, ...), each
with a name, its metrics (under ``metrics`` or as its own numeric fields), optional thresholds
and a verdict. The seed ``001_*`` NPU-vs-GPU/CPU table is the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adaptgate.report.doc import Table
from adaptgate.report.numbers import num
from adaptgate.report.sections.base import Ctx, GateCols

NAME_KEYS = ("name", "label", "pair", "format", "kv_dtype", "id")
VERDICT_KEYS = ("verdict", "status")
NOT_METRICS = frozenset({*NAME_KEYS, *VERDICT_KEYS, "reason", "thresholds", "flag"})


@dataclass
class Column:
    name: str
    metrics: dict[str, Any]
    thresholds: dict[str, Any] = field(default_factory=dict)
    verdict: str | None = None
    reasons: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def _column(name: str, obj: dict[str, Any]) -> Column:
    metrics = obj.get("metrics")
    if not isinstance(metrics, dict):
        metrics = {
            k: v
            for k, v in obj.items()
            if k not in NOT_METRICS and isinstance(v, int | float) and not isinstance(v, bool)
        }
    verdict = next((str(obj[k]) for k in VERDICT_KEYS if obj.get(k)), None)
    reasons = obj.get("reasons") or ([obj["reason"]] if obj.get("reason") else [])
    thresholds = obj.get("thresholds") if isinstance(obj.get("thresholds"), dict) else {}
    return Column(name, metrics, thresholds or {}, verdict, [str(r) for r in reasons], obj)


def columns_of(result: dict[str, Any], keys: tuple[str, ...]) -> list[Column]:
    for key in keys:
        items = result.get(key)
        if isinstance(items, list) and items and all(isinstance(i, dict) for i in items):
            return [
                _column(str(next((i[k] for k in NAME_KEYS if i.get(k)), n)), i)
                for n, i in enumerate(items, 1)
            ]
        if isinstance(items, dict) and items and all(isinstance(v, dict) for v in items.values()):
            return [_column(str(k), v) for k, v in items.items()]
    return []


def threshold_text(spec: Any) -> str:
    if isinstance(spec, dict):
        if spec.get("min") is not None:
            return f"≥ {num(spec['min'])}"
        if spec.get("max") is not None:
            return f"≤ {num(spec['max'])}"
        return ""
    return num(spec) if spec is not None else ""


def matrix_table(ctx: Ctx, cols: GateCols, keys: tuple[str, ...]) -> Table | None:
    """One column per compared thing (prefixed by the run when several runs are merged)."""
    t = ctx.t
    columns: list[tuple[str, Column]] = []
    for run, gate in cols:
        for c in columns_of(gate.result or {}, keys):
            columns.append((f"{run.label}: {c.name}" if ctx.merged else c.name, c))
    if not columns:
        return None
    metrics: list[str] = []
    for _, c in columns:
        metrics += [m for m in c.metrics if m not in metrics]
    rows = []
    for m in metrics:
        row = [m]
        for _, c in columns:
            value = num(c.metrics[m]) if m in c.metrics and c.metrics[m] is not None else "-"
            limit = threshold_text(c.thresholds.get(m))
            row.append(f"{value} ({limit})" if limit and value != "-" else value)
        rows.append(row)
    if any(c.verdict for _, c in columns):
        rows.append(
            [f"**{t('col.verdict')}**"]
            + [f"**{t.status(c.verdict)}**" if c.verdict else "-" for _, c in columns]
        )
    return Table([t("col.metric"), *(name for name, _ in columns)], rows)
