"""Model specification (the inspect gate): the seeds' 模型规格 table, support and memory plan."""

from __future__ import annotations

from adaptgate.inspect.models import InspectResult
from adaptgate.report.doc import Block, Bullets, Heading, Para, Table
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import gib, num, size
from adaptgate.report.sections.base import (
    SECTIONS,
    Ctx,
    GateCols,
    Rows,
    column_table,
    per_gate,
    results,
    yes_no,
)


def spec_rows(t: Labels, r: InspectResult) -> Rows:
    f, q = r.facts, r.quant
    kind = t("word.moe") if f.is_moe else t("word.dense")
    if f.is_mla:
        kind += " + MLA"
    rows: Rows = [
        (t("spec.architecture"), f"{f.architecture} ({f.model_type})"),
        (t("spec.type"), kind),
        (t("spec.layers"), num(f.num_layers)),
        (t("spec.hidden"), num(f.hidden_size)),
        (
            t("spec.heads"),
            f"{num(f.num_heads)} ({r.kv_cache.kind}, "
            f"KV {num(f.num_kv_heads)}, head_dim {num(f.head_dim)})",
        ),
        (t("spec.vocab"), num(f.vocab_size)),
    ]
    if f.intermediate_size:
        rows.append((t("spec.intermediate"), num(f.intermediate_size)))
    if f.is_moe:
        rows += [
            (t("spec.moe_intermediate"), num(f.moe_intermediate_size)),
            (t("spec.routed_experts"), num(f.n_routed_experts)),
            (t("spec.shared_experts"), num(f.n_shared_experts)),
            (t("spec.experts_per_token"), num(f.experts_per_token)),
        ]
    if f.is_mla:
        rows.append((t("spec.mla"), f"q_lora {num(f.q_lora_rank)}, kv_lora {f.kv_lora_rank}"))
    rows += [
        (
            t("spec.rope"),
            f"theta {num(f.rope_theta)}, partial_rotary_factor {num(f.partial_rotary_factor)}",
        ),
        (t("spec.qk_norm"), yes_no(t, f.qk_norm)),
        (t("spec.context"), num(f.context_length)),
        (t("spec.dtype"), num(f.dtype)),
    ]
    if f.mtp_layers:
        rows.append((t("spec.mtp"), num(f.mtp_layers)))
    params = r.params or r.params_computed
    rows.append((t("spec.params_total"), num(params.total)))
    if params.active != params.total:
        rows.append((t("spec.params_active"), num(params.active)))
    if params.stored_bytes:
        rows.append((t("spec.stored"), size(params.stored_bytes)))
    quant = num(q.label)
    if q.block_size:
        quant += f", block_size [{num(q.block_size)}]"
    if q.activation_scheme:
        quant += f", {t('spec.activation')} {q.activation_scheme}"
    rows.append((t("spec.quant"), quant))
    if q.weight_dtype:
        rows.append((t("spec.weight_dtype"), num(q.weight_dtype)))
    kv = r.kv_cache.bytes_per_token
    if kv:
        rows.append((t("spec.kv_per_token"), "; ".join(f"{k} {size(v)}" for k, v in kv.items())))
    return rows


def support_rows(t: Labels, r: InspectResult) -> Rows:
    s = r.support
    if s is None:
        return []

    def status(value: str) -> str:
        return t.opt(f"qmap.status.{value}", value)

    quant = f"{s.scheme_key}: {status(s.quant_status)}"
    if s.runs_as:
        quant += f" ({t('word.runs_as')} {s.runs_as.in_lang(t.lang)})"
    return [
        (t("support.target"), f"{s.target} {s.release}".strip()),
        (t("support.architecture"), f"{s.architecture}: {status(s.architecture_status)}"),
        (t("support.quant"), quant),
        (t("support.verdict"), f"**{s.verdict}**"),
        (t("support.route"), num(r.recommended)),
    ]


def routes_table(t: Labels, r: InspectResult) -> Table | None:
    if not r.routes:
        return None
    rows = []
    for opt in r.routes:
        best = opt.plan.best if opt.plan else None
        mark = " *" if opt.route == r.recommended else ""
        plan = (opt.plan.summary.in_lang(t.lang) if opt.plan else "") or t("model.not_planned")
        rows.append(
            [
                f"{opt.route}{mark}",
                size(opt.weight_bytes),
                gib(best.weights_per_rank) if best and best.weights_per_rank else "-",
                num(best.max_len_one_seq) if best and best.max_len_one_seq else "-",
                plan,
            ]
        )
    header = [t("col.route"), t("col.weights"), t("col.per_rank"), t("col.max_len"), t("col.plan")]
    dev = r.device.name if r.device else ""
    caption = t("model.routes_caption", devices=num(r.devices), device=dev or "-")
    return Table(header, rows, caption)


@SECTIONS.register("inspect")
def inspect_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    blocks: list[Block] = []
    spec = column_table(
        ctx, t("col.item"), per_gate(cols, InspectResult, lambda r: spec_rows(t, r))
    )
    if spec:
        blocks.append(spec)
    support = column_table(
        ctx, t("col.item"), per_gate(cols, InspectResult, lambda r: support_rows(t, r))
    )
    if support:
        blocks += [Heading(t("model.support"), 3), support]
    for run, _, r in results(cols, InspectResult):
        said = [*r.support.errors, *r.support.notes] if r.support else []
        items = [s.in_lang(t.lang) for s in said]
        if items:
            blocks.append(Bullets([f"{run.label}: {i}" if ctx.merged else i for i in items]))
        table = routes_table(t, r)
        if table is not None:
            caption = f"{run.label}: {table.caption}" if ctx.merged else table.caption
            blocks += [Heading(t("model.routes"), 3), Table(table.header, table.rows, caption)]
        if r.recommendation:
            why = r.recommendation.in_lang(t.lang)
            blocks.append(Para(f"{t('model.recommended')}: **{r.recommended}** - {why}"))
    return blocks
