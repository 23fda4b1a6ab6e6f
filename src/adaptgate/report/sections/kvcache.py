"""KV cache (the kvcache gate): SAFE / RISKY / UNSAFE per cache format with the measured reasons,
the layers at risk, and the ``--kv-cache-dtype`` to use."""

from __future__ import annotations

from adaptgate.report.doc import Block, Bullets, Para, Table
from adaptgate.report.numbers import num
from adaptgate.report.sections.base import SECTIONS, Ctx, GateCols, get
from adaptgate.report.sections.generic import generic_section, scalar_rows
from adaptgate.report.sections.matrix import columns_of, matrix_table

FORMAT_KEYS = ("formats", "verdicts", "results", "kv_dtypes")
FLAG_KEYS = ("flag", "recommended_flag", "kv_cache_dtype", "recommended")


@SECTIONS.register("kvcache")
def kvcache_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    table = matrix_table(ctx, cols, FORMAT_KEYS)
    if table is None:
        return generic_section(ctx, cols)
    blocks: list[Block] = [table]
    for run, gate in cols:
        r = gate.result or {}
        prefix = f"{run.label}: " if ctx.merged else ""
        flag = next((r[k] for k in FLAG_KEYS if isinstance(r.get(k), str)), None)
        if flag:
            blocks.append(Para(f"{prefix}{t('kvcache.flag')}: `{flag}`", "ok"))
        items = []
        for c in columns_of(r, FORMAT_KEYS):
            items += [f"{prefix}{c.name}: {reason}" for reason in c.reasons]
            risky = get(c.raw, "layers_at_risk", [])
            if risky:
                items.append(f"{prefix}{c.name}: {t('kvcache.layers_at_risk')}: {num(risky)}")
        if items:
            blocks.append(Bullets(items))
        rest = scalar_rows(r, skip=(*FORMAT_KEYS, *FLAG_KEYS))
        if rest:
            blocks.append(Table([t("col.item"), t("col.value")], [list(row) for row in rest]))
    return blocks
