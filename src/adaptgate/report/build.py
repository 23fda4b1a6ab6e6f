"""Builds the report document from runs: the seeds' structure, in their order.

Summary verdict table; model specification (inspect); environment; then each gate's section
(conversion, launch, smoke, precision, KV cache, performance, and any other gate) with its status
and reason, its result rendered by the section registered for it, and its plots; notes, risks and
troubleshooting; the references, the quantization mapping, the verification-stage table and the
troubleshooting guide of the seeds; the commands to reproduce every number.
"""

from __future__ import annotations

from pathlib import Path

from adaptgate.record import GateRecord
from adaptgate.report.doc import Block, Bullets, Document, Heading, Image, Para
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import seconds
from adaptgate.report.sections import SECTIONS, Ctx, GateCols
from adaptgate.report.sections.environment import environment_section
from adaptgate.report.sections.generic import generic_section
from adaptgate.report.sections.notes import notes_section
from adaptgate.report.sections.quantmap import quantmap_section
from adaptgate.report.sections.references import references_section
from adaptgate.report.sections.reproduce import reproduce_section
from adaptgate.report.sections.stages import stages_section
from adaptgate.report.sections.summary import summary_section
from adaptgate.report.sections.troubleshoot import troubleshoot_section
from adaptgate.report.view import GATE_ORDER, NOT_SHOWN, RunView, section_of


def gate_names(runs: list[RunView]) -> list[tuple[str, str]]:
    """(name, title) of every gate to report, in report order: each recorded gate, and each
    pipeline gate no run recorded (shown SKIPPED)."""
    seen: dict[str, str] = {}
    for run in runs:
        for g in run.record.gates:
            if g.name not in NOT_SHOWN:
                seen.setdefault(g.name, g.title)
    for name in GATE_ORDER:
        if not any(section_of(n) == name for n in seen):
            seen[name] = name
    order = list(seen)

    def key(name: str) -> tuple[int, int]:
        section = section_of(name)
        rank = GATE_ORDER.index(section) if section else len(GATE_ORDER)
        return rank, order.index(name)

    return [(n, seen[n]) for n in sorted(seen, key=key)]


def _status_items(ctx: Ctx, names: list[tuple[str, str]]) -> list[str]:
    t = ctx.t
    items = []
    for name, title in names:
        for run in ctx.runs:
            gate = run.gate(name)
            label = t.opt(f"gate.{name}", title) + (f" [{run.label}]" if ctx.merged else "")
            if gate is None:
                items.append(f"{label}: **{t.status('SKIPPED')}** - {t('reason.not_recorded')}")
                continue
            took = f" ({seconds(gate.seconds)})" if gate.seconds is not None else ""
            items.append(f"{label}: **{t.status(gate.status.value)}** - {ctx.reason(gate)}{took}")
    return items


def _artifacts(ctx: Ctx, pairs: list[tuple[RunView, GateRecord]]) -> list[Block]:
    images: list[Block] = []
    files = []
    for run, gate in pairs:
        for rel in gate.artifacts:
            path = run.artifact(rel)
            if path.suffix.lower() == ".png" and path.is_file():
                caption = f"{run.label}: {rel}" if ctx.merged else rel
                images.append(Image(Path(rel).name, caption, source=path))
            else:
                files.append(f"`{rel}`" + (f" ({run.label})" if ctx.merged else ""))
    if files:
        images.append(Para(f"{ctx.t('word.files')}: " + ", ".join(files)))
    return images


def gate_section(ctx: Ctx, section: str, names: list[tuple[str, str]]) -> list[Block]:
    pairs = [(run, g) for name, _ in names for run in ctx.runs if (g := run.gate(name))]
    blocks: list[Block] = [Bullets(_status_items(ctx, names))]
    cols: GateCols = [(run, g) for run, g in pairs if g.result is not None]
    if cols:
        render = SECTIONS.get(section) if section in SECTIONS else generic_section
        blocks += render(ctx, cols)
    else:
        blocks += generic_section(ctx, [(run, g) for run, g in pairs if g.summary])
    return blocks + _artifacts(ctx, pairs)


def _number_headings(blocks: list[Block]) -> list[Block]:
    out: list[Block] = []
    major = minor = 0
    for block in blocks:
        if isinstance(block, Heading) and block.level == 2:
            major, minor = major + 1, 0
            out.append(Heading(f"{major}. {block.text}", 2, block.anchor or f"s{major}"))
        elif isinstance(block, Heading) and block.level == 3 and major:
            minor += 1
            anchor = block.anchor or f"s{major}-{minor}"
            out.append(Heading(f"{major}.{minor} {block.text}", 3, anchor))
        else:
            out.append(block)
    return out


def _opening(ctx: Ctx, model: str) -> list[Block]:
    t = ctx.t
    targets = ", ".join(r.label for r in ctx.runs)
    blocks: list[Block] = [Para(t("intro", model=model, targets=targets))]
    for run in ctx.runs:
        verdict = run.record.verdict.value
        prefix = f"{run.label}: " if ctx.merged else ""
        failed = [
            f"{t.opt(f'gate.{g.name}', g.title)} {t.status(g.status.value)}: {ctx.reason(g)}"
            for g in run.record.gates
            if g.status.value in ("FAIL", "ERROR", "INCONCLUSIVE")
        ]
        text = f"{prefix}{t('overall')}: **{t.status(verdict)}**"
        if failed:
            text += " - " + "; ".join(failed)
        blocks.append(Para(text, "alert" if failed or verdict == "SKIPPED" else "ok"))
    return blocks


GENERIC_DIRS = frozenset({"model", "models", "checkpoint", "weights", "hf", "snapshot"})


def model_name(runs: list[RunView]) -> str:
    """The model directory's name (with its parent's when the name says nothing: demo/model)."""
    path = Path(runs[0].record.settings.model.rstrip("/"))
    if path.name.lower() in GENERIC_DIRS and path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.name or str(path)


def build_document(runs: list[RunView], lang: str, report_command: str) -> Document:
    ctx = Ctx(runs, Labels(lang))
    t = ctx.t
    model = model_name(runs)
    doc = Document(t("title", model=model), lang)
    doc.add(*_opening(ctx, model))
    names = gate_names(runs)
    blocks: list[Block] = [Heading(t("section.summary")), *summary_section(ctx, names)]
    blocks += [Heading(t("section.stages"), 3), *stages_section(ctx)]
    blocks += [Heading(t("section.references"), 3), *references_section(ctx)]
    sections: dict[str, list[tuple[str, str]]] = {}
    for name, title in names:
        sections.setdefault(section_of(name) or name, []).append((name, title))
    for section, members in sections.items():
        heading = t.opt(f"section.{section}", t.opt(f"gate.{section}", members[0][1]))
        blocks += [Heading(heading), *gate_section(ctx, section, members)]
        if section == "inspect":
            quantmap = [b for run in ctx.runs for b in quantmap_section(ctx, run)]
            if quantmap:
                blocks += [Heading(t("section.quantmap"), 3), *quantmap]
            blocks += [Heading(t("section.environment")), *environment_section(ctx)]
    blocks += [Heading(t("section.notes")), *notes_section(ctx), *troubleshoot_section(ctx)]
    blocks += [Heading(t("section.reproduce")), *reproduce_section(ctx, report_command)]
    doc.add(*_number_headings(blocks))
    return doc
