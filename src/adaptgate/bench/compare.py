"""``adaptgate bench compare A.json B.json``: two runs side by side, with the differences, and
what makes them not comparable (workload, server, validity)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from adaptgate.bench.models import BenchResult
from adaptgate.results import Result

ROWS = (
    ("request_throughput", "Request throughput (req/s)"),
    ("output_throughput", "Output throughput (tok/s)"),
    ("total_token_throughput", "Total token throughput (tok/s)"),
    ("request_goodput", "Goodput (req/s)"),
    ("mean_concurrency", "Mean concurrency"),
    ("ttft_ms.p50", "TTFT p50 (ms)"),
    ("ttft_ms.p99", "TTFT p99 (ms)"),
    ("tpot_ms.p50", "TPOT p50 (ms)"),
    ("tpot_ms.p99", "TPOT p99 (ms)"),
    ("itl_ms.p50", "ITL p50 (ms)"),
    ("itl_ms.p99", "ITL p99 (ms)"),
    ("e2el_ms.p50", "E2E latency p50 (ms)"),
    ("e2el_ms.p99", "E2E latency p99 (ms)"),
    ("decode_speed_tok_s.p50", "Decode speed p50 (tok/s)"),
)


class CompareRow(BaseModel):
    metric: str
    label: str
    a: float | None
    b: float | None
    delta: float | None
    delta_pct: float | None


class Comparison(Result):
    kind: str = "bench-compare"
    a: str
    b: str
    validity: tuple[str, str]
    rows: list[CompareRow]
    caveats: list[str] = Field(default_factory=list, description="why the runs may not compare")


def _get(result: BenchResult, path: str) -> float | None:
    obj: Any = result.metrics
    for part in path.split("."):
        obj = getattr(obj, part, None)
    return None if obj is None else float(obj)


def compare(a: BenchResult, b: BenchResult, name_a: str = "A", name_b: str = "B") -> Comparison:
    rows = []
    for path, label in ROWS:
        va, vb = _get(a, path), _get(b, path)
        delta = None if va is None or vb is None else vb - va
        pct = None if delta is None or not va else 100.0 * delta / va
        rows.append(CompareRow(metric=path, label=label, a=va, b=vb, delta=delta, delta_pct=pct))
    caveats = []
    if a.repro.prompt_set_hash != b.repro.prompt_set_hash:
        caveats.append("different prompt sets (prompt_set_hash differs)")
    if a.server.tokenizer_fingerprint != b.server.tokenizer_fingerprint:
        caveats.append("different tokenizers (fingerprint differs)")
    for field in ("mode", "arrival", "rate", "concurrency", "burstiness"):
        va, vb = getattr(a.config.load, field), getattr(b.config.load, field)
        if va != vb:
            caveats.append(f"load {field}: {va} vs {vb}")
    for name, res in ((name_a, a), (name_b, b)):
        if not res.valid:
            caveats.append(f"{name} is INVALID: {'; '.join(r.text for r in res.validity.reasons)}")
    return Comparison(
        a=name_a,
        b=name_b,
        validity=(a.validity.status, b.validity.status),
        rows=rows,
        caveats=caveats,
    )


def render(cmp: Comparison, console: Any) -> None:
    from rich.table import Table

    t = Table(title=f"A = {cmp.a} ({cmp.validity[0]})   B = {cmp.b} ({cmp.validity[1]})")
    for col in ("metric", "A", "B", "B - A", "%"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    for r in cmp.rows:
        t.add_row(
            r.label,
            _f(r.a),
            _f(r.b),
            _f(r.delta, sign=True),
            "-" if r.delta_pct is None else f"{r.delta_pct:+.1f}%",
        )
    console.print(t)
    for c in cmp.caveats:
        console.print(f"[yellow]caveat:[/] {c}")


def _f(v: float | None, sign: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+,.2f}" if sign else f"{v:,.2f}"
