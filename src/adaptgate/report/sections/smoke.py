"""Smoke (the smoke gate): every check with its verdict and evidence, protocol checks apart from
the checks whose answer depends on the model's quality (a tiny random model fails only those)."""

from __future__ import annotations

import shlex
from typing import Any

from adaptgate.report.doc import Block, Code, Heading, Table
from adaptgate.report.i18n import Labels
from adaptgate.report.sections.base import SECTIONS, Ctx, GateCols, get
from adaptgate.report.sections.generic import generic_section
from adaptgate.report.view import RunView

EVIDENCE_KEYS = ("evidence", "detail", "message", "reason", "response")
EXCERPT = 160


def checks_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    for key in ("checks", "results"):
        items = result.get(key)
        if isinstance(items, list) and all(isinstance(i, dict) for i in items):
            return items
    return []


def evidence(check: dict[str, Any]) -> str:
    for key in EVIDENCE_KEYS:
        value = check.get(key)
        if isinstance(value, dict):
            value = value.get("response") or value.get("excerpt") or value.get("text")
        if value:
            text = " ".join(str(value).split())
            return text if len(text) <= EXCERPT else text[: EXCERPT - 3] + "..."
    return ""


def check_table(ctx: Ctx, checks: list[tuple[str, dict[str, Any]]]) -> Table:
    t = ctx.t
    header = [
        t("col.check"),
        *([t("col.run")] if ctx.merged else []),
        t("col.status"),
        t("col.evidence"),
    ]
    rows = [
        [
            str(c.get("name") or c.get("id") or c.get("check")),
            *([run] if ctx.merged else []),
            t.status(str(c.get("status") or c.get("verdict"))),
            evidence(c),
        ]
        for run, c in checks
    ]
    return Table(header, rows)


def _category(t: Labels, name: str) -> str:
    return t.opt(f"smoke.category.{name}", name)


@SECTIONS.register("smoke")
def smoke_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    by_category: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for run, gate in cols:
        for check in checks_of(gate.result or {}):
            category = str(check.get("category") or check.get("kind") or "protocol")
            by_category.setdefault(category, []).append((run.label, check))
    if not by_category:
        return generic_section(ctx, cols)
    blocks: list[Block] = []
    for category, checks in by_category.items():
        if len(by_category) > 1:
            blocks.append(Heading(_category(ctx.t, category), 3))
        blocks.append(check_table(ctx, checks))
    if not ctx.merged:
        commands = validation_commands(ctx.runs[0])
        if commands:
            blocks += [Heading(ctx.t("smoke.commands"), 3), Code("\n".join(commands))]
    return blocks


def validation_commands(run: RunView) -> list[str]:
    """The plan's validation commands (curl against the endpoint), as the seeds show them."""
    from adaptgate.report.sections.serve import plan_of

    for gate in run.gates_of("serve"):
        plan = plan_of(gate.result or {})
        argvs = get(plan, "validation", []) if plan else []
        if argvs:
            return [shlex.join(map(str, a)) if isinstance(a, list) else str(a) for a in argvs]
    return []
