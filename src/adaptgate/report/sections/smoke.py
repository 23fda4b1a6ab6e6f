"""Smoke (the smoke gate): every check with its verdict, reason and the response it saw; the
protocol checks apart from the checks whose answer depends on the model's quality (a tiny random
model fails only those), then the plan's validation commands, as the seeds show their curls."""

from __future__ import annotations

import json
import re
import shlex

from adaptgate.messages import catalogue
from adaptgate.report.doc import Block, Code, Heading, Para, Table
from adaptgate.report.sections.base import SECTIONS, Ctx, GateCols, results
from adaptgate.report.sections.data import serve_result
from adaptgate.report.sections.generic import generic_section
from adaptgate.report.view import RunView
from adaptgate.smoke.base import title_id
from adaptgate.smoke.models import CheckResult, SmokeResult

EXCERPT = 120

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


def response_excerpt(check: CheckResult) -> str:
    """What the server answered: the generated text the check looked at, shortened."""
    for item in check.evidence:
        details = item.details
        text = next((str(details[k]) for k in DETAIL_KEYS if details.get(k)), "")
        text = text or _from_json(item.response or "")
        flat = " ".join(text.split())
        if flat:
            return f"`{flat if len(flat) <= EXCERPT else flat[: EXCERPT - 3] + '...'}`"
    return ""


def check_title(lang: str, check: CheckResult) -> str:
    """What the check verifies: in English as stored, in another language the catalogue's title
    of its id (a check this adaptgate does not know keeps its stored title)."""
    translated = catalogue(lang).get(title_id(check.id)) if lang != "en" else None
    return translated or check.title or check.id


def check_table(ctx: Ctx, checks: list[tuple[str, CheckResult]]) -> Table:
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
            check_title(t.lang, c),
            *([run] if ctx.merged else []),
            t.status(c.status),
            c.reason.in_lang(t.lang),
            response_excerpt(c),
        ]
        for run, c in checks
    ]
    return Table(header, rows)


def validation_commands(run: RunView) -> list[str]:
    """The plan's validation commands (curl against the endpoint), as the seeds show them."""
    serve, gate = serve_result(run), next(iter(run.gates_of("serve")), None)
    if serve is None or gate is None or not serve.plan.validation:
        return []
    plan = serve.plan
    lines = [shlex.join(argv) for argv in plan.validation]
    url = gate.summary.get("url")
    if url:  # the server's port was chosen at launch (the plan says 0, or the default)
        planned = f"http://{plan.bind_host}:{plan.port}"
        lines = [line.replace(planned, str(url).rstrip("/")) for line in lines]
    return lines


@SECTIONS.register("smoke")
def smoke_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    by_category: dict[str, list[tuple[str, CheckResult]]] = {}
    verdicts = []
    for run, _, r in results(cols, SmokeResult):
        for check in r.checks:
            by_category.setdefault(check.category, []).append((run.label, check))
        prefix = f"{run.label}: " if ctx.merged else ""
        verdicts.append(
            f"{prefix}{t('smoke.category.protocol')} **{t.status(r.protocol_verdict)}**, "
            f"{t('smoke.category.quality')} **{t.status(r.quality_verdict)}**"
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
