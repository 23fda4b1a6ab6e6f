"""The verification-stage table (seed 004: Stage A/B, text, multimodal, graph mode, EP, MTP,
precision, KV cache, performance): each row from what a gate recorded in run.json; a stage that
nothing measured says "not verified", one that cannot apply to the model says so, with why."""

from __future__ import annotations

from adaptgate.inspect.facts import ArchFacts
from adaptgate.report.doc import Block, Table
from adaptgate.report.sections.base import Ctx
from adaptgate.report.sections.data import inspect_result, platform, serve_result
from adaptgate.report.view import RunView
from adaptgate.serve.models import ServeGateResult, ServeResult
from adaptgate.smoke.models import SmokeResult

Row = tuple[str, str, str]  # (stage label key, status text, evidence)


def _gate_row(ctx: Ctx, run: RunView, label: str, section: str) -> Row:
    gate = next(iter(run.gates_of(section)), None)
    if gate is None or gate.status.value == "SKIPPED":
        return (
            label,
            ctx.t("stage.not_verified"),
            ctx.reason(gate) if gate else ctx.t("stage.no_gate"),
        )
    return label, ctx.t.status(gate.status.value), ctx.reason(gate)


def _stage(ctx: Ctx, stage: ServeResult | None, label: str) -> Row:
    if stage is None:
        return label, ctx.t("stage.not_verified"), ctx.t("stage.not_started")
    return label, ctx.t.status(stage.verdict), stage.reason.in_lang(ctx.t.lang)


def _started(serve: ServeGateResult | None) -> ServeResult | None:
    stage = serve.stage_b if serve else None
    return stage if stage is not None and stage.verdict == "PASS" else None


def _graph(ctx: Ctx, run: RunView, serve: ServeGateResult | None) -> Row:
    t = ctx.t
    label = t(
        "stage.graph_ascend" if platform(run.record.settings.target) == "ascend" else "stage.graph"
    )
    stage = _started(serve)
    if stage is None:
        return label, t("stage.not_verified"), t("stage.needs_stage_b")
    eager = stage.log_facts.engine_config.get("enforce_eager")
    if eager is None:
        if "--enforce-eager" in stage.command:
            return label, t("stage.not_verified"), t("stage.eager_flag")
        return label, t("stage.not_verified"), t("stage.graph_not_in_log")
    if eager == "True":
        return label, t("stage.not_verified"), t("stage.eager_log")
    return label, t("stage.verified"), t("stage.graph_log")


def _ep(ctx: Ctx, facts: ArchFacts | None, serve: ServeGateResult | None) -> Row:
    t = ctx.t
    label = t("stage.ep")
    if facts and not facts.is_moe:
        return label, t("stage.not_applicable"), t("stage.not_moe")
    stage = _started(serve)
    if stage is not None and "--enable-expert-parallel" in stage.command:
        return label, t("stage.verified"), t("stage.ep_started")
    return label, t("stage.not_verified"), t("stage.ep_not_started")


def _mtp(ctx: Ctx, facts: ArchFacts | None) -> Row:
    t = ctx.t
    label = t("stage.mtp")
    if facts and not facts.mtp_layers:
        return label, t("stage.not_applicable"), t("stage.no_mtp_layers")
    return label, t("stage.not_verified"), t("stage.mtp_not_measured")


def stage_rows(ctx: Ctx, run: RunView) -> list[Row]:
    t = ctx.t
    serve, inspect = serve_result(run), inspect_result(run)
    facts = inspect.facts if inspect else None
    smoke_gate = next(iter(run.gates_of("smoke")), None)
    smoke = run.result(smoke_gate.name, SmokeResult) if smoke_gate else None
    text = (
        (t("stage.text"), t.status(smoke.protocol_verdict), ctx.reason(smoke_gate))
        if smoke is not None and smoke_gate is not None
        else (t("stage.text"), t("stage.not_verified"), t("stage.no_smoke"))
    )
    return [
        _stage(ctx, serve.stage_a if serve else None, t("stage.stage_a")),
        _stage(ctx, serve.stage_b if serve else None, t("stage.stage_b")),
        text,
        (t("stage.multimodal"), t("stage.not_verified"), t("stage.no_multimodal")),
        _graph(ctx, run, serve),
        _ep(ctx, facts, serve),
        _mtp(ctx, facts),
        _gate_row(ctx, run, t("stage.precision"), "precision"),
        _gate_row(ctx, run, t("stage.kvcache"), "kvcache"),
        _gate_row(ctx, run, t("stage.bench"), "bench"),
    ]


def stages_section(ctx: Ctx) -> list[Block]:
    t = ctx.t
    header = [t("col.gate"), t("col.status"), t("col.evidence")]
    blocks: list[Block] = []
    for run in ctx.runs:
        caption = run.label if ctx.merged else ""
        blocks.append(Table(header, [list(r) for r in stage_rows(ctx, run)], caption))
    return blocks
