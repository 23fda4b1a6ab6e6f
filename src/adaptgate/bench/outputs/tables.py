"""Console tables of a BenchResult: every metric with its definition; validity first."""

from __future__ import annotations

from typing import Any

from adaptgate.bench.metrics import DEFINITIONS, BenchMetrics
from adaptgate.bench.models import BenchResult, SweepResult
from adaptgate.stats import Distribution

LATENCIES = (
    ("TTFT", "ttft_ms"),
    ("TTFT (first chunk, vLLM def.)", "ttft_first_chunk_ms"),
    ("Time to first content", "ttfc_ms"),
    ("TPOT", "tpot_ms"),
    ("ITL", "itl_ms"),
    ("E2E latency", "e2el_ms"),
    ("E2E incl. client queue", "e2el_incl_queue_ms"),
    ("Client queueing", "queue_ms"),
    ("Decode speed (1000/TPOT)", "decode_speed_tok_s"),
    ("Per-request output tok/s", "request_output_tok_s"),
)


def _f(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def summary_rows(m: BenchMetrics) -> list[tuple[str, str, str]]:
    """(name, value, definition) rows of the scalar metrics."""
    rows = [
        ("Duration (s)", _f(m.duration_s), DEFINITIONS["duration_s"].text),
        ("Completed / failed", f"{m.completed} / {m.failed}", ""),
        (
            "Request throughput (req/s)",
            _f(m.request_throughput),
            DEFINITIONS["request_throughput"].text,
        ),
        (
            "Output throughput (tok/s)",
            _f(m.output_throughput),
            DEFINITIONS["output_throughput"].text,
        ),
        (
            "Total token throughput (tok/s)",
            _f(m.total_token_throughput),
            DEFINITIONS["total_token_throughput"].text,
        ),
        (
            "Output tok/s per concurrent request",
            _f(m.output_throughput_per_concurrency),
            DEFINITIONS["output_throughput_per_concurrency"].text,
        ),
        (
            "Peak / mean concurrency",
            f"{m.peak_concurrency} / {m.mean_concurrency:.2f}",
            DEFINITIONS["peak_concurrency"].text + "; " + DEFINITIONS["mean_concurrency"].text,
        ),
    ]
    if m.request_goodput is not None:
        rows.append(("Goodput (req/s)", _f(m.request_goodput), DEFINITIONS["request_goodput"].text))
    if m.failures_by_reason:
        text = ", ".join(f"{k}: {v}" for k, v in sorted(m.failures_by_reason.items()))
        rows.append(("Failures by reason", text, ""))
    return rows


def dist_row(label: str, d: Distribution) -> list[str]:
    return [
        label,
        str(d.count),
        *(_f(d.get(s)) for s in ("mean", "std", "p50", "p90", "p99", "max")),
    ]


def render(result: BenchResult, console: Any) -> None:
    from rich.table import Table

    v = result.validity
    style = "bold green" if v.status == "VALID" else "bold red"
    console.print(
        f"[{style}]{v.status}[/]  {result.server.url}  model {result.server.model}  "
        f"(server {result.server.version or '?'})"
    )
    for reason in v.reasons:
        console.print(f"  [red]INVALID:[/] {reason}")
    for warning in v.warnings:
        console.print(f"  [yellow]warning:[/] {warning}")
    for m in (result.metrics, result.steady):
        if m is None:
            continue
        table = Table(title=f"{m.window} ({m.start_s:.2f}-{m.end_s:.2f} s)", show_lines=False)
        for col in ("metric", "value", "definition"):
            table.add_column(col, overflow="fold")
        for row in summary_rows(m):
            table.add_row(*row)
        console.print(table)
        dt = Table(
            title=f"{m.window}: distributions (percentiles: {result.percentile_method.text})"
        )
        for col in ("metric (ms unless tok/s)", "n", "mean", "std", "p50", "p90", "p99", "max"):
            dt.add_column(col, justify="left" if col.startswith("metric") else "right")
        for label, name in LATENCIES:
            dt.add_row(*dist_row(label, getattr(m, name)))
        console.print(dt)
    c = result.client
    console.print(
        f"client: {c.workers} process(es), lateness p99 {_f(c.lateness_ms.p99)} ms, loop lag p99 "
        f"{_f(c.loop_lag_ms.p99)} ms, CPU {', '.join(f'{x:.0%}' for x in c.cpu_share)}"
        + (f", wait for CPU p99 {_f(c.cpu_wait_ms.p99)} ms/wakeup" if c.cpu_wait_ms else "")
        + (
            f", delivered {_f(c.delivered_rate)} of {_f(c.scheduled_rate)} req/s"
            if c.delivered_rate
            else ""
        )
    )


def render_sweep(sweep: SweepResult, console: Any) -> None:
    from rich.table import Table

    t = Table(title=f"sweep over {sweep.axis}")
    for col in (
        "value",
        "validity",
        "req/s",
        "out tok/s",
        "TTFT p50",
        "TTFT p99",
        "TPOT p50",
        "TPOT p99",
        "goodput",
    ):
        t.add_column(col, justify="right")
    for run in sweep.runs:
        m, load = run.metrics, run.config.load
        value = load.rate if sweep.axis == "rate" else load.concurrency
        t.add_row(
            _f(value, 1),
            run.validity.status,
            _f(m.request_throughput),
            _f(m.output_throughput, 1),
            _f(m.ttft_ms.p50),
            _f(m.ttft_ms.p99),
            _f(m.tpot_ms.p50),
            _f(m.tpot_ms.p99),
            _f(m.request_goodput),
        )
    console.print(t)
    if sweep.sla is not None:
        console.print(
            f"SLA search ({sweep.sla.quantile}): largest {sweep.sla.axis} meeting "
            f"the SLOs: {_f(sweep.sla.best, 1)}"
        )
