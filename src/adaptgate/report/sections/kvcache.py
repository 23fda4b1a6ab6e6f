"""KV cache (the kvcache gate): SAFE / RISKY / UNSAFE per cache format, one column each, with
the measurements behind the verdict (logit drift, greedy divergence, repetition, outliers
against the format's range), the layers at risk, and the ``--kv-cache-dtype`` to launch with."""

from __future__ import annotations

from typing import Any

from adaptgate.report.doc import Block, Bullets, Heading, Para
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import num, pct
from adaptgate.report.sections.base import SECTIONS, Ctx, GateCols, Rows, column_table, get
from adaptgate.report.sections.generic import generic_section
from adaptgate.report.sections.matrix import matrix_table

# (row label, path in a FormatReport, check subject/metric or None, rendered as a rate)
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


def _checks(fmt: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The checks of each metric (a metric can have a RISKY and an UNSAFE limit)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for c in fmt.get("checks") or []:
        out.setdefault(str(c.get("metric")), []).append(c)
    return out


def format_rows(t: Labels, fmt: dict[str, Any]) -> Rows:
    checks = _checks(fmt)
    rows: Rows = [
        (t("kvcache.engine"), f"{fmt.get('engine', '')}: {fmt.get('how_enabled', '')}"),
        (t("kvcache.scales"), str(get(fmt, "scales.source", "-"))),
    ]
    for label, path, rate in MEASURES:
        value = get(fmt, path)
        if value is None:
            continue
        text = pct(value) if rate else num(value)
        limits = checks.get(path.rsplit(".", 1)[-1], [])
        if limits:
            text += (
                " ("
                + ", ".join(
                    f"{'≥' if c.get('bound') == 'min' else '≤'} {num(c.get('threshold'))} "
                    f"{'✓' if c.get('passed') else '✗'}"
                    for c in limits
                )
                + ")"
            )
            if not all(c.get("passed") for c in limits):
                text = f"**{text}**"
        rows.append((label, text))
    risky = fmt.get("layers_at_risk") or []
    rows.append((t("kvcache.layers_at_risk"), ", ".join(map(str, risky)) if risky else "-"))
    rows += engine_rows(t, fmt.get("on_engine"))
    rows.append((f"**{t('col.verdict')}**", f"**{t.status(str(fmt.get('verdict')))}**"))
    return rows


def engine_rows(t: Labels, engine: dict[str, Any] | None) -> Rows:
    """The same cache measured on the engine, beside the simulation's rows."""
    if not engine:
        return []
    if not engine.get("verdict"):
        return [(t("kvcache.on_engine"), str(engine.get("reason") or "-"))]
    return [
        (t("kvcache.engine_kl"), f"{num(get(engine, 'arm.kl_mean'))}"),
        (t("kvcache.engine_kl_over_auto"), num(engine.get("kl_mean"))),
        (t("kvcache.engine_top1"), pct(engine.get("top1_agreement"))),
        (t("kvcache.engine_exact"), pct(engine.get("exact_match_rate"))),
        (f"**{t('kvcache.on_engine')}**", f"**{t.status(str(engine.get('verdict')))}**"),
    ]


def _failed(fmt: dict[str, Any]) -> list[str]:
    out = []
    for c in fmt.get("checks") or []:
        if not c.get("passed"):
            op = ">=" if c.get("bound") == "min" else "<="
            out.append(
                f"{fmt.get('format')}: {c.get('metric')} {num(c.get('value'))} "
                f"(need {op} {num(c.get('threshold'))}; {c.get('source', '')})"
            )
    return out


@SECTIONS.register("kvcache")
def kvcache_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    columns = []
    for run, gate in cols:
        for fmt in get(gate.result, "formats", []):
            if isinstance(fmt, dict) and fmt.get("verdict"):
                name = str(fmt.get("format"))
                columns.append(
                    (f"{run.label}: {name}" if ctx.merged else name, format_rows(t, fmt))
                )
    if not columns:
        table = matrix_table(ctx, cols, ("formats", "verdicts", "results"))
        return [table] if table is not None else generic_section(ctx, cols)
    blocks: list[Block] = []
    table = column_table(ctx, t("col.metric"), columns)
    if table is not None:
        blocks.append(table)
    for run, gate in cols:
        r = gate.result or {}
        prefix = f"{run.label}: " if ctx.merged else ""
        flag = get(r, "recommended_kv_cache_dtype") or gate.summary.get("kv_cache_dtype")
        if flag:
            text = f"{prefix}{t('kvcache.flag')}: `--kv-cache-dtype {flag}`"
            if r.get("recommended_ascend"):
                text += f"; {t('kvcache.ascend')}: {r['recommended_ascend']}"
            blocks.append(Para(text, "ok"))
        reasons = [f"{prefix}{f.get('format')} {f.get('verdict')}: {f.get('reason')}"
                   for f in r.get("formats") or [] if f.get("reason")]  # fmt: skip
        if r.get("recommendation"):
            reasons.append(f"{prefix}{r['recommendation']}")
        if reasons:
            blocks.append(Bullets(reasons))
        failed = [x for f in r.get("formats") or [] for x in _failed(f)]
        if failed:
            where = f" ({run.label})" if ctx.merged else ""
            blocks += [Heading(t("precision.failed") + where, 3), Bullets(failed)]
        engine = r.get("engine") or {}
        if engine.get("skipped"):
            blocks.append(Para(prefix + t("kvcache.engine_skipped", why=engine["skipped"]), "note"))
        elif engine.get("auto"):
            blocks.append(
                Para(
                    prefix
                    + t(
                        "kvcache.engine_settings",
                        engine=engine.get("engine", "-"),
                        positions=num(get(engine, "auto.positions", "-")),
                        auto_kl=num(get(engine, "auto.kl_mean", "-")),
                    ),
                    "note",
                )
            )
        settings = r.get("settings") or {}
        if settings:
            blocks.append(
                Para(
                    prefix
                    + t(
                        "kvcache.settings",
                        scales=settings.get("scales", "-"),
                        tokens=num(settings.get("new_tokens", "-")),
                        prompts=num(settings.get("prompts", "-")),
                        dtype=settings.get("reference_dtype", "-"),
                    ),
                    "note",
                )
            )
    return blocks
