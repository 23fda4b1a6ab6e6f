"""Launch (the serve gate): the stages it ran (Stage A dummy weights, Stage B real weights) with
what they measured, the launch command to copy with its environment, the key-parameter table
with the reason of each (the seeds' 关键参数说明), what was left out and why, the container
command, the operators (the seed ``004_*`` table), the memory plan and the features.

The serve gate's result (a ServeGateResult) carries its ``plan`` (a LaunchPlan) and
``stage_a``/``stage_b`` (what each stage measured).
"""

from __future__ import annotations

import shlex

from adaptgate.messages import Said
from adaptgate.report.doc import Block, Bullets, Code, Heading, Para, Table
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import gib, num, pct, seconds
from adaptgate.report.sections.base import SECTIONS, Ctx, GateCols, Rows, column_table, results
from adaptgate.report.sections.generic import generic_section
from adaptgate.serve.models import LaunchPlan, ServeGateResult, ServeResult
from adaptgate.serve.shell import engine_argv, export_lines, render_command


def stages_of(result: ServeGateResult) -> list[tuple[ServeResult, str]]:
    """(stage, its label key) of each stage the gate ran."""
    pairs = ((result.stage_a, "serve.stage_a"), (result.stage_b, "serve.stage_b"))
    return [(stage, label) for stage, label in pairs if stage is not None]


def launch_script(plan: LaunchPlan) -> str:
    """The node's exports and its engine command, as the runbook writes them."""
    node = plan.commands[0] if plan.commands else None
    exports = export_lines(node.env if node else plan.env, comments=False)
    command = render_command(engine_argv(plan, node))
    return "\n".join([*exports, *([""] if exports else []), command])


def container_script(plan: LaunchPlan) -> str | None:
    container = plan.container
    if container is None or not container.run:
        return None
    lines = [render_command(container.run), render_command(container.exec)]
    return "\n".join(line for line in lines if line)


def stage_rows(t: Labels, stage: ServeResult) -> Rows:
    rows: Rows = [
        (t("col.status"), f"**{t.status(stage.verdict)}**"),
        (t("col.reason"), stage.reason.in_lang(t.lang)),
    ]
    if stage.startup_seconds is not None:
        rows.append((t("serve.startup"), seconds(stage.startup_seconds)))
    if stage.served_models:
        rows.append((t("serve.served_models"), ", ".join(stage.served_models)))
    if stage.reported_max_model_len is not None:
        rows.append((t("serve.reported_max_len"), num(stage.reported_max_model_len)))
    if stage.kv_cache_tokens_reported is not None:
        rows.append((t("serve.kv_reported"), num(stage.kv_cache_tokens_reported)))
    if stage.kv_cache_tokens_predicted is not None:
        rows.append((t("serve.kv_predicted"), num(stage.kv_cache_tokens_predicted)))
    if stage.kv_ratio is not None:
        rows.append((t("serve.kv_ratio"), pct(stage.kv_ratio)))
    if stage.log_facts.vllm_version:
        rows.append((t("env.server_vllm"), stage.log_facts.vllm_version))
    if stage.log:
        rows.append((t("serve.log"), f"`{stage.log}`"))
    return rows


def param_table(t: Labels, items: list[tuple[str, str | None, Said]]) -> Table | None:
    """(name, value or None for a switch, reason) of each flag or variable."""
    rows = [
        [f"`{name}`", num(value) if value is not None else "-", reason.in_lang(t.lang)]
        for name, value, reason in items
    ]
    return Table([t("col.parameter"), t("col.value"), t("col.reason")], rows) if rows else None


def operator_table(t: Labels, plan: LaunchPlan) -> Table | None:
    rows = [
        [o.op, o.detail.in_lang(t.lang), o.status, o.note.in_lang(t.lang)] for o in plan.operators
    ]
    header = [t("col.operator"), t("col.detail"), t("col.status"), t("col.note")]
    return Table(header, rows) if rows else None


def memory_rows(t: Labels, plan: LaunchPlan) -> Rows:
    m = plan.memory
    if m is None:
        return []
    rows: Rows = [
        (t("serve.mem_device"), f"{m.device}, {gib(m.device_memory_bytes)}"),
        (t("serve.mem_utilization"), num(m.utilization)),
        (t("serve.mem_weights"), gib(m.weights_per_rank)),
        (t("serve.mem_kv_budget"), gib(m.kv_budget)),
        (t("serve.mem_kv_per_token"), num(m.kv_bytes_per_token)),
        (t("serve.kv_predicted"), num(m.predicted_kv_tokens)),
        (t("serve.mem_max_len"), num(m.max_len_one_seq)),
    ]
    if m.concurrency_at_max_len is not None:
        rows.append((t("serve.mem_concurrency"), num(m.concurrency_at_max_len)))
    rows.append((t("col.plan"), f"{m.status}: {m.reason.in_lang(t.lang)}"))
    return rows


def feature_rows(t: Labels, plan: LaunchPlan) -> Rows:
    f = plan.features
    rows: Rows = [
        (key, value)
        for key, value in (
            ("quantization", f.quantization),
            ("graph_mode", f.graph_mode),
            ("kv_cache_dtype", f.kv_cache_dtype),
            ("reasoning_parser", f.reasoning_parser),
            ("tool_parser", f.tool_parser),
        )
        if value
    ]
    for key, on in (
        ("thinking", f.thinking),
        ("tools", f.tools),
        ("async_scheduling", f.async_scheduling),
    ):
        rows.append((key, t("word.yes") if on else t("word.no")))
    layout = plan.layout
    rows.append(
        (
            t("serve.layout"),
            f"TP={num(layout.tp)}, DP={num(layout.dp)}"
            f"{', EP' if layout.expert_parallel else ''}, "
            f"{num(layout.nodes)} x {num(layout.devices_per_node)}: "
            f"{layout.reason.in_lang(t.lang)}",
        )
    )
    if plan.route:
        rows.append((t("support.route"), f"{plan.route}: {plan.route_reason.in_lang(t.lang)}"))
    return rows


def plan_blocks(ctx: Ctx, plan: LaunchPlan, where: str) -> list[Block]:
    t = ctx.t
    suffix = f" ({where})" if where else ""
    blocks: list[Block] = []
    container = container_script(plan)
    if container:
        blocks += [Heading(t("serve.container") + suffix, 3), Code(container)]
        notes = plan.container.notes if plan.container else []
        if notes:
            blocks.append(Bullets([n.in_lang(t.lang) for n in notes]))
    blocks += [Heading(t("serve.command") + suffix, 3), Code(launch_script(plan))]
    flags = param_table(t, [(f.flag, f.value, f.reason) for f in plan.flags])
    if flags is not None:
        blocks += [Heading(t("serve.parameters") + suffix, 3), flags]
    variables = (plan.commands[0].env if plan.commands else None) or plan.env
    env = param_table(t, [(v.name, v.value, v.reason) for v in variables])
    if env is not None:
        blocks += [Heading(t("serve.environment") + suffix, 3), env]
    if plan.omitted:
        blocks += [
            Heading(t("serve.omitted") + suffix, 3),
            Bullets([f"`{o.name}`: {o.reason.in_lang(t.lang)}" for o in plan.omitted]),
        ]
    features = feature_rows(t, plan)
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
    if plan.mtp is not None:
        blocks.append(Para(f"MTP: {plan.mtp.reason.in_lang(t.lang)}"))
    return blocks


@SECTIONS.register("serve")
def serve_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    blocks: list[Block] = []
    stages: list[tuple[str, Rows]] = []
    typed = results(cols, ServeGateResult)
    for run, _, r in typed:
        for stage, label in stages_of(r):
            name = f"{run.label}, {t(label)}" if ctx.merged else t(label)
            stages.append((name, stage_rows(t, stage)))
        if r.skipped:
            prefix = f"{run.label}: " if ctx.merged else ""
            skipped = r.skipped.in_lang(t.lang)
            blocks.append(Para(f"{prefix}{t('serve.not_served')}: {skipped}", "note"))
    table = column_table(ctx, t("col.item"), stages) if len(stages) > 1 or ctx.merged else None
    if table is None and stages:
        table = Table([t("col.item"), stages[0][0]], [list(row) for row in stages[0][1]])
    if table is not None:
        blocks += [Heading(t("serve.stages"), 3), table]
    shown: set[str] = set()
    for run, _, r in typed:
        script = launch_script(r.plan)
        if script in shown:
            continue
        shown.add(script)
        blocks += plan_blocks(ctx, r.plan, run.label if ctx.merged else "")
        for stage, label in stages_of(r):
            command = shlex.join(stage.command)
            if stage.command and command not in script.replace(" \\\n  ", " "):
                blocks += [Para(f"{t('serve.ran')} ({t(label)}):"), Code(command)]
    if not blocks:
        return generic_section(ctx, cols)
    return blocks
