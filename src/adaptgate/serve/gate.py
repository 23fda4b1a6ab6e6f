"""The serve gate: the launch plan (always written), then Stage A (dummy weights: architecture
and operators start on the backend) and Stage B (real weights), on this machine's engine.

Stage B's server keeps running for the later gates (``summary["url"]``); it is stopped when
adaptgate exits (atexit, signal handlers, and a watchdog if adaptgate is killed), or earlier by
the pipeline's ``close()`` when the run ends. A target this host cannot run (Ascend or CUDA without
the devices, or no vllm for the configured python) is SKIPPED with the plan as its artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adaptgate.errors import PlanError, VllmNotFound
from adaptgate.gate import Gate, GateOutcome, RunContext
from adaptgate.messages import Said, message
from adaptgate.record import KV_CACHE_DTYPES, GateStatus
from adaptgate.serve.api import serve_model, vllm_python
from adaptgate.serve.cpus import split_cpus
from adaptgate.serve.models import (
    TARGETS,
    LaunchPlan,
    PlanOptions,
    ServeGateResult,
    ServeOptions,
    ServeResult,
)
from adaptgate.serve.plan import build_plan
from adaptgate.serve.process import check_vllm, stop_all
from adaptgate.serve.runbook import write_plan_outputs
from adaptgate.serve.server_facts import server_facts


def host_can_run(target: str) -> Said | None:
    """None when this host has the target's devices, else why not."""
    if target.startswith("ascend") and not Path("/dev/davinci_manager").exists():
        node, devices = "/dev/davinci_manager", "Ascend NPUs"
    elif target == "cuda" and not Path("/dev/nvidiactl").exists():
        node, devices = "/dev/nvidiactl", "NVIDIA GPUs"
    else:
        return None
    return message("serve.no_device", target=target, devices=devices, node=node).said


def python_has_vllm(python: str) -> bool:
    try:
        check_vllm(python)
    except VllmNotFound:
        return False
    return True


def kv_cache_dtype(ctx: RunContext) -> str:
    """The run's --kv-cache-dtype when it pins one; else the kvcache gate's when it passed
    (int8 means Ascend C8); else auto."""
    if ctx.settings.kv_cache_dtype is not None:
        return ctx.settings.kv_cache_dtype
    gate = ctx.record.gate("kvcache")
    if gate is None or gate.status is not GateStatus.PASS:
        return "auto"
    dtype = str(gate.summary.get("kv_cache_dtype") or "auto")
    if ctx.settings.target.startswith("ascend"):
        return "int8" if gate.summary.get("ascend_kv_cache") == "C8" else "auto"
    return dtype if dtype in KV_CACHE_DTYPES else "auto"


def _plan_options(
    ctx: RunContext, stage: str, route: str | None, *, port: int | None = None
) -> PlanOptions:
    s = ctx.settings
    return PlanOptions.model_validate(
        {
            "model": ctx.model_path,
            "target": s.target,
            "device": s.device,
            "devices": s.devices,
            "release": s.release,
            "max_model_len": s.max_model_len,
            "gpu_memory_utilization": s.gpu_memory_utilization,
            "stage": stage,
            "route": route,
            "kv_cache_dtype": kv_cache_dtype(ctx),
            "port": port if port is not None else (0 if s.target == "cpu" else 8000),
        }
    )


def _summary(a: ServeResult | None, b: ServeResult | None, plan: LaunchPlan) -> dict[str, Any]:
    out: dict[str, Any] = {
        "served_model_name": plan.served_model_name,
        "route": plan.route,
        "max_model_len": plan.max_model_len,
        "kv_cache_tokens_predicted": plan.memory.predicted_kv_tokens if plan.memory else None,
    }
    if a is not None:
        out["stage_a_startup_s"] = a.startup_seconds
    if b is not None:
        out.update(
            url=b.url,
            stage_b_startup_s=b.startup_seconds,
            kv_cache_tokens_reported=b.kv_cache_tokens_reported,
            kv_ratio=b.kv_ratio,
            thinking=plan.features.thinking,
            tools=plan.features.tools,
        )
    failed = b if b is not None and b.verdict == "FAIL" else a
    if failed is not None and failed.diagnosis and failed.diagnosis.top:
        out["diagnosis"] = failed.diagnosis.top.id
    return out


def _external(
    url: str, plan: LaunchPlan, artifacts: list[Path], server_log: str | None = None
) -> GateOutcome:
    """--url: a server launched elsewhere (the NPU machine's vllm-ascend, from the runbook).
    Its own facts are recorded (/version, /v1/models, and with --server-log its versions and
    launch arguments) and the flags it runs with that differ from the plan are listed."""
    facts, why = server_facts(url, plan, Path(server_log) if server_log else None)
    if why is not None or facts.served is None:
        return GateOutcome.said(
            GateStatus.FAIL,
            message("serve.external_unreachable", url=url, why=why),
            result=ServeGateResult(plan=plan, skipped=None, server=facts),
            artifacts=artifacts,
        )
    served = facts.served
    log = facts.log_facts
    summary: dict[str, Any] = {
        "url": facts.url,
        "external": True,
        "served_model_name": served.id,
        "max_model_len": served.max_model_len,
        "route": plan.route,
        "thinking": plan.features.thinking,
        "tools": plan.features.tools,
        "server_version": facts.version,
        "plan_differences": len(facts.differences),
    }
    if log is not None:
        summary.update(server_vllm_ascend=log.vllm_ascend_version, server_platform=log.platform)
    reason = message(
        "serve.external",
        url=url,
        names=", ".join(m.id for m in facts.models),
        max_len=served.max_model_len,
        version=facts.version or message("serve.version_unknown"),
    )
    if facts.differences:
        reason = message(
            "serve.external_differs",
            external=reason,
            n=len(facts.differences),
            flags=", ".join(d.flag for d in facts.differences),
        )
    return GateOutcome.said(
        GateStatus.PASS,
        reason,
        summary=summary,
        result=ServeGateResult(plan=plan, server=facts),
        artifacts=artifacts,
    )


class ServeGate(Gate):
    name = "serve"
    title = "Serve (Stage A dummy weights, Stage B real weights)"
    live = True  # Stage B's server dies with the run: a resumed run that goes on serves again

    def close(self) -> None:
        stop_all()

    def run(self, ctx: RunContext) -> GateOutcome:
        if ctx.settings.target not in TARGETS:
            return GateOutcome.skipped(message("serve.no_target", target=ctx.settings.target))
        if ctx.passed("inspect") is None and ctx.record.gate("inspect") is not None:
            return GateOutcome.skipped(message("serve.inspect_failed"))
        out_dir = ctx.gate_dir(self.name)
        try:
            plan = build_plan(_plan_options(ctx, "real", None, port=8000))  # the runbook's
        except PlanError as exc:
            return GateOutcome(GateStatus.FAIL, exc.one_line())
        artifacts = write_plan_outputs(plan, out_dir / "plan")
        if ctx.settings.url:
            return _external(ctx.settings.url, plan, artifacts, ctx.settings.server_log)
        why_not = host_can_run(plan.target)
        python = vllm_python()
        if why_not is None and not python_has_vllm(python):
            why_not = message("serve.no_vllm", python=python).said
        local = Path(plan.conversion.output) if plan.conversion else None
        route = None
        if local is not None and not local.is_dir():
            route = "native"  # measure what exists: the doctor explains a failure
        if why_not is not None:
            result = ServeGateResult(plan=plan, skipped=why_not)
            return GateOutcome.said(
                GateStatus.SKIPPED,
                message("serve.plan_only", why=why_not),
                summary=_summary(None, None, plan),
                result=result,
                artifacts=artifacts,
            )
        split = split_cpus() if plan.target == "cpu" else None
        cpus = split.server if split else None
        a, _ = serve_model(
            ServeOptions(
                plan=_plan_options(ctx, "dummy", route),
                run_dir=out_dir / "stage-a",
                vllm_python=python,
                cpus=cpus,
            ),
            ctx.out,
        )
        artifacts += [Path(a.log), out_dir / "stage-a" / "serve.json"]
        b = None
        if a.verdict == "PASS":
            b, _ = serve_model(
                ServeOptions(
                    plan=_plan_options(ctx, "real", route),
                    run_dir=out_dir / "stage-b",
                    vllm_python=python,
                    cpus=cpus,
                ),
                ctx.out,
                keep=True,
            )
            artifacts += [Path(b.log), out_dir / "stage-b" / "serve.json"]
        result = ServeGateResult(
            plan=plan, stage_a=a, stage_b=b, operators_proven=a.verdict == "PASS"
        )
        last = b or a
        status = GateStatus.PASS if last.verdict == "PASS" else GateStatus.FAIL
        stage = "Stage B" if b is not None else "Stage A"
        summary = _summary(a, b, plan)
        if split is not None:  # the bench gate's client runs on the CPUs the server left free
            summary.update(server_cpus=list(split.server), client_cpus=list(split.client))
        return GateOutcome.said(
            status,
            message("serve.stage", stage=stage, reason=last.reason),
            summary=summary,
            result=result,
            artifacts=artifacts,
        )
