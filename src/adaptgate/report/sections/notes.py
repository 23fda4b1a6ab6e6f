"""Notes, risks and troubleshooting (注意事项): failures first, then every warning a gate
recorded, then the diagnoses of serve's log doctor, each as the gate wrote it; last, where
adaptgate disagrees with a seed report about this run's model and platform, as serve's plan
recorded it (serve/seed_disagreements.yaml)."""

from __future__ import annotations

from typing import Any

from adaptgate.messages import Said
from adaptgate.report.doc import Block, Bullets, Heading, Para, Table
from adaptgate.report.sections.base import Ctx, get
from adaptgate.report.sections.data import serve_result

WARNING_KEYS = ("warnings", "plan.warnings", "validity.warnings", "risks")
DIAGNOSIS_KEYS = ("diagnosis", "stage_a.diagnosis", "stage_b.diagnosis", "doctor")


def _diagnoses(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    """serve's log doctor findings (a Diagnosis has ``findings``), wherever the gate keeps them."""
    found: list[dict[str, Any]] = []
    for key in DIAGNOSIS_KEYS:
        value = get(result, key)
        if isinstance(value, dict):
            value = value.get("findings") if "findings" in value else [value]
        if isinstance(value, list):
            found += [v for v in value if isinstance(v, dict)]
    return found


def _sentence(value: Any, lang: str) -> str:
    """A finding's title, cause or fix: a Said (both languages) or, in older run.json, its
    English text."""
    return Said.model_validate(value).in_lang(lang) if value else ""


def _symptom(finding: dict[str, Any], lang: str) -> str:
    title = _sentence(finding.get("title"), lang)
    title = title or str(finding.get("signature") or finding.get("id") or "-")
    evidence = finding.get("evidence") or []
    return f"{title}: `{evidence[0]}`" if evidence else title


def _disagreement_rows(ctx: Ctx) -> list[list[str]]:
    rows: list[list[str]] = []
    for run in ctx.runs:
        serve = serve_result(run)
        for d in serve.plan.seed_disagreements if serve else []:
            quote = f"「{d.quote}」" if ctx.t.lang == "zh" else f"「{d.quote}」 ({d.gloss})"
            row = [
                d.seed,
                quote,
                *(x.in_lang(ctx.t.lang) for x in (d.position, d.reason, d.source)),
            ]
            if row not in rows:
                rows.append(row)
    return rows


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
                    f"**{prefix}{title}: {t.status(gate.status.value)}** - {ctx.reason(gate)}"
                )
            for key in WARNING_KEYS:
                for stored in get(gate.result, key, []):
                    # a warning is a sentence (Said) or, in older run.json, its English text
                    w = Said.model_validate(stored).in_lang(t.lang)
                    warnings.setdefault(f"{prefix}{w}", f"{prefix}{title}: {w}")
            for d in _diagnoses(gate.result):
                cause, fix = (_sentence(d.get(k), t.lang) for k in ("cause", "fix"))
                row = [_symptom(d, t.lang), cause, fix]
                if row not in rows:
                    rows.append(row)
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
    if seeds := _disagreement_rows(ctx):
        blocks += [
            Heading(t("notes.seed_disagreements"), 3),
            Para(t("notes.seed_disagreements_intro")),
            Table(
                [t(f"col.{c}") for c in ("seed", "seed_claim", "position", "basis", "sources")],
                seeds,
            ),
        ]
    blocks.append(Para(t("notes.provenance"), "note"))
    # a run recorded before the message catalogue holds its gates' reasons in English only
    if t.lang != "en" and any(
        g.reason and g.reason_id is None for run in ctx.runs for g in run.record.gates
    ):
        blocks.append(Para(t("notes.reasons_as_written"), "note"))
    return blocks
