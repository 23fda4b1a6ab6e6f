"""Launch (the serve gates): the command to copy, its key parameters with their reasons (the
seeds' 关键参数说明), the operator table and the stage results.

The serve gate's result carries its launch plan (``plan``, or the result is the plan itself) and
what the stage measured (startup time, the KV capacity vLLM reported against inspect's
prediction, the log and its diagnosis).
"""

from __future__ import annotations

import shlex
from typing import Any

from adaptgate.report.doc import Block, Bullets, Code, Heading, Table
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import num
from adaptgate.report.sections.base import SECTIONS, Ctx, GateCols, get
from adaptgate.report.sections.generic import scalar_rows

PLAN_KEYS = ("plan", "launch_plan")


def plan_of(result: dict[str, Any]) -> dict[str, Any] | None:
    for key in PLAN_KEYS:
        if isinstance(result.get(key), dict):
            plan: dict[str, Any] = result[key]
            return plan
    return result if result.get("kind") == "plan" or "flags" in result else None


def _flag_words(flags: list[dict[str, Any]]) -> list[str]:
    words: list[str] = []
    for f in flags:
        words.append(str(f.get("flag")))
        if f.get("value") is not None:
            words.append(str(f["value"]))
    return words


def launch_script(plan: dict[str, Any]) -> str:
    """The node's exports and its ``vllm serve`` line, quoted for the shell."""
    lines: list[str] = []
    command = (plan.get("commands") or [{}])[0]
    env = command.get("env") or plan.get("env") or []
    lines += [f"export {v.get('name')}={shlex.quote(str(v.get('value')))}" for v in env]
    flags = [*(plan.get("flags") or []), *(command.get("extra_flags") or [])]
    if plan.get("launcher") == "python-module":
        head = ["python", "-m", "vllm.entrypoints.openai.api_server", "--model"]
    else:
        head = ["vllm", "serve"]
    argv = [*head, str(plan.get("served_path", "MODEL")), *_flag_words(flags)]
    if lines:
        lines.append("")
    # one option per line, as in the seeds
    parts, i = [shlex.join(argv[: len(head) + 1])], len(head) + 1
    while i < len(argv):
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            parts.append(shlex.join(argv[i : i + 2]))
            i += 2
        else:
            parts.append(shlex.quote(argv[i]))
            i += 1
    lines.append(" \\\n  ".join(parts))
    return "\n".join(lines)


def flag_table(t: Labels, plan: dict[str, Any]) -> Table | None:
    rows = [
        [
            f"`{f.get('flag')}`",
            num(f["value"]) if f.get("value") is not None else "-",
            str(f.get("reason", "")),
        ]
        for f in plan.get("flags") or []
    ]
    rows += [
        [f"`{v.get('name')}`", num(v.get("value")), str(v.get("reason", ""))]
        for v in plan.get("env") or []
    ]
    if not rows:
        return None
    return Table([t("col.parameter"), t("col.value"), t("col.reason")], rows)


def operator_table(t: Labels, plan: dict[str, Any]) -> Table | None:
    ops = plan.get("operators") or []
    if not ops:
        return None
    rows = [
        [str(o.get("op")), str(o.get("detail", "")), str(o.get("status")), str(o.get("note", ""))]
        for o in ops
    ]
    return Table([t("col.operator"), t("col.detail"), t("col.status"), t("col.note")], rows)


@SECTIONS.register("serve")
def serve_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    blocks: list[Block] = []
    shown: set[str] = set()
    for run, gate in cols:
        r = gate.result or {}
        title = t.opt(f"gate.{gate.name}", gate.title)
        where = f"{run.label}, {title}" if ctx.merged else title
        measured = scalar_rows(r, skip=PLAN_KEYS)
        if measured:
            blocks += [
                Heading(f"{t('serve.measured')} ({where})", 3),
                Table([t("col.item"), t("col.value")], [list(row) for row in measured]),
            ]
        plan = plan_of(r)
        if plan is None:
            continue
        script = launch_script(plan)
        if script in shown:  # stage A and B of one run share the plan but for --load-format
            continue
        shown.add(script)
        blocks += [Heading(f"{t('serve.command')} ({where})", 3)]
        container = plan.get("container") or {}
        if container.get("run"):
            blocks += [Code(shlex.join(container["run"])), Code(shlex.join(container["exec"]))]
        blocks.append(Code(script))
        table = flag_table(t, plan)
        if table is not None:
            blocks += [Heading(t("serve.parameters"), 3), table]
        omitted = plan.get("omitted") or []
        if omitted:
            blocks += [
                Heading(t("serve.omitted"), 3),
                Bullets([f"`{o.get('name')}`: {o.get('reason')}" for o in omitted]),
            ]
        ops = operator_table(t, plan)
        if ops is not None:
            blocks += [Heading(t("serve.operators"), 3), ops]
        memory = plan.get("memory")
        if memory:
            blocks += [
                Heading(t("serve.memory"), 3),
                Table(
                    [t("col.item"), t("col.value")],
                    [[k, num(v)] for k, v in memory.items() if not isinstance(v, dict | list)],
                ),
            ]
        if get(plan, "layout.reason"):
            blocks.append(Bullets([f"{t('serve.layout')}: {plan['layout']['reason']}"]))
    return blocks
