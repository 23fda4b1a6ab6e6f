"""The bench gate: a default scenario sized to the target, against the server the serve gate left
running (``summary["url"]``), the client on the CPUs serve left free. PASS when every run is
VALID and no request failed; FAIL when requests failed; INCONCLUSIVE when a measurement stayed
INVALID through its retries; SKIPPED when there is no server to measure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adaptgate.bench.models import BenchConfig, BenchResult, SweepResult
from adaptgate.errors import ServerUnreachable
from adaptgate.gate import Gate, GateOutcome, RunContext
from adaptgate.messages import Message, Said, joined, message
from adaptgate.record import GateStatus

SCENARIOS = Path(__file__).parent / "scenarios"
# An INVALID measurement is taken again at most this many times before the gate gives up as
# INCONCLUSIVE; every attempt stays in bench.json (earlier_attempts) and attempt-N/.
RETRIES = 2


def default_scenario(target: str, url: str, model: str | None) -> dict[str, Any]:
    """Small on CPU (scenarios/cpu.yaml), the seed reports' shape on accelerators
    (scenarios/accelerator.yaml); the server's URL and model filled in."""
    from adaptgate.bench.config import load_scenario

    name = "cpu.yaml" if target == "cpu" else "accelerator.yaml"
    data = load_scenario(SCENARIOS / name)
    data["endpoint"] = {"url": url, "model": model}
    return data


def _summary(result: BenchResult | SweepResult) -> dict[str, Any]:
    runs = result.runs if isinstance(result, SweepResult) else [result]
    rows = []
    for r in runs:
        m = r.metrics
        rows.append(
            {
                "label": r.label,
                "validity": r.validity.status,
                "request_throughput": round(m.request_throughput, 3),
                "output_throughput": round(m.output_throughput, 2),
                "ttft_p50_ms": m.ttft_ms.p50,
                "ttft_p99_ms": m.ttft_ms.p99,
                "tpot_p50_ms": m.tpot_ms.p50,
                "tpot_p99_ms": m.tpot_ms.p99,
                "decode_speed_p50_tok_s": m.decode_speed_tok_s.p50,
                "failed": m.failed,
                "attempts": len(r.earlier_attempts) + 1,
            }
        )
    return {"runs": rows, **(rows[0] if len(rows) == 1 else {})}


class BenchGate(Gate):
    name = "bench"
    title = "Serving benchmark"

    def run(self, ctx: RunContext) -> GateOutcome:
        from adaptgate.bench.api import build_config, run

        server, why = ctx.server()
        if server is None:
            return GateOutcome.skipped(why)
        data = default_scenario(
            ctx.settings.target, str(server["url"]), server.get("served_model_name")
        )
        data["output"] = {"dir": str(ctx.gate_dir(self.name))}
        data.setdefault("validity", {}).setdefault("retries", RETRIES)
        if server.get("client_cpus"):  # serve pinned vLLM elsewhere: the client keeps these
            data["load"]["client_cpus"] = list(server["client_cpus"])
        cfg: BenchConfig = build_config(data)
        try:
            outcome = run(cfg, ctx.out)
        except ServerUnreachable as exc:
            return GateOutcome.skipped(message("bench.server_gone", error=exc.message))
        runs = outcome.result.runs if isinstance(outcome.result, SweepResult) else [outcome.result]
        status, reason = verdict(runs)
        return GateOutcome.said(
            status,
            reason,
            summary=_summary(outcome.result),
            result=outcome.result,
            artifacts=outcome.files,
        )


def verdict(runs: list[BenchResult]) -> tuple[GateStatus, Message | Said]:
    """FAIL when requests failed (the server's doing); INCONCLUSIVE when a measurement stayed
    INVALID through its retries (the client's: no verdict on the server); else PASS."""
    failed = [
        message(
            "bench.failed_requests",
            label=r.label or "run",
            failed=r.metrics.failed,
            reasons=str(r.metrics.failures_by_reason),
        )
        for r in runs
        if r.metrics.failed
    ]
    if failed:
        return GateStatus.FAIL, joined(failed)
    invalid = [
        message(
            "bench.invalid_throughout",
            label=r.label or "run",
            attempts=len(r.earlier_attempts) + 1,
            reasons=joined(r.validity.reasons),
        )
        for r in runs
        if not r.valid
    ]
    if invalid:
        return GateStatus.INCONCLUSIVE, joined(invalid)
    m = runs[0].metrics
    reason = message(
        "bench.measured",
        rps=f"{m.request_throughput:.2f}",
        tps=f"{m.output_throughput:.1f}",
        ttft=f"{m.ttft_ms.p50 or 0:.1f}",
        tpot=f"{m.tpot_ms.p50 or 0:.2f}",
    )
    retried = sum(len(r.earlier_attempts) for r in runs)
    if retried:
        which = "bench.valid_after_retries" if retried > 1 else "bench.valid_after_retry"
        reason = message(which, measured=reason, retried=retried)
    return GateStatus.PASS, reason
