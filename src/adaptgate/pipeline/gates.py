"""Gate adapters: each wraps one capability's library call into the pipeline interface."""

from __future__ import annotations

from adaptgate.pipeline.gate import Gate, GateOutcome, RunContext
from adaptgate.pipeline.record import GateStatus


class ReportGate(Gate):
    name = "report"
    title = "Report"

    def run(self, ctx: RunContext) -> GateOutcome:
        from adaptgate.report.render import write_report

        ctx.record.save(ctx.run_dir)
        files = write_report(ctx.run_dir, ctx.record)
        return GateOutcome(
            GateStatus.PASS,
            f"rendered from run.json ({len(ctx.record.gates)} gates)",
            artifacts=files,
        )
