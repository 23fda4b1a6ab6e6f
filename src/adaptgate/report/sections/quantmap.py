"""The quantization mapping table (seed 004: config field -> engine scheme -> kernel): the
checkpoint's quantization facts from inspect, then how the target runs the detected scheme and
the scheme the conversion produced, from report/data/quant_schemes.yaml."""

from __future__ import annotations

from typing import Any

from adaptgate.convert.models import ConversionResult
from adaptgate.messages import Said
from adaptgate.report.doc import Block, Table
from adaptgate.report.numbers import num
from adaptgate.report.sections.base import Ctx
from adaptgate.report.sections.data import inspect_result, load, platform
from adaptgate.report.view import RunView

FIELDS = (
    ("method", "qmap.method"),
    ("label", "qmap.label"),
    ("weight_dtype", "qmap.weight_dtype"),
    ("weight_bits", "qmap.weight_bits"),
    ("block_size", "qmap.block_size"),
    ("activation_scheme", "qmap.activation_scheme"),
    ("kv_cache_scheme", "qmap.kv_cache_scheme"),
    ("quantized_weights", "qmap.quantized_weights"),
)


def scheme_row(key: str, target: str) -> dict[str, Any] | None:
    where = platform(target)
    for row in load("quant_schemes")["schemes"]:
        if key in row["scheme"] and where in row["platforms"]:
            return dict(row)
    return None


def _mapping(ctx: Ctx, key: str, target: str, status: str) -> list[str]:
    row = scheme_row(key, target)
    if row is None:
        return [f"`{key}`", status, ctx.t("qmap.not_in_data"), "-", "-"]
    scheme = Said(text=row["engine_scheme"], zh=row.get("engine_scheme_zh"))
    return [f"`{key}`", status, scheme.in_lang(ctx.t.lang), row["method"], f"`{row['kernel']}`"]


def quantmap_section(ctx: Ctx, run: RunView) -> list[Block]:
    t = ctx.t
    r = inspect_result(run)
    if r is None:
        return []
    fields = [
        [t(label), num(value)]
        for k, label in FIELDS
        if (value := getattr(r.quant, k)) not in (None, [], "")
    ]
    target = run.record.settings.target
    rows = []
    if r.support is not None and r.support.scheme_key:
        status = r.support.quant_status
        rows.append(
            _mapping(ctx, r.support.scheme_key, target, t.opt(f"qmap.status.{status}", status))
        )
    convert = next(iter(run.gates_of("convert")), None)
    conversion = run.result(convert.name, ConversionResult) if convert else None
    if conversion is not None and conversion.target:
        rows.append(_mapping(ctx, conversion.target, target, t("qmap.converted")))
    caption = f"{run.label}" if ctx.merged else ""
    blocks: list[Block] = [Table([t("qmap.field"), t("col.value")], fields, caption)]
    header = [t("qmap.scheme"), t("col.status"), t("qmap.engine_scheme"), t("qmap.method_col"),
              t("qmap.kernel")]  # fmt: skip
    if rows:
        blocks.append(Table(header, rows, caption))
    return blocks
