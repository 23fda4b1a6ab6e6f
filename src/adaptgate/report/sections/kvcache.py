"""KV cache (the kvcache gate): SAFE / RISKY / UNSAFE per cache format, one column each, with
the measurements behind the verdict (logit drift, greedy divergence, repetition, outliers
against the format's range), the layers at risk, and the ``--kv-cache-dtype`` to launch with."""

from __future__ import annotations

from operator import attrgetter

from adaptgate.kvcache.models import EngineFormat, FormatReport, KVCacheResult
from adaptgate.messages import said
from adaptgate.metrics.limits import Check
from adaptgate.report.doc import Block, Bullets, Heading, Para
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import num, pct
from adaptgate.report.sections.base import SECTIONS, Ctx, GateCols, Rows, column_table, results
from adaptgate.report.sections.generic import generic_section

# (row label, attribute path in a FormatReport, rendered as a rate)
MEASURES: tuple[tuple[str, str, bool], ...] = (
    ("logits kl_mean", "logits.kl_mean", False),
    ("logits kl_max", "logits.kl_max", False),
    ("logits top1_agreement", "logits.top1_agreement", True),
    ("generation exact_match_rate", "generation.exact_match_rate", True),
    ("generation earliest_divergence", "generation.earliest_divergence", False),
    ("repetition_increase", "repetition_increase", False),
    ("degenerated_share", "degenerated_share", True),
    ("scan saturated_fraction", "scan.saturated_fraction", True),
    ("scan flushed_fraction", "scan.flushed_fraction", True),
    ("scan rel_rms_error", "scan.rel_rms_error", False),
    ("scan clip_ratio", "scan.clip_ratio", False),
    ("nonfinite_steps", "nonfinite_steps", False),
)


def _checks(fmt: FormatReport) -> dict[str, list[Check]]:
    """The checks of each metric (a metric can have a RISKY and an UNSAFE limit)."""
    out: dict[str, list[Check]] = {}
    for c in fmt.checks:
        out.setdefault(c.metric, []).append(c)
    return out


def format_rows(t: Labels, fmt: FormatReport) -> Rows:
    checks = _checks(fmt)
    rows: Rows = [
        (t("kvcache.engine"), f"{fmt.engine}: {fmt.how_enabled.in_lang(t.lang)}"),
        (t("kvcache.scales"), fmt.scales.source),
    ]
    for label, path, rate in MEASURES:
        value = attrgetter(path)(fmt)
        if value is None:
            continue
        text = pct(value) if rate else num(value)
        limits = checks.get(path.rsplit(".", 1)[-1], [])
        if limits:
            text += (
                " ("
                + ", ".join(
                    f"{'≥' if c.bound == 'min' else '≤'} {num(c.threshold)} "
                    f"{'✓' if c.passed else '✗'}"
                    for c in limits
                )
                + ")"
            )
            if not all(c.passed for c in limits):
                text = f"**{text}**"
        rows.append((label, text))
    risky = fmt.layers_at_risk
    rows.append((t("kvcache.layers_at_risk"), ", ".join(risky) if risky else "-"))
    rows += engine_rows(t, fmt.on_engine)
    rows.append((f"**{t('col.verdict')}**", f"**{t.status(fmt.verdict)}**"))
    return rows


def engine_rows(t: Labels, engine: EngineFormat | None) -> Rows:
    """The same cache measured on the engine, beside the simulation's rows."""
    if engine is None:
        return []
    if not engine.verdict:
        return [(t("kvcache.on_engine"), engine.reason.in_lang(t.lang) or "-")]
    return [
        (t("kvcache.engine_kl"), num(engine.arm.kl_mean if engine.arm else None)),
        (t("kvcache.engine_kl_over_auto"), num(engine.kl_mean)),
        (t("kvcache.engine_top1"), pct(engine.top1_agreement)),
        (t("kvcache.engine_exact"), pct(engine.exact_match_rate)),
        (f"**{t('kvcache.on_engine')}**", f"**{t.status(engine.verdict)}**"),
    ]


def _failed(t: Labels, fmt: FormatReport) -> list[str]:
    out = []
    for c in fmt.checks:
        if not c.passed:
            # the limit's source is the threshold file's, quoted as written
            line = said(
                "kvcache.failed_limit_source",
                format=fmt.format,
                metric=c.metric,
                value=num(c.value),
                op=">=" if c.bound == "min" else "<=",
                threshold=num(c.threshold),
                source=c.source,
            )
            out.append(line.in_lang(t.lang))
    return out


@SECTIONS.register("kvcache")
def kvcache_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    typed = results(cols, KVCacheResult)
    columns = [
        (f"{run.label}: {fmt.format}" if ctx.merged else fmt.format, format_rows(t, fmt))
        for run, _, r in typed
        for fmt in r.formats
    ]
    if not columns:
        return generic_section(ctx, cols)
    blocks: list[Block] = []
    table = column_table(ctx, t("col.metric"), columns)
    if table is not None:
        blocks.append(table)
    for run, gate, r in typed:
        prefix = f"{run.label}: " if ctx.merged else ""
        flag = r.recommended_kv_cache_dtype or gate.summary.get("kv_cache_dtype")
        if flag:
            text = f"{prefix}{t('kvcache.flag')}: `--kv-cache-dtype {flag}`"
            if r.recommended_ascend:
                text += f"; {t('kvcache.ascend')}: {r.recommended_ascend}"
            blocks.append(Para(text, "ok"))
        reasons = [
            f"{prefix}{f.format} {f.verdict}: {f.reason.in_lang(t.lang)}"
            for f in r.formats
            if f.reason.text
        ]
        if r.recommendation:
            reasons.append(f"{prefix}{r.recommendation.in_lang(t.lang)}")
        if reasons:
            blocks.append(Bullets(reasons))
        failed = [x for f in r.formats for x in _failed(t, f)]
        if failed:
            where = f" ({run.label})" if ctx.merged else ""
            blocks += [Heading(t("precision.failed") + where, 3), Bullets(failed)]
        engine = r.engine
        if engine is not None and engine.skipped:
            blocks.append(
                Para(
                    prefix + t("kvcache.engine_skipped", why=engine.skipped.in_lang(t.lang)), "note"
                )
            )
        elif engine is not None and engine.auto is not None:
            blocks.append(
                Para(
                    prefix
                    + t(
                        "kvcache.engine_settings",
                        engine=engine.engine,
                        positions=num(engine.auto.positions),
                        auto_kl=num(engine.auto.kl_mean),
                    ),
                    "note",
                )
            )
        settings = r.settings
        blocks.append(
            Para(
                prefix
                + t(
                    "kvcache.settings",
                    scales=settings.scales,
                    tokens=num(settings.new_tokens),
                    prompts=num(settings.prompts),
                    dtype=settings.reference_dtype,
                ),
                "note",
            )
        )
    return blocks
