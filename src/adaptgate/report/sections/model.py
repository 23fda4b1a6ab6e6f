"""Model specification (the inspect gate): the seeds' 模型规格 table, support and memory plan."""

from __future__ import annotations

from typing import Any

from adaptgate.report.doc import Block, Bullets, Heading, Para, Table
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import gib, num, size
from adaptgate.report.sections.base import (
    SECTIONS,
    Ctx,
    GateCols,
    Rows,
    column_table,
    get,
    per_gate,
    yes_no,
)


def spec_rows(t: Labels, r: dict[str, Any]) -> Rows:
    f = r.get("facts") or {}
    q = r.get("quant") or {}
    moe = bool(f.get("is_moe"))
    kind = t("word.moe") if moe else t("word.dense")
    if f.get("is_mla"):
        kind += " + MLA"
    rows: Rows = [
        (t("spec.architecture"), f"{f.get('architecture')} ({f.get('model_type')})"),
        (t("spec.type"), kind),
        (t("spec.layers"), num(f.get("num_layers"))),
        (t("spec.hidden"), num(f.get("hidden_size"))),
        (
            t("spec.heads"),
            f"{num(f.get('num_heads'))} ({get(r, 'kv_cache.kind', '')}, "
            f"KV {num(f.get('num_kv_heads'))}, head_dim {num(f.get('head_dim'))})",
        ),
        (t("spec.vocab"), num(f.get("vocab_size"))),
    ]
    if f.get("intermediate_size"):
        rows.append((t("spec.intermediate"), num(f["intermediate_size"])))
    if moe:
        rows += [
            (t("spec.moe_intermediate"), num(f.get("moe_intermediate_size"))),
            (t("spec.routed_experts"), num(f.get("n_routed_experts"))),
            (t("spec.shared_experts"), num(f.get("n_shared_experts"))),
            (t("spec.experts_per_token"), num(f.get("experts_per_token"))),
        ]
    if f.get("is_mla"):
        rows.append(
            (t("spec.mla"), f"q_lora {num(f.get('q_lora_rank'))}, kv_lora {f.get('kv_lora_rank')}")
        )
    rows += [
        (
            t("spec.rope"),
            f"theta {num(f.get('rope_theta'))}, partial_rotary_factor "
            f"{num(f.get('partial_rotary_factor'))}",
        ),
        (t("spec.qk_norm"), yes_no(t, f.get("qk_norm"))),
        (t("spec.context"), num(f.get("context_length"))),
        (t("spec.dtype"), num(f.get("dtype"))),
    ]
    if f.get("mtp_layers"):
        rows.append((t("spec.mtp"), num(f["mtp_layers"])))
    params = r.get("params") or r.get("params_computed") or {}
    if params.get("total") is not None:
        rows.append((t("spec.params_total"), num(params["total"])))
        if params.get("active") != params.get("total"):
            rows.append((t("spec.params_active"), num(params.get("active"))))
    if params.get("stored_bytes"):
        rows.append((t("spec.stored"), size(params["stored_bytes"])))
    quant = num(q.get("label", "-"))
    if q.get("block_size"):
        quant += f", block_size [{num(q['block_size'])}]"
    if q.get("activation_scheme"):
        quant += f", {t('spec.activation')} {q['activation_scheme']}"
    rows.append((t("spec.quant"), quant))
    if q.get("weight_dtype"):
        rows.append((t("spec.weight_dtype"), num(q["weight_dtype"])))
    kv = get(r, "kv_cache.bytes_per_token", {})
    if kv:
        rows.append((t("spec.kv_per_token"), "; ".join(f"{k} {size(v)}" for k, v in kv.items())))
    return rows


def support_rows(t: Labels, r: dict[str, Any]) -> Rows:
    s = r.get("support") or {}
    if not s:
        return []
    quant = f"{s.get('scheme_key')}: {s.get('quant_status')}"
    if s.get("runs_as"):
        quant += f" ({t('word.runs_as')} {s['runs_as']})"
    return [
        (t("support.target"), f"{s.get('target')} {s.get('release', '')}".strip()),
        (t("support.architecture"), f"{s.get('architecture')}: {s.get('architecture_status')}"),
        (t("support.quant"), quant),
        (t("support.verdict"), f"**{s.get('verdict')}**"),
        (t("support.route"), num(r.get("recommended", "-"))),
    ]


def routes_table(t: Labels, r: dict[str, Any]) -> Table | None:
    routes = r.get("routes") or []
    if not routes:
        return None
    rows = []
    for opt in routes:
        best = get(opt, "plan.best", {})
        mark = " *" if opt.get("route") == r.get("recommended") else ""
        plan = get(opt, "plan.summary", "") or t("model.not_planned")
        rows.append(
            [
                f"{opt.get('route')}{mark}",
                size(opt.get("weight_bytes")),
                gib(best["weights_per_rank"]) if best.get("weights_per_rank") else "-",
                num(best["max_len_one_seq"]) if best.get("max_len_one_seq") else "-",
                plan,
            ]
        )
    header = [t("col.route"), t("col.weights"), t("col.per_rank"), t("col.max_len"), t("col.plan")]
    dev = get(r, "device.name", "")
    caption = t("model.routes_caption", devices=num(r.get("devices", 1)), device=dev or "-")
    return Table(header, rows, caption)


@SECTIONS.register("inspect")
def inspect_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    blocks: list[Block] = []
    spec = column_table(ctx, t("col.item"), per_gate(cols, lambda r: spec_rows(t, r)))
    if spec:
        blocks.append(spec)
    support = column_table(ctx, t("col.item"), per_gate(cols, lambda r: support_rows(t, r)))
    if support:
        blocks += [Heading(t("model.support"), 3), support]
    for run, gate in cols:
        r = gate.result or {}
        items = [*get(r, "support.errors", []), *get(r, "support.notes", [])]
        if items:
            blocks.append(Bullets([f"{run.label}: {i}" if ctx.merged else i for i in items]))
        table = routes_table(t, r)
        if table is not None:
            caption = f"{run.label}: {table.caption}" if ctx.merged else table.caption
            blocks += [Heading(t("model.routes"), 3), Table(table.header, table.rows, caption)]
        if r.get("recommendation"):
            blocks.append(
                Para(
                    f"{t('model.recommended')}: **{r.get('recommended')}** - {r['recommendation']}"
                )
            )
    return blocks
