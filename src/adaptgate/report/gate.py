"""The report gate: renders REPORT.md/.html (en, zh) from run.json alone, on every run."""

from __future__ import annotations

from adaptgate.gate import Gate, GateOutcome, RunContext
from adaptgate.messages import message
from adaptgate.record import GateStatus
from adaptgate.report.render import write_report


class ReportGate(Gate):
    name = "report"
    title = "Report"
    always = True

    def run(self, ctx: RunContext) -> GateOutcome:
        ctx.record.save(ctx.run_dir)
        files = write_report(ctx.run_dir, ctx.record, langs=("en", "zh"))
        return GateOutcome.said(
            GateStatus.PASS,
            message("report.rendered", gates=len(ctx.record.gates)),
            artifacts=files,
        )
