"""Smoke (the smoke gate): every check with its verdict, reason and the response it saw; the
protocol checks apart from the checks whose answer depends on the model's quality (a tiny random
model fails only those), then the plan's validation commands, as the seeds show their curls."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from adaptgate.report.doc import Block, Code, Heading, Para, Table
from adaptgate.report.sections.base import SECTIONS, Ctx, GateCols, get
from adaptgate.report.sections.generic import generic_section
from adaptgate.report.view import RunView

EXCERPT = 120


def checks_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    items = result.get("checks")
    if isinstance(items, list) and all(isinstance(i, dict) for i in items):
        return items
    return []


DETAIL_KEYS = ("text", "content", "reasoning", "answer", "arguments")
_TEXT_FIELD = re.compile(r'"(?:text|content|reasoning|reasoning_content)":"((?:[^"\\]|\\.)*)')


def _unescape(fragment: str) -> str:
    try:
        return str(json.loads(f'"{fragment}"'))
    except ValueError:  # cut inside an escape
        return fragment


def _from_json(text: str) -> str:
    """The generated text of an OpenAI response body, else the body itself."""
    try:
        body = json.loads(text)
        choice = body["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        # a body cut to its excerpt is no longer JSON: find the generated text in it
        found = [m for m in _TEXT_FIELD.findall(text) if m]
        return _unescape(found[0]) if found else text
    message = choice.get("message") or choice.get("delta") or {}
    for value in (choice.get("text"), message.get("content"), message.get("reasoning"),
                  message.get("reasoning_content")):  # fmt: skip
        if value:
            return str(value)
    return text


def response_excerpt(check: dict[str, Any]) -> str:
    """What the server answered: the generated text the check looked at, shortened."""
    evidence = check.get("evidence")
    items = evidence if isinstance(evidence, list) else [evidence]
    for item in items:
        if not isinstance(item, dict):
            text = str(item or "")
        else:
            details = item.get("details") or {}
            text = next((str(details[k]) for k in DETAIL_KEYS if details.get(k)), "")
            text = text or _from_json(str(item.get("response") or ""))
        flat = " ".join(text.split())
        if flat:
            return f"`{flat if len(flat) <= EXCERPT else flat[: EXCERPT - 3] + '...'}`"
    return ""


def check_table(ctx: Ctx, checks: list[tuple[str, dict[str, Any]]]) -> Table:
    t = ctx.t
    header = [
        t("col.check"),
        *([t("col.run")] if ctx.merged else []),
        t("col.status"),
        t("col.reason"),
        t("col.evidence"),
    ]
    rows = [
        [
            str(c.get("title") or c.get("id") or c.get("name")),
            *([run] if ctx.merged else []),
            t.status(str(c.get("status"))),
            str(c.get("reason", "")),
            response_excerpt(c),
        ]
        for run, c in checks
    ]
    return Table(header, rows)


def validation_commands(run: RunView) -> list[str]:
    """The plan's validation commands (curl against the endpoint), as the seeds show them."""
    from adaptgate.report.sections.serve import plan_of

    for gate in run.gates_of("serve"):
        plan = plan_of(gate.result)
        argvs = get(plan, "validation", [])
        if not argvs:
            continue
        lines = [shlex.join(map(str, a)) if isinstance(a, list) else str(a) for a in argvs]
        url = gate.summary.get("url")
        if plan and plan.get("port") == 0 and url:  # port 0: the server's port was chosen at launch
            planned = f"http://{plan.get('bind_host') or plan.get('host')}:0"
            lines = [line.replace(planned, str(url).rstrip("/")) for line in lines]
        return lines
    return []


@SECTIONS.register("smoke")
def smoke_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    by_category: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    verdicts = []
    for run, gate in cols:
        r = gate.result or {}
        for check in checks_of(r):
            by_category.setdefault(str(check.get("category", "protocol")), []).append(
                (run.label, check)
            )
        if r.get("protocol_verdict"):
            prefix = f"{run.label}: " if ctx.merged else ""
            verdicts.append(
                f"{prefix}{t('smoke.category.protocol')} **{t.status(r['protocol_verdict'])}**, "
                f"{t('smoke.category.quality')} **{t.status(str(r.get('quality_verdict')))}**"
            )
    if not by_category:
        return generic_section(ctx, cols)
    blocks: list[Block] = [Para("; ".join(verdicts))] if verdicts else []
    for category, checks in by_category.items():
        blocks += [Heading(t.opt(f"smoke.category.{category}", category), 3)]
        blocks.append(check_table(ctx, checks))
    blocks.append(Para(t("smoke.quality_note"), "note"))
    if not ctx.merged:
        commands = validation_commands(ctx.runs[0])
        if commands:
            blocks += [Heading(t("smoke.commands"), 3), Code("\n".join(commands))]
    return blocks
