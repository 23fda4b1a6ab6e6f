"""Renderings of a LaunchPlan: RUNBOOK.md (copy-pasteable, safely quoted commands), the YAML
deployment record (seed 004's E2E config: feature matrix, quantization, launch template,
validation commands), per-node launch scripts, and plan.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adaptgate.messages import Said
from adaptgate.results import write_text_atomic
from adaptgate.serve.models import LaunchPlan, SetupStep
from adaptgate.serve.shell import (
    engine_argv,
    node_script,
    placeholder_guard,
    placeholders_in,
    render_command,
)

GiB = 1 << 30


def _gib(n: int) -> str:
    return f"{n / GiB:.2f} GiB"


def _cell(text: str | Said | None) -> str:
    """A table cell: the runbook is English, so a Said gives its English text."""
    return str(text or "").replace("|", "\\|").replace("\n", " ")


def _code(text: str, lang: str = "bash") -> list[str]:
    return [f"```{lang}", text.rstrip("\n"), "```", ""]


def _summary(plan: LaunchPlan) -> list[str]:
    lay = plan.layout
    rows = [
        ("model", plan.model),
        ("architecture", f"{plan.facts.architecture} ({plan.facts.family})"),
        ("checkpoint format", plan.quant_label),
        ("target", f"{plan.target}, release {plan.release}, device {plan.device}"),
        ("release chosen", plan.release_reason.text or f"{plan.release} (no reason recorded)"),
        ("route", f"{plan.route}: {plan.route_reason}"),
        (
            "layout",
            f"TP={lay.tp}, DP={lay.dp}, EP={'on' if lay.expert_parallel else 'off'}, "
            f"{lay.nodes} node(s) x {lay.devices_per_node} device(s)",
        ),
        ("max model len", f"{plan.max_model_len:,}"),
        ("max num seqs", str(plan.max_num_seqs)),
        ("served model name", plan.served_model_name),
        ("stage", plan.stage),
    ]
    if plan.memory:
        rows.append(("predicted KV capacity", f"{plan.memory.predicted_kv_tokens:,} tokens"))
    out = ["| | |", "|---|---|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in rows]
    return [*out, ""]


def _steps(plan: LaunchPlan) -> list[str]:
    out: list[str] = []
    step = 1
    if plan.conversion:
        conv = plan.conversion
        out += [f"### {step}. Convert the checkpoint ({conv.route})", "", conv.reason, ""]
        guards = [placeholder_guard(n) for n in placeholders_in(conv.argv)]
        out += _code("\n".join([*guards, render_command(conv.argv)]))
        step += 1
    if plan.container:
        c = plan.container
        out += [f"### {step}. Start the container ({c.image})", ""]
        guards = [placeholder_guard(n) for n in placeholders_in(c.run)]
        out += _code("\n".join([*guards, render_command(c.run), render_command(c.exec)]))
        out += [f"- {n}" for n in c.notes] + [""]
        step += 1
    for setup in plan.setup:
        out += _setup_step(step, setup, nodes=len(plan.commands))
        step += 1
    for node in plan.commands:
        where = "" if node.role == "single" else f" on node {node.node} ({node.role})"
        inside = " inside the container" if plan.container else ""
        out += [f"### {step}. Launch vLLM{where}{inside}", ""]
        out += _code(node_script(plan, node, comments=False))
        step += 1
    out += [f"### {step}. Validate", ""]
    out += _code("\n".join(render_command(argv) for argv in plan.validation))
    out += [
        "`adaptgate smoke` checks /v1/models, chat and completion, streaming vs non-streaming, "
        "concurrency, max_tokens, stop strings, usage; then model-quality checks.",
        "",
    ]
    return out


def _setup_step(step: int, setup: SetupStep, *, nodes: int) -> list[str]:
    every = " (every node)" if nodes > 1 else ""
    out = [f"### {step}. {setup.title}", "", setup.reason, ""]
    if setup.source:
        out += [f"Source: {setup.source}", ""]
    if setup.host:
        guards = [placeholder_guard(n) for n in placeholders_in([w for c in setup.host for w in c])]
        out += [f"On the host{every}:", ""]
        out += _code("\n".join([*guards, *(render_command(c) for c in setup.host)]))
    if setup.container:
        out += [f"Inside the container{every}:", ""]
        out += _code("\n".join(render_command(c) for c in setup.container))
    if setup.expect:
        out += [f"Expected: {setup.expect}.", ""]
    return out


def _kernels(plan: LaunchPlan) -> list[str]:
    if not plan.kernels:
        return []
    out = ["## Kernels", "", "| kernel | state | why | source |", "|---|---|---|---|"]
    for k in plan.kernels:
        state = f"on (`{k.env}=1`)" if k.enabled else "off"
        out.append(f"| {_cell(k.title)} | {state} | {_cell(k.reason)} | {_cell(k.source)} |")
    return [*out, ""]


def _flags(plan: LaunchPlan) -> list[str]:
    out = ["| flag | value | why |", "|---|---|---|"]
    for f in plan.flags:
        out.append(
            f"| `{f.flag}` | {_cell(f'`{f.value}`' if f.value else '')} | {_cell(f.reason)} |"
        )
    for node in plan.commands:
        for f in node.extra_flags:
            value = f"`{f.value}`" if f.value else ""
            out.append(f"| `{f.flag}` (node {node.node}) | {_cell(value)} | {_cell(f.reason)} |")
    return [*out, ""]


def _env(plan: LaunchPlan) -> list[str]:
    if not plan.env:
        return ["(none)", ""]
    out = ["| variable | value | why | source |", "|---|---|---|---|"]
    out += [
        f"| `{v.name}` | `{_cell(v.value)}` | {_cell(v.reason)} | {_cell(v.source)} |"
        for v in plan.env
    ]
    return [*out, ""]


def _mtp(plan: LaunchPlan) -> list[str]:
    m = plan.mtp
    if m is None:
        return []
    lost = m.kv_tokens_without - m.kv_tokens_with
    return [
        "## Speculative decoding (MTP)",
        "",
        f"- {m.layers} MTP layer(s); {'enabled' if m.enabled else 'disabled'}, "
        f"num_speculative_tokens={m.num_speculative_tokens}",
        f"- KV bytes per token per rank: {m.kv_bytes_per_token_without:,} without, "
        f"{m.kv_bytes_per_token_with:,} with the draft layer",
        f"- KV capacity: {m.kv_tokens_without:,} -> {m.kv_tokens_with:,} tokens ({lost:,} fewer)",
        f"- MTP weights: ~{_gib(m.weight_bytes_per_rank)} per rank",
        f"- {m.reason}",
        "",
    ]


def _operators(plan: LaunchPlan) -> list[str]:
    out = ["| operator | status | note |", "|---|---|---|"]
    out += [f"| {_cell(o.detail)} | {o.status} | {_cell(o.note)} |" for o in plan.operators]
    return [*out, "", "Stage A (`adaptgate serve --stage dummy`) proves these on the backend.", ""]


def _memory(plan: LaunchPlan) -> list[str]:
    m = plan.memory
    if m is None:
        return []
    return [
        "## Memory (per rank, from the inspect gate)",
        "",
        f"- device {m.device}: {_gib(m.device_memory_bytes)} x {m.utilization:g}",
        f"- weights {_gib(m.weights_per_rank)}, activation reserve "
        f"{_gib(m.activation_reserve)}, non-torch {_gib(m.non_torch)}",
        f"- KV budget {_gib(m.kv_budget)} = {m.predicted_kv_tokens:,} tokens at "
        f"{m.kv_bytes_per_token:,} bytes/token, block {m.kv_block_size}",
        f"- {m.status}: {m.reason}",
        "",
    ]


def render_runbook(plan: LaunchPlan) -> str:
    lines = [f"# RUNBOOK: {plan.served_model_name} on {plan.target}", ""]
    lines += _summary(plan)
    if plan.warnings:
        lines += ["**Warnings**", ""] + [f"- {w}" for w in plan.warnings] + [""]
    lines += ["## Steps", "", *_steps(plan)]
    lines += ["## Engine flags", "", *_flags(plan)]
    lines += ["## Environment", "", *_env(plan)]
    if plan.omitted:
        lines += ["## Deliberately not set", ""]
        lines += [f"- `{o.name}`: {o.reason}" for o in plan.omitted] + [""]
    lines += _mtp(plan)
    lines += _kernels(plan)
    lines += ["## Operators", "", *_operators(plan)]
    lines += _memory(plan)
    lines += [
        "## When it fails",
        "",
        "Run `adaptgate doctor vllm.log` on the server log: it maps known failure signatures "
        "(FP8 on NPU, aclInit 107001, OOM at load or profiling, KV cache too small, graph "
        "capture, unsupported architecture, missing weights, port in use, ...) to cause and "
        "fix. To isolate graph-mode problems, add `--enforce-eager`.",
        "",
    ]
    return "\n".join(lines)


def deployment_record(plan: LaunchPlan) -> dict[str, Any]:
    """The YAML deployment record (seed 004's E2E config)."""
    f = plan.features
    lay = plan.layout
    single = engine_argv(plan, plan.commands[0])
    dummy = [*single, "--load-format", "dummy"] if plan.stage == "real" else single
    return {
        "schema_version": plan.schema_version,
        "model": {
            "path": plan.model,
            "served_path": plan.served_path,
            "served_model_name": plan.served_model_name,
            "architecture": plan.facts.architecture,
            "family": plan.facts.family,
            "layers": plan.facts.num_layers,
            "moe": plan.facts.is_moe,
            "mtp_layers": plan.facts.mtp_layers,
        },
        "target": {
            "platform": plan.target,
            "release": plan.release,
            "release_reason": plan.release_reason.text,
            "device": plan.device,
            "devices_per_node": lay.devices_per_node,
            "nodes": lay.nodes,
            "image": plan.container.image if plan.container else None,
        },
        "features": {
            "text_generation": "enabled",
            "thinking": f"enabled ({f.reasoning_parser})" if f.thinking else "disabled",
            "tool_calling": f"enabled ({f.tool_parser})" if f.tools else "disabled",
            "graph_mode": f.graph_mode,
            "async_scheduling": "enabled" if f.async_scheduling else "disabled",
            "tensor_parallel": lay.tp,
            "data_parallel": lay.dp,
            "expert_parallel": "enabled" if lay.expert_parallel else "disabled",
            "speculative_decoding": (
                f"mtp x{plan.mtp.num_speculative_tokens}"
                if plan.mtp and plan.mtp.enabled
                else "disabled"
            ),
            "multimodal": "n/a",
        },
        "quantization": {
            "checkpoint": plan.quant_label,
            "route": plan.route,
            "served_as": f.quantization,
            "kv_cache_dtype": f.kv_cache_dtype,
            "conversion": plan.conversion.argv if plan.conversion else None,
        },
        "launch": {
            "env": {v.name: v.value for v in plan.env},
            "command": render_command(single, width=10**6),
            "args": single,
            "nodes": [
                {"node": n.node, "role": n.role, "extra_args": [x.flag for x in n.extra_flags]}
                for n in plan.commands
            ],
        },
        "stages": {
            "A_dummy": render_command(dummy, width=10**6),
            "B_real": render_command(single, width=10**6),
        },
        "memory": plan.memory.model_dump() if plan.memory else None,
        "operators": [
            {"op": o.op, "detail": o.detail.text, "status": o.status} for o in plan.operators
        ],
        "kernels": [
            {"name": k.name, "enabled": k.enabled, "env": k.env, "reason": k.reason}
            for k in plan.kernels
        ],
        "setup": [
            {
                "name": st.name,
                "host": [render_command(c, width=10**6) for c in st.host],
                "container": [render_command(c, width=10**6) for c in st.container],
            }
            for st in plan.setup
        ],
        "validation": [render_command(argv, width=10**6) for argv in plan.validation],
    }


def write_plan_outputs(plan: LaunchPlan, out_dir: Path) -> list[Path]:
    """plan.json, RUNBOOK.md, deployment.yaml and launch-node<N>.sh in ``out_dir``."""
    import yaml

    out_dir.mkdir(parents=True, exist_ok=True)
    files = [plan.write_json(out_dir / "plan.json")]
    runbook = out_dir / "RUNBOOK.md"
    write_text_atomic(runbook, render_runbook(plan))
    record = out_dir / "deployment.yaml"
    text = yaml.safe_dump(deployment_record(plan), sort_keys=False, allow_unicode=True, width=100)
    write_text_atomic(record, text)
    files += [runbook, record]
    for node in plan.commands:
        script = out_dir / f"launch-node{node.node}.sh"
        write_text_atomic(script, node_script(plan, node))
        script.chmod(0o755)
        files.append(script)
    return files


__all__ = [
    "deployment_record",
    "render_runbook",
    "write_plan_outputs",
]
