"""Performance (the bench gate): test conditions, throughput and latency tables (the seeds'
7.1 table, whole run and steady state), validity, definitions, and a latency plot."""

from __future__ import annotations

from adaptgate.bench.metrics import BenchMetrics
from adaptgate.bench.models import BenchResult, SweepResult
from adaptgate.report.doc import Block, Bullets, Heading, Image, Para, Table
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import fixed, num, seconds
from adaptgate.report.sections.base import SECTIONS, Ctx, GateCols, column_table
from adaptgate.report.sections.generic import generic_section
from adaptgate.report.view import RunView

THROUGHPUT = (
    ("request_throughput", "req/s"),
    ("output_throughput", "tok/s"),
    ("total_token_throughput", "tok/s"),
    ("request_goodput", "req/s"),
)
LATENCY = ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms")
STATS = (("mean", "mean"), ("p50", "median"), ("p90", "p90"), ("p99", "p99"))
SPEED = ("decode_speed_tok_s", "request_output_tok_s")
SWEEP = SweepResult.model_fields["kind"].default


def bench_result(run: RunView, name: str) -> BenchResult | SweepResult | None:
    """The bench gate's result: one measurement, or a sweep of them."""
    gate = run.gate(name)
    if gate is not None and (gate.result or {}).get("kind") == SWEEP:
        return run.result(name, SweepResult)
    return run.result(name, BenchResult)


def runs_of(result: BenchResult | SweepResult) -> list[tuple[str, BenchResult]]:
    """(label, BenchResult) pairs: the result itself, or each point of a sweep."""
    if isinstance(result, BenchResult):
        return [("", result)]
    out = []
    for i, run in enumerate(result.runs, 1):
        value = run.config.load.rate or run.config.load.concurrency
        out.append((run.label or (num(value) if value else f"#{i}"), run))
    return out


def metric_rows(m: BenchMetrics) -> list[tuple[str, str]]:
    rows = [
        (name, f"{fixed(value)} {unit}")
        for name, unit in THROUGHPUT
        if (value := getattr(m, name)) is not None
    ]
    for dist in LATENCY:
        for stat, word in STATS:
            value = getattr(getattr(m, dist), stat)
            if value is not None:
                rows.append((f"{word}_{dist}", f"{fixed(value)} ms"))
    for dist in SPEED:
        value = getattr(m, dist).mean
        if value is not None:
            rows.append((f"mean_{dist}", f"{fixed(value)} tok/s"))
    for name in ("peak_concurrency", "mean_concurrency", "completed", "failed"):
        rows.append((name, num(getattr(m, name))))
    rows.append(("duration", seconds(m.duration_s)))
    return rows


def conditions(t: Labels, r: BenchResult) -> str:
    d, load = r.config.dataset, r.config.load
    return t(
        "bench.conditions",
        dataset=d.kind,
        input=num(d.input_len),
        output=num(d.output_len),
        prompts=num(r.repro.num_prompts),
        rate=num(load.rate) if load.rate is not None else "inf",
        concurrency=num(load.concurrency or "-"),
        api=r.config.endpoint.api,
    )


def _validity(t: Labels, label: str, r: BenchResult) -> list[Block]:
    v = r.validity
    text = f"{label}{t('bench.validity')}: **{t.status(v.status)}**"
    blocks: list[Block] = [Para(text, "ok" if v.status == "VALID" else "alert")]
    items = [s.in_lang(t.lang) for s in (*v.reasons, *v.warnings)]
    cpus = r.client.client_cpus
    if cpus:
        items.append(f"{t('bench.client_cpus')}: {', '.join(str(c) for c in cpus)}")
    if items:
        blocks.append(Bullets(items))
    earlier = r.earlier_attempts
    if earlier:
        blocks.append(Para(f"{label}{t('bench.attempts')}:"))
        blocks.append(
            Bullets(
                [
                    f"#{a.attempt} {t.status(a.validity)}: "
                    + "; ".join(s.in_lang(t.lang) for s in a.reasons)
                    for a in earlier
                ]
            )
        )
    return blocks


@SECTIONS.register("bench")
def bench_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    per_column: list[tuple[str, BenchResult]] = []
    blocks: list[Block] = []
    for run, gate in cols:
        result = bench_result(run, gate.name)
        for point, r in runs_of(result) if result is not None else []:
            label = ", ".join(x for x in (run.label if ctx.merged else "", point) if x)
            per_column.append((label, r))
    if not per_column:
        return generic_section(ctx, cols)
    for label, r in per_column:
        prefix = f"{label}: " if label else ""
        blocks.append(Para(prefix + conditions(t, r)))
        blocks.append(
            Para(
                f"{prefix}{t('bench.server')}: `{r.server.url}` "
                f"({r.server.model}, vLLM {r.server.version or '-'})"
            )
        )
    table_cols = []
    for label, r in per_column:
        windows = [(r.metrics, t("bench.whole")), (r.steady, t("bench.steady"))]
        for metrics, word in windows:
            if metrics is not None:
                name = f"{label}, {word}" if label else word
                table_cols.append((name, metric_rows(metrics)))
    table = column_table(ctx, t("col.metric"), table_cols)
    if table is not None:
        blocks += [Heading(t("bench.table"), 3), table]
    for label, r in per_column:
        blocks += _validity(t, f"{label}: " if label else "", r)
    definitions = per_column[0][1].definitions
    if definitions:
        shown = [k for k in definitions if k in (*LATENCY, *(n for n, _ in THROUGHPUT), *SPEED)]
        blocks += [
            Heading(t("bench.definitions"), 3),
            Table(
                [t("col.metric"), t("col.definition")],
                [[k, definitions[k].in_lang(t.lang)] for k in shown],
            ),
        ]
        method = per_column[0][1].percentile_method.in_lang(t.lang)
        if method:
            blocks.append(Para(f"{t('bench.percentiles')}: {method}"))
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
    per_column: list[tuple[str, BenchResult]], t: Labels
) -> list[tuple[str, dict[str, dict[str, float]]]]:
    out = []
    for label, r in per_column:
        dists = {
            d: {
                s: float(v)
                for s, _ in STATS
                if (v := getattr(getattr(r.metrics, d), s)) is not None
            }
            for d in LATENCY
        }
        out.append((label or t("bench.whole"), dists))
    return out


def latency_plot(series: list[tuple[str, dict[str, dict[str, float]]]]) -> bytes:
    from adaptgate.report.plots import latency_bars

    return latency_bars(series)
