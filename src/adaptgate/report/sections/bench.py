"""Performance (the bench gate): test conditions, throughput and latency tables (the seeds'
7.1 table, whole run and steady state), validity, definitions, and a latency plot."""

from __future__ import annotations

from typing import Any

from adaptgate.report.doc import Block, Bullets, Heading, Image, Para, Table
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import fixed, num, seconds
from adaptgate.report.sections.base import SECTIONS, Ctx, GateCols, column_table, get
from adaptgate.report.sections.generic import generic_section

THROUGHPUT = (
    ("request_throughput", "req/s"),
    ("output_throughput", "tok/s"),
    ("total_token_throughput", "tok/s"),
    ("request_goodput", "req/s"),
)
LATENCY = ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms")
STATS = (("mean", "mean"), ("p50", "median"), ("p90", "p90"), ("p99", "p99"))
SPEED = ("decode_speed_tok_s", "request_output_tok_s")


def runs_of(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, BenchResult) pairs: the result itself, or each point of a sweep."""
    if isinstance(result.get("runs"), list):
        out = []
        for i, run in enumerate(result["runs"], 1):
            load = get(run, "config.load", {})
            value = load.get("rate") or load.get("concurrency")
            out.append((str(run.get("label") or (num(value) if value else f"#{i}")), run))
        return out
    return [("", result)] if "metrics" in result else []


def metric_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        (name, f"{fixed(m[name])} {unit}") for name, unit in THROUGHPUT if m.get(name) is not None
    ]
    for dist in LATENCY:
        for stat, word in STATS:
            value = get(m, f"{dist}.{stat}")
            if value is not None:
                rows.append((f"{word}_{dist}", f"{fixed(value)} ms"))
    for dist in SPEED:
        value = get(m, f"{dist}.mean")
        if value is not None:
            rows.append((f"mean_{dist}", f"{fixed(value)} tok/s"))
    for name in ("peak_concurrency", "mean_concurrency", "completed", "failed"):
        if m.get(name) is not None:
            rows.append((name, num(m[name])))
    if m.get("duration_s") is not None:
        rows.append(("duration", seconds(m["duration_s"])))
    return rows


def conditions(t: Labels, r: dict[str, Any]) -> str:
    d, load = get(r, "config.dataset", {}), get(r, "config.load", {})
    rate = load.get("rate")
    return t(
        "bench.conditions",
        dataset=d.get("kind", "-"),
        input=num(d.get("input_len", "-")),
        output=num(d.get("output_len", "-")),
        prompts=num(get(r, "repro.num_prompts", load.get("num_requests", "-"))),
        rate=num(rate) if rate is not None else "inf",
        concurrency=num(load.get("concurrency") or "-"),
        api=get(r, "config.endpoint.api", "-"),
    )


def _validity(t: Labels, label: str, r: dict[str, Any]) -> list[Block]:
    v = r.get("validity") or {}
    if not v:
        return []
    status = str(v.get("status"))
    text = f"{label}{t('bench.validity')}: **{t.status(status)}**"
    blocks: list[Block] = [Para(text, "ok" if status == "VALID" else "alert")]
    items = [*(v.get("reasons") or []), *(v.get("warnings") or [])]
    cpus = get(r, "client.client_cpus")
    if cpus:
        items.append(f"{t('bench.client_cpus')}: {', '.join(str(c) for c in cpus)}")
    if items:
        blocks.append(Bullets([str(i) for i in items]))
    earlier = r.get("earlier_attempts") or []
    if earlier:
        blocks.append(Para(f"{label}{t('bench.attempts')}:"))
        blocks.append(
            Bullets(
                [
                    f"#{a.get('attempt')} {t.status(str(a.get('validity')))}: "
                    f"{'; '.join(a.get('reasons') or [])}"
                    for a in earlier
                ]
            )
        )
    return blocks


@SECTIONS.register("bench")
def bench_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    per_column: list[tuple[str, dict[str, Any]]] = []
    blocks: list[Block] = []
    for run, gate in cols:
        for point, r in runs_of(gate.result or {}):
            label = ", ".join(x for x in (run.label if ctx.merged else "", point) if x)
            per_column.append((label, r))
    if not per_column:
        return generic_section(ctx, cols)
    for label, r in per_column:
        prefix = f"{label}: " if label else ""
        blocks.append(Para(prefix + conditions(t, r)))
        server = r.get("server") or {}
        if server:
            blocks.append(
                Para(
                    f"{prefix}{t('bench.server')}: `{server.get('url')}` "
                    f"({server.get('model')}, vLLM {server.get('version') or '-'})"
                )
            )
    table_cols = []
    for label, r in per_column:
        windows = [("metrics", t("bench.whole")), ("steady", t("bench.steady"))]
        for key, word in windows:
            if isinstance(r.get(key), dict):
                name = f"{label}, {word}" if label else word
                table_cols.append((name, metric_rows(r[key])))
    table = column_table(ctx, t("col.metric"), table_cols)
    if table is not None:
        blocks += [Heading(t("bench.table"), 3), table]
    for label, r in per_column:
        blocks += _validity(t, f"{label}: " if label else "", r)
    definitions = per_column[0][1].get("definitions") or {}
    if definitions:
        shown = [k for k in definitions if k in (*LATENCY, *(n for n, _ in THROUGHPUT), *SPEED)]
        blocks += [
            Heading(t("bench.definitions"), 3),
            Table(
                [t("col.metric"), t("col.definition")], [[k, str(definitions[k])] for k in shown]
            ),
        ]
        if per_column[0][1].get("percentile_method"):
            blocks.append(
                Para(f"{t('bench.percentiles')}: {per_column[0][1]['percentile_method']}")
            )
    gate_plots = any(a.endswith(".png") for _, gate in cols for a in gate.artifacts)
    png = (
        b""
        if gate_plots and len(per_column) == 1
        else latency_plot(table_cols_dists(per_column, t))
    )
    if png:
        blocks.append(Image("bench_latency.png", t("bench.plot_caption"), png))
    return blocks


def table_cols_dists(
    per_column: list[tuple[str, dict[str, Any]]], t: Labels
) -> list[tuple[str, dict[str, dict[str, float]]]]:
    out = []
    for label, r in per_column:
        m = r.get("metrics") or {}
        dists = {
            d: {s: float(m[d][s]) for s, _ in STATS if get(m, f"{d}.{s}") is not None}
            for d in LATENCY
            if isinstance(m.get(d), dict)
        }
        out.append((label or t("bench.whole"), dists))
    return out


def latency_plot(series: list[tuple[str, dict[str, dict[str, float]]]]) -> bytes:
    from adaptgate.report.plots import latency_bars

    return latency_bars(series)
