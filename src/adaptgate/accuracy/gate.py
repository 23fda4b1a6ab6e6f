"""The accuracy gate: adaptgate's built-in task through lm-eval against the server the serve gate
left running, judged against the run's ``--accuracy-baseline`` when it names one."""

from __future__ import annotations

from pathlib import Path

from adaptgate.accuracy.models import AccuracyOptions
from adaptgate.accuracy.runner import run_accuracy
from adaptgate.errors import ServerUnreachable
from adaptgate.gate import Gate, GateOutcome, RunContext
from adaptgate.messages import message


class AccuracyGate(Gate):
    name = "accuracy"
    title = "Task accuracy (lm-eval, built-in task)"

    def run(self, ctx: RunContext) -> GateOutcome:
        server, why = ctx.server()
        if server is None:
            return GateOutcome.skipped(why)
        baseline = ctx.settings.accuracy_baseline
        options = AccuracyOptions(
            url=str(server["url"]),
            model=server.get("served_model_name"),
            baseline=Path(baseline) if baseline else None,
            work_dir=ctx.gate_dir(self.name),
        )
        try:
            result = run_accuracy(options, ctx.out)
        except ServerUnreachable as exc:
            return GateOutcome.skipped(message("accuracy.server_gone", error=exc.message))
        path = result.write_json(ctx.gate_dir(self.name) / "accuracy.json")
        summary = {
            "verdict": result.verdict.value,
            "chat_template": result.chat_template,
            **{f"{t.task}_accuracy": t.accuracy for t in result.tasks},
        }
        scores = ", ".join(
            f"{t.task} {t.accuracy:.2f} [{t.ci.low:.2f}, {t.ci.high:.2f}]" for t in result.tasks
        )
        return GateOutcome.said(
            result.verdict,
            message("accuracy.verdict", scores=scores, reason=result.reason),
            summary=summary,
            result=result,
            artifacts=[path],
        )
