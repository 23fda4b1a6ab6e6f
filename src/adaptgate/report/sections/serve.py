"""Launch (the serve gate): the stages it ran (Stage A dummy weights, Stage B real weights) with
what they measured, the launch command to copy with its environment, the key-parameter table
with the reason of each (the seeds' 关键参数说明), what was left out and why, the container
command, the operators (the seed ``004_*`` table), the memory plan and the features.

The serve gate's result carries its ``plan`` (a LaunchPlan) and ``stage_a``/``stage_b`` (what
each stage measured); a plan alone (``kind: plan``) renders too.
"""

from __future__ import annotations

import shlex
from typing import Any

from adaptgate.report.doc import Block, Bullets, Code, Heading, Para, Table
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import gib, num, pct, seconds
from adaptgate.report.sections.base import SECTIONS, Ctx, GateCols, Rows, column_table, get
from adaptgate.report.sections.generic import generic_section

STAGES = (("stage_a", "serve.stage_a"), ("stage_b", "serve.stage_b"))


def plan_of(result: dict[str, Any] | None) -> dict[str, Any] | None:
    if not result:
        return None
    if isinstance(result.get("plan"), dict):
        plan: dict[str, Any] = result["plan"]
        return plan
    return result if result.get("kind") == "plan" else None


def _flag_words(flags: list[dict[str, Any]]) -> list[str]:
    words: list[str] = []
    for f in flags:
        words.append(str(f.get("flag")))
        if f.get("value") is not None:
            words.append(str(f["value"]))
    return words


def launch_script(plan: dict[str, Any]) -> str:
    """The node's exports and its engine command, as the runbook writes them."""
    try:
        from adaptgate.serve.models import LaunchPlan
        from adaptgate.serve.shell import engine_argv, export_lines, render_command

        typed = LaunchPlan.model_validate(plan)
        node = typed.commands[0] if typed.commands else None
        exports = export_lines(node.env if node else typed.env, comments=False)
        command = render_command(engine_argv(typed, node))
    except Exception:  # noqa: BLE001 - a plan of another version: render it from the JSON
        node_json = (plan.get("commands") or [{}])[0]
        env = node_json.get("env") or plan.get("env") or []
        exports = [f"export {v.get('name')}={shlex.quote(str(v.get('value')))}" for v in env]
        flags = [*(plan.get("flags") or []), *(node_json.get("extra_flags") or [])]
        command = shlex.join(["vllm", "serve", str(plan.get("served_path")), *_flag_words(flags)])
    return "\n".join([*exports, *([""] if exports else []), command])


def container_script(plan: dict[str, Any]) -> str | None:
    container = plan.get("container") or {}
    if not container.get("run"):
        return None
    try:
        from adaptgate.serve.shell import render_command

        lines = [render_command(container["run"]), render_command(container.get("exec") or [])]
    except Exception:  # noqa: BLE001 - no serve package: plain quoting
        lines = [shlex.join(container["run"]), shlex.join(container.get("exec") or [])]
    return "\n".join(line for line in lines if line)


def stage_rows(t: Labels, stage: dict[str, Any]) -> Rows:
    rows: Rows = [
        (t("col.status"), f"**{t.status(str(stage.get('verdict')))}**"),
        (t("col.reason"), str(stage.get("reason", ""))),
    ]
    if stage.get("startup_seconds") is not None:
        rows.append((t("serve.startup"), seconds(stage["startup_seconds"])))
    if stage.get("served_models"):
        rows.append((t("serve.served_models"), ", ".join(map(str, stage["served_models"]))))
    if stage.get("reported_max_model_len") is not None:
        rows.append((t("serve.reported_max_len"), num(stage["reported_max_model_len"])))
    if stage.get("kv_cache_tokens_reported") is not None:
        rows.append((t("serve.kv_reported"), num(stage["kv_cache_tokens_reported"])))
    if stage.get("kv_cache_tokens_predicted") is not None:
        rows.append((t("serve.kv_predicted"), num(stage["kv_cache_tokens_predicted"])))
    if stage.get("kv_ratio") is not None:
        rows.append((t("serve.kv_ratio"), pct(stage["kv_ratio"])))
    if get(stage, "log_facts.vllm_version"):
        rows.append((t("env.server_vllm"), str(stage["log_facts"]["vllm_version"])))
    if stage.get("log"):
        rows.append((t("serve.log"), f"`{stage['log']}`"))
    return rows


def param_table(t: Labels, items: list[dict[str, Any]], key: str) -> Table | None:
    rows = [
        [
            f"`{i.get(key)}`",
            num(i["value"]) if i.get("value") is not None else "-",
            str(i.get("reason", "")),
        ]
        for i in items
    ]
    return Table([t("col.parameter"), t("col.value"), t("col.reason")], rows) if rows else None


def operator_table(t: Labels, plan: dict[str, Any]) -> Table | None:
    ops = plan.get("operators") or []
    rows = [
        [str(o.get("op")), str(o.get("detail", "")), str(o.get("status")), str(o.get("note", ""))]
        for o in ops
    ]
    header = [t("col.operator"), t("col.detail"), t("col.status"), t("col.note")]
    return Table(header, rows) if rows else None


def memory_rows(t: Labels, plan: dict[str, Any]) -> Rows:
    m = plan.get("memory") or {}
    if not m:
        return []
    rows: Rows = [
        (t("serve.mem_device"), f"{m.get('device')}, {gib(m.get('device_memory_bytes'))}"),
        (t("serve.mem_utilization"), num(m.get("utilization"))),
        (t("serve.mem_weights"), gib(m.get("weights_per_rank"))),
        (t("serve.mem_kv_budget"), gib(m.get("kv_budget"))),
        (t("serve.mem_kv_per_token"), num(m.get("kv_bytes_per_token"))),
        (t("serve.kv_predicted"), num(m.get("predicted_kv_tokens"))),
        (t("serve.mem_max_len"), num(m.get("max_len_one_seq"))),
    ]
    if m.get("concurrency_at_max_len") is not None:
        rows.append((t("serve.mem_concurrency"), num(m["concurrency_at_max_len"])))
    rows.append((t("col.plan"), f"{m.get('status')}: {m.get('reason')}"))
    return rows


def feature_rows(t: Labels, plan: dict[str, Any]) -> Rows:
    f = plan.get("features") or {}
    rows: Rows = []
    for key in ("quantization", "graph_mode", "kv_cache_dtype", "reasoning_parser", "tool_parser"):
        if f.get(key):
            rows.append((key, str(f[key])))
    for key in ("thinking", "tools", "async_scheduling"):
        if key in f:
            rows.append((key, t("word.yes") if f[key] else t("word.no")))
    layout = plan.get("layout") or {}
    if layout:
        rows.append(
            (
                t("serve.layout"),
                f"TP={num(layout.get('tp'))}, DP={num(layout.get('dp'))}"
                f"{', EP' if layout.get('expert_parallel') else ''}, "
                f"{num(layout.get('nodes'))} x {num(layout.get('devices_per_node'))}: "
                f"{layout.get('reason', '')}",
            )
        )
    if plan.get("route"):
        rows.append((t("support.route"), f"{plan['route']}: {plan.get('route_reason', '')}"))
    return rows


def plan_blocks(ctx: Ctx, plan: dict[str, Any], where: str) -> list[Block]:
    t = ctx.t
    suffix = f" ({where})" if where else ""
    blocks: list[Block] = []
    container = container_script(plan)
    if container:
        blocks += [Heading(t("serve.container") + suffix, 3), Code(container)]
        notes = get(plan, "container.notes", [])
        if notes:
            blocks.append(Bullets([str(n) for n in notes]))
    blocks += [Heading(t("serve.command") + suffix, 3), Code(launch_script(plan))]
    flags = param_table(t, plan.get("flags") or [], "flag")
    if flags is not None:
        blocks += [Heading(t("serve.parameters") + suffix, 3), flags]
    env = param_table(t, get(plan, "commands.0.env", None) or plan.get("env") or [], "name")
    if env is not None:
        blocks += [Heading(t("serve.environment") + suffix, 3), env]
    omitted = plan.get("omitted") or []
    if omitted:
        blocks += [
            Heading(t("serve.omitted") + suffix, 3),
            Bullets([f"`{o.get('name')}`: {o.get('reason')}" for o in omitted]),
        ]
    features = feature_rows(t, plan)
    if features:
        blocks += [
            Heading(t("serve.features") + suffix, 3),
            Table([t("col.item"), t("col.value")], [list(r) for r in features]),
        ]
    ops = operator_table(t, plan)
    if ops is not None:
        blocks += [Heading(t("serve.operators") + suffix, 3), ops]
    memory = memory_rows(t, plan)
    if memory:
        blocks += [
            Heading(t("serve.memory") + suffix, 3),
            Table([t("col.item"), t("col.value")], [list(r) for r in memory]),
        ]
    mtp = plan.get("mtp")
    if mtp:
        blocks.append(Para(f"MTP: {mtp.get('reason', '')}"))
    return blocks


@SECTIONS.register("serve")
def serve_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    blocks: list[Block] = []
    stages: list[tuple[str, Rows]] = []
    for run, gate in cols:
        r = gate.result or {}
        for key, label in STAGES:
            if isinstance(r.get(key), dict):
                name = f"{run.label}, {t(label)}" if ctx.merged else t(label)
                stages.append((name, stage_rows(t, r[key])))
        if r.get("skipped"):
            prefix = f"{run.label}: " if ctx.merged else ""
            blocks.append(Para(f"{prefix}{t('serve.not_served')}: {r['skipped']}", "note"))
    table = column_table(ctx, t("col.item"), stages) if len(stages) > 1 or ctx.merged else None
    if table is None and stages:
        table = Table([t("col.item"), stages[0][0]], [list(row) for row in stages[0][1]])
    if table is not None:
        blocks += [Heading(t("serve.stages"), 3), table]
    shown: set[str] = set()
    for run, gate in cols:
        plan = plan_of(gate.result)
        if plan is None:
            continue
        script = launch_script(plan)
        if script in shown:
            continue
        shown.add(script)
        blocks += plan_blocks(ctx, plan, run.label if ctx.merged else "")
        for key, label in STAGES:
            command = get(gate.result, f"{key}.command")
            if command and shlex.join(map(str, command)) not in script.replace(" \\\n  ", " "):
                blocks += [
                    Para(f"{t('serve.ran')} ({t(label)}):"),
                    Code(shlex.join(map(str, command))),
                ]
    if not blocks:
        return generic_section(ctx, cols)
    return blocks
