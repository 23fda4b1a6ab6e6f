"""The inspect gate: the checkpoint's facts, parameter counts, quantization, memory, route."""

from __future__ import annotations

from adaptgate.gate import Gate, GateOutcome, RunContext
from adaptgate.inspect.api import inspect_model
from adaptgate.inspect.models import InspectOptions
from adaptgate.inspect.render import write_outputs
from adaptgate.record import GateStatus


class InspectGate(Gate):
    name = "inspect"
    title = "Inspect"

    def run(self, ctx: RunContext) -> GateOutcome:
        s = ctx.settings
        result = inspect_model(
            InspectOptions(
                model=s.model,
                target=s.target,
                device=s.device,
                devices=s.devices,
                release=s.release,
                max_model_len=s.max_model_len,
                gpu_memory_utilization=s.gpu_memory_utilization,
                allow_pickle=s.allow_pickle,
            )
        )
        counts = result.counts
        summary: dict[str, object] = {
            "architecture": result.facts.architecture,
            "total_params": counts.total,
            "quantization": result.quant.label,
            "route": result.recommended,
        }
        if counts.active != counts.total:
            summary["active_params"] = counts.active
        files = write_outputs(result, ctx.gate_dir(self.name))
        status = GateStatus.PASS if result.verdict == "PASS" else GateStatus.FAIL
        reason = result.reason
        return GateOutcome(
            status,
            reason.text,
            summary,
            result,
            files,
            reason_id=reason.id,
            reason_params=reason.params,
        )
