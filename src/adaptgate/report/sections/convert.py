"""Conversion (the convert gate): the seeds' 反量化结果 table, int8 error by layer, verify."""

from __future__ import annotations

from typing import Any

from adaptgate.convert.models import ConversionResult
from adaptgate.report.doc import Block, Bullets, Heading, Table
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import num, seconds, size
from adaptgate.report.sections.base import (
    SECTIONS,
    Ctx,
    GateCols,
    Rows,
    column_table,
    per_gate,
    results,
)

WORST_LAYERS = 5


def convert_rows(t: Labels, r: ConversionResult) -> Rows:
    rows: Rows = [
        (t("convert.route"), f"{r.source_scheme} -> {r.target}"),
        (t("convert.source"), f"`{r.source_dir}`"),
        (t("convert.output"), f"`{r.output_dir}`"),
        (t("convert.size_in"), size(r.bytes_in)),
        (t("convert.size_out"), size(r.bytes_out)),
        (t("convert.tensors"), num(len(r.tensors))),
        (t("convert.dropped"), num(len(r.dropped))),
        (t("convert.shards"), num(len(r.shards))),
        (t("convert.time"), seconds(r.seconds)),
        (t("convert.kernel"), num(r.kernel)),
        (t("convert.saturated"), num(r.errors.saturated)),
        (t("convert.nonfinite"), num(r.errors.nonfinite)),
    ]
    if r.errors.int8_rel_error is not None:
        rows.append((t("convert.int8_error"), num(r.errors.int8_rel_error)))
    if r.verify is not None:
        problems = r.verify.problems
        state = (
            t("word.ok") if not problems else f"**{num(len(problems))}** {t('convert.problems')}"
        )
        rows.append(
            (
                t("convert.verify"),
                f"{state} ({num(r.verify.checked_tensors)} {t('convert.tensors_checked')}, "
                f"{num(r.verify.sampled_blocks)} {t('convert.blocks_recomputed')})",
            )
        )
    if r.resumed_shards:
        rows.append((t("convert.resumed"), num(len(r.resumed_shards))))
    return rows


def worst_layers(t: Labels, r: ConversionResult) -> Table | None:
    layers = r.errors.int8_layers[:WORST_LAYERS]
    if not layers:
        return None
    rows = [[e.name, num(e.rel_error)] for e in layers]
    return Table([t("col.layer"), t("col.rel_error")], rows, t("convert.worst_caption"))


def also_table(t: Labels, also: dict[str, dict[str, Any]]) -> Table | None:
    """Conversions beyond the served one (``--convert-to +w8a8-dynamic``), from the summary."""
    if not also:
        return None
    header = [
        t("convert.route"),
        t("convert.output"),
        t("convert.size_out"),
        t("convert.time"),
        t("convert.int8_error"),
        t("convert.worst_layer"),
        t("convert.verify"),
    ]
    rows = [
        [
            target,
            f"`{s.get('output_dir', '-')}`",
            size(s.get("bytes_out")),
            seconds(s.get("seconds")),
            num(s.get("int8_rel_error", "-")),
            num(s.get("int8_worst_layer", "-")),
            t("word.ok")
            if not s.get("verify_problems")
            else f"**{num(s['verify_problems'])}** {t('convert.problems')}",
        ]
        for target, s in also.items()
    ]
    return Table(header, rows)


@SECTIONS.register("convert")
def convert_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    blocks: list[Block] = []
    rows = per_gate(cols, ConversionResult, lambda r: convert_rows(t, r))
    table = column_table(ctx, t("col.item"), rows)
    if table:
        blocks.append(table)
    for run, gate, r in results(cols, ConversionResult):
        worst = worst_layers(t, r)
        if worst is not None:
            caption = f"{run.label}: {worst.caption}" if ctx.merged else worst.caption
            blocks += [
                Heading(t("convert.int8_heading"), 3),
                Table(worst.header, worst.rows, caption),
            ]
        also = also_table(t, gate.summary.get("also") or {})
        if also is not None:
            label = f"{run.label}: " if ctx.merged else ""
            blocks += [Heading(label + t("convert.also_heading"), 3), also]
        # verification's problems name tensors and files, quoted as written
        warnings = [w.in_lang(t.lang) for w in r.warnings]
        problems = [*(r.verify.problems if r.verify else []), *warnings]
        if problems:
            blocks.append(Bullets([f"{run.label}: {p}" if ctx.merged else p for p in problems]))
    return blocks
