"""Precision (the precision gate): the metric table with one column per compared pair (seed
``001_*``), thresholds beside the values, the verdict, and where the error starts (localization)."""

from __future__ import annotations

from adaptgate.report.doc import Block, Bullets, Heading, Table
from adaptgate.report.sections.base import SECTIONS, Ctx, GateCols
from adaptgate.report.sections.generic import generic_section, list_tables, scalar_rows
from adaptgate.report.sections.matrix import columns_of, matrix_table

PAIR_KEYS = ("comparisons", "pairs", "compared", "columns", "tensors")


@SECTIONS.register("precision")
def precision_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    table = matrix_table(ctx, cols, PAIR_KEYS)
    if table is None:
        return generic_section(ctx, cols)
    blocks: list[Block] = [table]
    for run, gate in cols:
        r = gate.result or {}
        prefix = f"{run.label}: " if ctx.merged else ""
        reasons = [
            f"{prefix}{c.name}: {reason}" for c in columns_of(r, PAIR_KEYS) for reason in c.reasons
        ]
        if reasons:
            blocks.append(Bullets(reasons))
        rest = scalar_rows(r, skip=PAIR_KEYS)
        if rest:
            blocks += [
                Heading(f"{t('precision.details')}{f' ({run.label})' if ctx.merged else ''}", 3),
                Table([t("col.item"), t("col.value")], [list(row) for row in rest]),
            ]
        for tab in list_tables(r, skip=PAIR_KEYS):
            blocks.append(Table(tab.header, tab.rows, prefix + tab.caption))
    return blocks
