"""The operator table (seed 004's style): which operator classes the architecture needs and
their status on the target backend. Stage A (dummy weights) then proves them for real."""

from __future__ import annotations

from typing import Any

from adaptgate.inspect.models import InspectResult
from adaptgate.inspect.opscan import OperatorScan
from adaptgate.messages import Said, said
from adaptgate.serve.knowledge import operator_knowledge, row_said
from adaptgate.serve.models import OperatorRow


def _row(op_kind: str, platform: str, **fmt: Any) -> OperatorRow:
    """A row of operators.yaml; a parameter that is a Said fills each language's title with
    its own rendering."""
    data = operator_knowledge()
    entry = data["operators"][op_kind]
    cell = entry[platform]
    en = {k: v.text if isinstance(v, Said) else v for k, v in fmt.items()}
    zh = {k: v.in_lang("zh") if isinstance(v, Said) else v for k, v in fmt.items()}
    return OperatorRow(
        op=op_kind,
        detail=Said(text=entry["title"].format(**en), zh=entry["title_zh"].format(**zh)),
        status=cell["status"],
        note=row_said(cell, "note"),
        source=data["sources"].get(entry["source"]),
    )


def _rope_name(result: InspectResult) -> Said:
    scaling = result.facts.rope_scaling or {}
    kind = scaling.get("rope_type") or scaling.get("type")
    if kind and kind != "default":
        return said("operators.rope_scaling", kind=kind)
    return said("operators.rope_default")


def _linear_row(result: InspectResult, route: str, platform: str, amx: bool | None) -> OperatorRow:
    """Quantized (or plain) Linear layers: status from inspect's support verdict and route."""
    label = result.quant.label
    support = result.support
    if route != "native":
        return OperatorRow(
            op="linear",
            detail=said("operators.linear_converted", label=label, route=route),
            status="needs-conversion",
            note=Said.model_validate(support.errors[0])
            if support and support.errors
            else said("operators.route", route=route),
            source=support.sources[0] if support and support.sources else None,
        )
    status: Any = "supported"
    note = said("operators.no_verdict")
    if support:
        note = (
            Said.model_validate(support.runs_as) if support.runs_as else said("operators.as_stored")
        )
    if support and support.quant_status == "unknown" and result.quant.is_quantized:
        status, note = "unverified", said("operators.unknown_quant")
    if platform == "cpu" and result.quant.is_fp8 and amx is False:
        status = "unsupported"
        note = said("operators.cpu_no_amx")
    return OperatorRow(
        op="linear",
        detail=said("operators.linear", label=label),
        status=status,
        note=note,
        source=support.sources[0] if support and support.sources else None,
    )


def operator_table(
    result: InspectResult, route: str, target: str, *, amx: bool | None = None
) -> list[OperatorRow]:
    f = result.facts
    platform = target.split("-", maxsplit=1)[0]
    rows: list[OperatorRow] = []
    if f.is_mla:
        rows.append(
            _row(
                "attention_mla",
                platform,
                kv_lora_rank=f.kv_lora_rank,
                rope_dim=f.qk_rope_head_dim,
            )
        )
    else:
        rows.append(
            _row(
                "attention",
                platform,
                kind=result.kv_cache.kind,
                heads=f.num_heads,
                kv_heads=f.num_kv_heads,
                ratio=f.num_heads // max(1, f.num_kv_heads),
                head_dim=f.head_dim,
            )
        )
    if f.qk_norm:
        rows.append(_row("qk_norm", platform))
    rows.append(_row("rope", platform, rope=_rope_name(result), theta=f"{f.rope_theta or 0:g}"))
    if f.partial_rotary_factor < 1.0:
        rows.append(
            _row(
                "rope_partial",
                platform,
                partial=f"{f.partial_rotary_factor:g}",
                rotary_dim=f.rotary_dim,
                head_dim=f.head_dim,
            )
        )
    rows.append(_row("norm", platform))
    rows.append(_row("activation", platform))
    if f.is_moe:
        shared: Said | str = ""
        if f.n_shared_experts or f.shared_expert_intermediate_size:
            shared = said("operators.shared", n=f.n_shared_experts or 1)
        kind = "moe_sigmoid" if f.family in {"glm4_moe", "deepseek_v3"} else "moe_softmax"
        rows.append(
            _row(
                kind,
                platform,
                experts=f.n_routed_experts,
                topk=f.experts_per_token,
                renorm=said("operators.renormalized") if f.family == "qwen3_moe" else "",
                shared=shared,
            )
        )
    rows.append(_linear_row(result, route, platform, amx))
    tied = said("operators.tied") if f.tie_word_embeddings else ""
    rows.append(_row("embedding", platform, vocab=f"{f.vocab_size:,}", tied=tied))
    if f.mtp_layers:
        rows.append(_row("mtp", platform, layers=f.mtp_layers))
    rows.append(_scanned_row(result.operator_scan) or _row("custom_kernels", platform))
    return rows


def _scanned_row(scan: OperatorScan | None) -> OperatorRow | None:
    """What the operator scan found replaces the asserted custom-kernels row: supported only when
    vllm-ascend provides every operator the model's code uses."""
    if scan is None or not scan.rows:
        return None
    pending = [r.op for r in scan.rows if r.status != "supported"]
    where = f"vllm-ascend {scan.vllm_ascend_release or '?'}" if scan.checked else "no vllm-ascend"
    note = Said(text=scan.summary())
    if not scan.checked:
        note = said("operators.scan_unchecked", summary=note)
    elif pending:
        note = said("operators.scan_pending", summary=note, ops=", ".join(pending))
    return OperatorRow(
        op="custom_kernels",
        detail=said("operators.scanned", model=scan.model_class or scan.architecture, where=where),
        status="unverified" if pending else "supported",
        note=note,
        source=f"vLLM {scan.vllm_version or '?'} {scan.model_source or ''}".strip(),
    )
