"""The report gate: renders REPORT.md/.html (en, zh) from run.json alone, on every run."""

from __future__ import annotations

from adaptgate.gate import Gate, GateOutcome, RunContext
from adaptgate.record import GateStatus
from adaptgate.report.render import write_report


class ReportGate(Gate):
    name = "report"
    title = "Report"
    always = True

    def run(self, ctx: RunContext) -> GateOutcome:
        ctx.record.save(ctx.run_dir)
        files = write_report(ctx.run_dir, ctx.record, langs=("en", "zh"))
        return GateOutcome(
            GateStatus.PASS,
            f"rendered from run.json ({len(ctx.record.gates)} gates)",
            artifacts=files,
        )
