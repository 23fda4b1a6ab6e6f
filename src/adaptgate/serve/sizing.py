"""Layout, context length and batch size, chosen from inspect's memory plan.

All memory arithmetic is inspect's (weights per rank, KV budget, KV bytes per token, blocks);
this module only chooses among the layouts it planned and rounds its numbers to launch values.
"""

from __future__ import annotations

from adaptgate.inspect.devices import GiB
from adaptgate.inspect.memory import LayoutPlan
from adaptgate.inspect.models import InspectResult, RouteOption
from adaptgate.messages import Message, Said, message, said
from adaptgate.serve.models import Layout, MemorySummary

MAX_NUM_SEQS_CAP = 256  # vLLM's default --max-num-seqs
_STATUS_ORDER = {"fits": 0, "fits_reduced": 1, "does_not_fit": 2}


def pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def route_option(result: InspectResult, route: str) -> RouteOption | None:
    return next((r for r in result.routes if r.route == route), None)


def choose_layout(
    option: RouteOption, devices_per_node: int, nodes: int, *, moe: bool
) -> tuple[LayoutPlan, Said] | None:
    """The planned layout to launch: one using every device given, tensor parallel inside a
    node, the fewest data-parallel replicas (the vllm-ascend tutorials' single-node layout)."""
    if option.plan is None:
        return None
    total = devices_per_node * nodes
    usable = [
        p
        for p in option.plan.layouts
        if p.status != "does_not_fit" and p.tp <= devices_per_node and p.dp % nodes == 0
    ]
    if not usable:
        return None
    full = [p for p in usable if p.devices == total]
    pool = full or usable
    best = min(pool, key=lambda p: (_STATUS_ORDER[p.status], p.dp, -p.devices))
    why = _parallel(best, ep=moe and best.devices > 1)
    if not full:
        why = message("serve.layout_partial", layout=why, total=total, idle=total - best.devices)
    return best, why.said


def _parallel(plan: LayoutPlan, *, ep: bool) -> Message:
    return message(
        "serve.layout",
        parallel=f"TP={plan.tp}" + (f" x DP={plan.dp}" if plan.dp > 1 else ""),
        ep=said("serve.with_ep") if ep else "",
        devices=plan.devices,
        reason=plan.reason,
    )


def layout_reason(plan: LayoutPlan, layout: Layout) -> Said:
    why = _parallel(plan, ep=layout.expert_parallel)
    total = layout.devices_per_node * layout.nodes
    if plan.devices < total:
        why = message("serve.layout_idle", layout=why, idle=total - plan.devices, total=total)
    return why.said


def to_layout(plan: LayoutPlan, why: Said, devices_per_node: int, nodes: int, moe: bool) -> Layout:
    return Layout(
        tp=plan.tp,
        dp=plan.dp,
        expert_parallel=moe and plan.devices > 1,
        nodes=nodes,
        devices_per_node=devices_per_node,
        dp_local=max(1, plan.dp // nodes),
        reason=why,
    )


def choose_max_model_len(
    context: int | None, capacity_one_seq: int, *, asked: int | None
) -> tuple[int, Said]:
    """The model's own context when one sequence of it fits the KV cache, else the largest
    power of two that does (the seed reports' rounding: 123,904 tokens fit -> 65,536)."""
    if asked is not None:
        return asked, said("serve.asked")
    if context and capacity_one_seq >= context:
        return context, said("serve.len_full", context=context)
    length = pow2_floor(capacity_one_seq)
    ctx = f"{context:,}" if context else "unknown"
    return length, said("serve.len_rounded", context=ctx, one_seq=capacity_one_seq)


def choose_max_num_seqs(
    kv_tokens: int, avg_context: int, *, asked: int | None, cap: int = MAX_NUM_SEQS_CAP
) -> tuple[int, Said]:
    if asked is not None:
        return asked, said("serve.asked")
    fit = max(1, kv_tokens // avg_context)
    seqs = min(cap, pow2_floor(fit))
    return seqs, said("serve.seqs", kv_tokens=kv_tokens, fit=fit, avg=avg_context, cap=cap)


def memory_summary(result: InspectResult, route: str, plan: LayoutPlan) -> MemorySummary:
    assert result.device is not None and result.utilization is not None
    return MemorySummary(
        route=route,
        device=result.device.id,
        device_memory_bytes=result.device.memory_bytes,
        utilization=result.utilization,
        weights_per_rank=plan.weights_per_rank,
        activation_reserve=plan.activation_reserve,
        non_torch=plan.non_torch,
        kv_budget=plan.kv_budget,
        kv_bytes_per_token=plan.kv_bytes_per_token,
        kv_block_size=plan.kv_block_size,
        predicted_kv_tokens=plan.kv_blocks * plan.kv_block_size,
        max_len_one_seq=plan.max_len_one_seq,
        concurrency_at_max_len=plan.concurrency,
        status=plan.status,
        reason=plan.reason,
    )


def cpu_memory_summary(
    result: InspectResult, route: str, kv_gib: int, block: int, max_model_len: int
) -> MemorySummary:
    """vLLM CPU sizes its KV cache from VLLM_CPU_KVCACHE_SPACE, not from a memory fraction:
    the capacity is that space over inspect's KV bytes per token."""
    per_token = result.kv_cache.bytes_per_token_per_rank.get(
        "bf16" if result.kv_cache_dtype in {"auto", "bf16"} else result.kv_cache_dtype,
        result.kv_cache.bytes_per_token_per_rank["bf16"],
    )
    budget = kv_gib * GiB
    blocks = budget // (per_token * block)
    tokens = blocks * block
    return MemorySummary(
        route=route,
        device="cpu",
        device_memory_bytes=result.device.memory_bytes if result.device else 0,
        utilization=result.utilization or 0.9,
        weights_per_rank=0,
        activation_reserve=0,
        non_torch=0,
        kv_budget=budget,
        kv_bytes_per_token=per_token,
        kv_block_size=block,
        predicted_kv_tokens=tokens,
        max_len_one_seq=tokens,
        concurrency_at_max_len=tokens // max_model_len if max_model_len else None,
        status="fits" if tokens >= max_model_len else "does_not_fit",
        reason=said("serve.cpu_kv", gib=kv_gib, per_token=per_token),
    )
