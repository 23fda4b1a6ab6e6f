"""Layout, context length and batch size, chosen from inspect's memory plan.

All memory arithmetic is inspect's (weights per rank, KV budget, KV bytes per token, blocks);
this module only chooses among the layouts it planned and rounds its numbers to launch values.
"""

from __future__ import annotations

from adaptgate.inspect.devices import GiB
from adaptgate.inspect.memory import LayoutPlan
from adaptgate.inspect.models import InspectResult, RouteOption
from adaptgate.serve.models import Layout, MemorySummary

MAX_NUM_SEQS_CAP = 256  # vLLM's default --max-num-seqs
_STATUS_ORDER = {"fits": 0, "fits_reduced": 1, "does_not_fit": 2}


def pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def route_option(result: InspectResult, route: str) -> RouteOption | None:
    return next((r for r in result.routes if r.route == route), None)


def choose_layout(
    option: RouteOption, devices_per_node: int, nodes: int, *, moe: bool
) -> tuple[LayoutPlan, str] | None:
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
    why = f"TP={best.tp}"
    if best.dp > 1:
        why += f" x DP={best.dp}"
    if moe and best.devices > 1:
        why += " with expert parallel"
    why += f" on {best.devices} device(s): {best.reason}"
    if not full:
        why += f" (no layout over all {total} devices fits; {total - best.devices} left idle)"
    return best, why


def layout_reason(plan: LayoutPlan, layout: Layout) -> str:
    why = f"TP={plan.tp}" + (f" x DP={plan.dp}" if plan.dp > 1 else "")
    if layout.expert_parallel:
        why += " with expert parallel"
    total = layout.devices_per_node * layout.nodes
    idle = f"; {total - plan.devices} of {total} device(s) idle" if plan.devices < total else ""
    return f"{why} on {plan.devices} device(s): {plan.reason}{idle}"


def to_layout(plan: LayoutPlan, why: str, devices_per_node: int, nodes: int, moe: bool) -> Layout:
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
) -> tuple[int, str]:
    """The model's own context when one sequence of it fits the KV cache, else the largest
    power of two that does (the seed reports' rounding: 123,904 tokens fit -> 65,536)."""
    if asked is not None:
        return asked, "asked for"
    if context and capacity_one_seq >= context:
        return context, f"the model's full context ({context:,} tokens) fits the KV cache"
    length = pow2_floor(capacity_one_seq)
    ctx = f"{context:,}" if context else "unknown"
    return length, (
        f"the full context ({ctx} tokens) does not fit: the KV cache holds "
        f"{capacity_one_seq:,} tokens for one sequence; rounded down to a power of two"
    )


def choose_max_num_seqs(
    kv_tokens: int, avg_context: int, *, asked: int | None, cap: int = MAX_NUM_SEQS_CAP
) -> tuple[int, str]:
    if asked is not None:
        return asked, "asked for"
    fit = max(1, kv_tokens // avg_context)
    seqs = min(cap, pow2_floor(fit))
    return seqs, (
        f"KV cache holds {kv_tokens:,} tokens = {fit} sequences of {avg_context:,} tokens "
        f"(--avg-context-tokens); rounded down to a power of two (decode graph sizes), "
        f"at most {cap}"
    )


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
        reason=f"VLLM_CPU_KVCACHE_SPACE={kv_gib} GiB / {per_token} bytes per token",
    )
