"""Notes, risks and troubleshooting (注意事项): failures first, then every warning a gate
recorded, then the diagnoses of serve's log doctor, each as the gate wrote it."""

from __future__ import annotations

from typing import Any

from adaptgate.report.doc import Block, Bullets, Heading, Para, Table
from adaptgate.report.sections.base import Ctx, get

WARNING_KEYS = ("warnings", "plan.warnings", "validity.warnings", "risks")
DIAGNOSIS_KEYS = ("diagnosis", "diagnoses", "doctor")


def _diagnoses(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    for key in DIAGNOSIS_KEYS:
        value = get(result, key)
        if isinstance(value, dict):
            value = value.get("findings") or value.get("matches") or [value]
        if isinstance(value, list):
            return [v for v in value if isinstance(v, dict)]
    return []


def notes_section(ctx: Ctx) -> list[Block]:
    t = ctx.t
    failures, rows = [], []
    warnings: dict[str, str] = {}  # warning -> the first "gate: warning" line that said it
    for run in ctx.runs:
        prefix = f"{run.label}, " if ctx.merged else ""
        for gate in run.record.gates:
            title = t.opt(f"gate.{gate.name}", gate.title)
            if gate.status.value in ("FAIL", "ERROR"):
                failures.append(
                    f"**{prefix}{title}: {t.status(gate.status.value)}** - {gate.reason}"
                )
            for key in WARNING_KEYS:
                for w in get(gate.result, key, []):
                    warnings.setdefault(f"{prefix}{w}", f"{prefix}{title}: {w}")
            for d in _diagnoses(gate.result):
                rows.append(
                    [
                        str(d.get("signature") or d.get("name") or d.get("title") or "-"),
                        str(d.get("cause", "")),
                        str(d.get("fix", "")),
                    ]
                )
    blocks: list[Block] = []
    if failures:
        blocks += [Heading(t("notes.failures"), 3), Bullets(failures)]
    if warnings:
        blocks += [Heading(t("notes.warnings"), 3), Bullets(list(warnings.values()))]
    if rows:
        blocks += [
            Heading(t("notes.troubleshooting"), 3),
            Table([t("col.signature"), t("col.cause"), t("col.fix")], rows),
        ]
    if not (failures or warnings or rows):
        blocks.append(Para(t("notes.none")))
    blocks.append(Para(t("notes.provenance"), "note"))
    if t.lang != "en":
        blocks.append(Para(t("notes.reasons_as_written"), "note"))
    return blocks
