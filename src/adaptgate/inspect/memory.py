"""Memory plan: per-rank weights under TP/EP, activation reserve, overhead, KV budget, fit.

vLLM's budget (formats.md §6): total x gpu_memory_utilization - (weights + peak activation of
the profiling run + non-torch memory). Per rank under tensor parallelism: embeddings and lm_head
are vocab-parallel (divided), attention and dense/shared MLP are divided, norms and router gates
are replicated, routed experts are divided by the expert-parallel size when EP is on (tp x dp),
else by tp. Attention K/V projections replicated when tp > kv_heads are counted as divided (an
under-count below 0.1% of the weights for the models we plan).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from adaptgate.inspect.devices import DeviceProfile, GiB
from adaptgate.inspect.facts import ArchFacts
from adaptgate.inspect.kvcache import kv_bytes_per_token
from adaptgate.messages import Said, said

# Peak activation of vLLM's profiling run, per rank. Source: formats.md §6, measured on H100:
# about 5-5.5 GiB for dense and ~7.5 GiB for MoE models, nearly independent of max_model_len.
# Those were models of hidden size >= 4096; smaller models scale down linearly with hidden size
# (activations are tokens x hidden-sized buffers), never below 5% of the constant.
ACTIVATION_RESERVE_GIB = {"dense": 5.25, "moe": 7.5}
REFERENCE_HIDDEN = 4096
# Memory outside torch's allocator (runtime context; collective buffers once ranks > 1).
# Estimates: CUDA context ~0.5 GiB + NCCL ~0.5 GiB; Ascend runtime ~1 GiB + HCCL buffers
# (HCCL_BUFFSIZE=512 MiB as the seed reports set, two of them) ~1 GiB; CPU: none.
NON_TORCH_GIB = {"cuda": (0.5, 0.5), "ascend": (1.0, 1.0), "cpu": (0.0, 0.0)}
MIN_USEFUL_CONTEXT = 4096  # below this a layout is reported as not fitting

Status = Literal["fits", "fits_reduced", "does_not_fit"]


class LayoutPlan(BaseModel):
    tp: int
    dp: int = 1
    expert_parallel: bool = False
    devices: int
    weights_per_rank: int
    activation_reserve: int
    non_torch: int
    usable: int = Field(description="memory x utilization, one rank")
    kv_budget: int
    kv_bytes_per_token: int
    kv_block_size: int
    kv_blocks: int
    max_len_one_seq: int = Field(description="longest context one sequence can hold, block-rounded")
    required_len: int | None
    concurrency: int | None = Field(None, description="sequences of required_len that fit at once")
    status: Status
    reason: Said


def activation_reserve(facts: ArchFacts) -> int:
    base = ACTIVATION_RESERVE_GIB["moe" if facts.is_moe else "dense"]
    scale = min(1.0, max(0.05, facts.hidden_size / REFERENCE_HIDDEN))
    return int(base * scale * GiB)


def non_torch_bytes(profile: DeviceProfile, ranks: int) -> int:
    base, collective = NON_TORCH_GIB[profile.platform.split("-")[0]]
    return int((base + (collective if ranks > 1 else 0.0)) * GiB)


def rank_weights(by_category: dict[str, int], tp: int, ep_size: int) -> int:
    replicated = by_category.get("norms", 0) + by_category.get("router", 0)
    replicated += by_category.get("other", 0)
    routed = by_category.get("routed_experts", 0)
    divided = sum(by_category.values()) - replicated - routed
    return divided // tp + routed // ep_size + replicated


def candidate_layouts(facts: ArchFacts, devices: int) -> list[tuple[int, int, bool]]:
    """(tp, dp, ep) over powers of two up to ``devices``; DP+EP layouts only for MoE."""
    out: list[tuple[int, int, bool]] = []
    n = 1
    while n <= devices:
        tp = n
        while tp >= 1:
            dp = n // tp
            heads_ok = facts.num_heads % tp == 0
            if heads_ok and (dp == 1 or facts.is_moe):
                out.append((tp, dp, dp > 1))
            tp //= 2
        n *= 2
    return out


def plan_layout(
    facts: ArchFacts,
    by_category: dict[str, int],
    profile: DeviceProfile,
    layout: tuple[int, int, bool],
    *,
    utilization: float,
    kv_dtype_bytes: int,
    max_model_len: int | None,
    mtp: bool = False,
) -> LayoutPlan:
    tp, dp, ep = layout
    weights = rank_weights(by_category, tp, tp * dp if ep else tp)
    act, other = activation_reserve(facts), non_torch_bytes(profile, tp * dp)
    usable = int(profile.memory_bytes * utilization)
    budget = usable - weights - act - other
    per_token = kv_bytes_per_token(facts, kv_dtype_bytes, tp, mtp=mtp)
    block = profile.kv_block_size
    blocks = max(0, budget) // (per_token * block) if per_token else 0
    longest = blocks * block
    if facts.context_length:
        longest = min(longest, facts.context_length)
    required = max_model_len or facts.context_length
    concurrency = blocks // -(-required // block) if required else None
    used = {
        "weights": f"{weights / GiB:.2f}",
        "activation": f"{act / GiB:.2f}",
        "overhead": f"{other / GiB:.2f}",
    }
    kv = f"{budget / GiB:.2f}"
    status: Status
    if budget <= 0:
        status = "does_not_fit"
        reason = said(
            "inspect.layout_exceeds",
            **used,
            usable=f"{usable / GiB:.2f}",
            memory=f"{profile.memory_gib:g}",
            utilization=f"{utilization:g}",
        )
    elif concurrency:
        status = "fits"
        reason = said("inspect.layout_fits", kv=kv, concurrency=concurrency, tokens=required)
    elif max_model_len is None and longest >= MIN_USEFUL_CONTEXT:
        status = "fits_reduced"
        reason = said("inspect.layout_reduced", required=required, longest=longest)
    else:
        status = "does_not_fit"
        reason = said("inspect.layout_short", kv=kv, **used, longest=longest, required=required)
    return LayoutPlan(
        tp=tp,
        dp=dp,
        expert_parallel=ep,
        devices=tp * dp,
        weights_per_rank=weights,
        activation_reserve=act,
        non_torch=other,
        usable=usable,
        kv_budget=budget,
        kv_bytes_per_token=per_token,
        kv_block_size=block,
        kv_blocks=blocks,
        max_len_one_seq=longest,
        required_len=required,
        concurrency=concurrency,
        status=status,
        reason=reason,
    )


class RoutePlan(BaseModel):
    """One weight format's plan over every candidate layout up to --devices."""

    route: str
    weight_bytes: int
    weight_bytes_by_category: dict[str, int]
    layouts: list[LayoutPlan]
    best: LayoutPlan | None = Field(None, description="fewest devices that fit (pure TP first)")
    fits: bool
    summary: Said


def plan_route(
    route: str,
    facts: ArchFacts,
    by_category: dict[str, int],
    profile: DeviceProfile,
    devices: int,
    *,
    utilization: float,
    kv_dtype_bytes: int,
    max_model_len: int | None,
    mtp: bool = False,
) -> RoutePlan:
    layouts = [
        plan_layout(
            facts,
            by_category,
            profile,
            lay,
            utilization=utilization,
            kv_dtype_bytes=kv_dtype_bytes,
            max_model_len=max_model_len,
            mtp=mtp,
        )
        for lay in candidate_layouts(facts, devices)
    ]
    fitting = [p for p in layouts if p.status != "does_not_fit"]
    fitting.sort(key=lambda p: (p.devices, p.status != "fits", p.dp))
    best = fitting[0] if fitting else None
    total = sum(by_category.values())
    if best:
        summary = said(
            "inspect.plan_fits_ep" if best.expert_parallel else "inspect.plan_fits",
            devices=best.devices,
            device=profile.id,
            tp=best.tp,
            dp=best.dp,
            reason=best.reason,
        )
    elif layouts:
        widest = max(layouts, key=lambda p: p.devices)
        summary = said(
            "inspect.plan_does_not_fit",
            devices=widest.devices,
            device=profile.id,
            tp=widest.tp,
            reason=widest.reason,
        )
    else:
        summary = said("inspect.plan_no_layout", heads=facts.num_heads, devices=devices)
    return RoutePlan(
        route=route,
        weight_bytes=total,
        weight_bytes_by_category=by_category,
        layouts=layouts,
        best=best,
        fits=best is not None,
        summary=summary,
    )
