"""The smoke gate: every smoke check against the server the serve gate left running.
PASS when every protocol check passes; the model-quality checks are recorded beside it."""

from __future__ import annotations

from typing import Any

from adaptgate.errors import ServerUnreachable
from adaptgate.gate import Gate, GateOutcome, RunContext
from adaptgate.messages import message
from adaptgate.record import GateStatus
from adaptgate.smoke.models import CheckStatus, SmokeOptions, SmokeResult
from adaptgate.smoke.runner import run_smoke


def _summary(result: SmokeResult) -> dict[str, Any]:
    failed = [c for c in result.checks if c.status is CheckStatus.FAIL]
    return {
        "protocol": result.protocol_verdict,
        "quality": result.quality_verdict,
        "counts": result.counts,
        "failed_protocol": [c.id for c in failed if c.category == "protocol"],
        "failed_quality": [c.id for c in failed if c.category == "quality"],
    }


class SmokeGate(Gate):
    name = "smoke"
    title = "Smoke checks (protocol, then model quality)"

    def run(self, ctx: RunContext) -> GateOutcome:
        server, why = ctx.server()
        if server is None:
            return GateOutcome.skipped(why)
        options = SmokeOptions(
            url=str(server["url"]),
            model=server.get("served_model_name"),
            expected_max_model_len=server.get("max_model_len"),
            thinking=server.get("thinking"),
            tools=bool(server.get("tools")),
            reference_model=ctx.settings.model,  # the source: a conversion must keep its template
        )
        try:
            result = run_smoke(options, ctx.out)
        except ServerUnreachable as exc:
            return GateOutcome.skipped(message("smoke.server_gone", error=exc.message))
        path = result.write_json(ctx.gate_dir(self.name) / "smoke.json")
        summary = _summary(result)
        status = GateStatus.PASS if result.verdict == "PASS" else GateStatus.FAIL
        verdicts = {"protocol": result.protocol_verdict, "quality": result.quality_verdict}
        # check ids as code: names, not words of the sentence
        failed_protocol = ", ".join(f"`{c}`" for c in summary["failed_protocol"])
        failed_quality = ", ".join(f"`{c}`" for c in summary["failed_quality"])
        if failed_protocol and failed_quality:
            reason = message(
                "smoke.verdict_failed_both",
                **verdicts,
                failed_protocol=failed_protocol,
                failed_quality=failed_quality,
            )
        elif failed_protocol or failed_quality:
            which = "protocol" if failed_protocol else "quality"
            failed = failed_protocol or failed_quality
            reason = message(f"smoke.verdict_failed_{which}", **verdicts, failed=failed)
        else:
            reason = message("smoke.verdict", **verdicts)
        return GateOutcome.said(status, reason, summary=summary, result=result, artifacts=[path])
