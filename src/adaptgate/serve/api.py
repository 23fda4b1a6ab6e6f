"""``serve_model(ServeOptions) -> ServeResult``: start vLLM from the plan, wait until it
serves, record startup time and the KV capacity it reports against inspect's prediction, and
stop it (or hold it until Ctrl-C, or keep it for later gates). A launch that fails comes back
as a FAIL with the log excerpt and the doctor's diagnosis."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Literal

from adaptgate.console import Output
from adaptgate.errors import ServerStartFailed, UsageError
from adaptgate.messages import Said, message, said
from adaptgate.serve.cpus import OMP_BIND_ENV, cpu_list
from adaptgate.serve.doctor import diagnose
from adaptgate.serve.logfacts import parse_log
from adaptgate.serve.models import LaunchPlan, PlanOptions, ServeOptions, ServeResult, StopInfo
from adaptgate.serve.plan import build_plan
from adaptgate.serve.process import (
    ManagedServer,
    ServerSpec,
    check_vllm,
    free_port,
    terminate_on_signals,
)
from adaptgate.serve.shell import engine_argv
from adaptgate.settings import load_settings

LOG_NAME = "vllm.log"


def vllm_python(explicit: str | None = None) -> str:
    """--vllm-python, else ADAPTGATE_VLLM_PYTHON, else this interpreter."""
    return explicit or load_settings().vllm_python or sys.executable


def local_model_path(plan: LaunchPlan, options: PlanOptions) -> str:
    """The directory to load on this machine (the plan's commands may use container paths)."""
    if options.served_path:
        return options.served_path
    if plan.conversion is not None:
        return plan.conversion.output
    return options.model or plan.served_path


def _hints(plan: LaunchPlan) -> dict[str, Any]:
    more = plan.layout.tp * 2
    return {
        "max_model_len": plan.max_model_len,
        "smaller_len": max(4096, plan.max_model_len // 2),
        "max_num_batched_tokens": plan.flag("--max-num-batched-tokens").value  # type: ignore[union-attr]
        if plan.flag("--max-num-batched-tokens")
        else None,
        "more_devices": f"(TP={more}) ",
    }


def prepare(options: ServeOptions) -> tuple[LaunchPlan, ServerSpec, str]:
    """Plan, check the inputs (model path, python, port) and build the server spec."""
    popts = options.plan
    if popts.model is None:
        raise UsageError("serve needs a checkpoint directory", fix="pass MODEL, not --config")
    if popts.port == 0:
        popts = popts.model_copy(update={"port": free_port()})
    plan = build_plan(popts)
    if plan.layout.nodes > 1:
        raise UsageError(
            f"the plan needs {plan.layout.nodes} nodes; adaptgate serve manages one node",
            fix="run the per-node scripts of `adaptgate plan --out DIR` on each node",
        )
    path = local_model_path(plan, popts)
    if not Path(path).is_dir():
        step = plan.conversion
        raise UsageError(
            f"route {plan.route} needs the converted checkpoint {path}, which does not exist",
            fix=" ".join(step.argv) if step else "pass --served-path DIR",
        )
    python = vllm_python(options.vllm_python)
    check_vllm(python)
    argv = engine_argv(plan, plan.commands[0], python=python, model_path=path)
    env = {v.name: v.value for v in plan.env}
    if plan.target == "cpu":
        env.setdefault("VLLM_CACHE_ROOT", str(options.run_dir / "vllm-cache"))
        if options.cpus:
            env[OMP_BIND_ENV] = cpu_list(options.cpus)
    timeout = options.ready_timeout_s or (900.0 if plan.target == "cpu" else 3600.0)
    spec = ServerSpec(
        argv=argv,
        log_path=options.run_dir / LOG_NAME,
        host=plan.bind_host,
        port=plan.port,
        env=env,
        served_model_name=plan.served_model_name,
        ready_timeout_s=timeout,
        stop_grace_s=options.stop_grace_s,
        cpus=options.cpus,
    )
    return plan, spec, python


def _ready_result(
    plan: LaunchPlan, server: ManagedServer, spec: ServerSpec, python: str
) -> ServeResult:
    ready = server.ready
    assert ready is not None
    facts = parse_log(server.log_text())
    predicted = plan.memory.predicted_kv_tokens if plan.memory else None
    reported = facts.kv_cache_tokens[0] if facts.kv_cache_tokens else None
    ratio = round(reported / predicted, 4) if reported and predicted else None
    reason = message("serve.ready", seconds=ready.seconds)
    verdict: Literal["PASS", "FAIL"] = "PASS"
    if ready.max_model_len is not None and ready.max_model_len != plan.max_model_len:
        verdict = "FAIL"
        reason = message(
            "serve.max_len_mismatch",
            before=reason,
            reported=ready.max_model_len,
            planned=plan.max_model_len,
        )
    if reported is not None and predicted:
        reason = message("serve.kv_reported", before=reason, reported=reported, predicted=predicted)
    return ServeResult(
        verdict=verdict,
        reason=reason.said,
        stage=plan.stage,
        url=server.url,
        python=python,
        command=spec.argv,
        log=str(spec.log_path),
        plan=plan,
        cpus=list(spec.cpus) if spec.cpus else None,
        startup_seconds=ready.seconds,
        served_models=[m.get("id", "") for m in ready.models.get("data", [])],
        reported_max_model_len=ready.max_model_len,
        kv_cache_tokens_reported=reported,
        kv_cache_tokens_predicted=predicted,
        kv_ratio=ratio,
        log_facts=facts,
    )


def _failed(
    plan: LaunchPlan, spec: ServerSpec, python: str, exc: ServerStartFailed, log_text: str
) -> ServeResult:
    ascend = plan.release if plan.target.startswith("ascend") else None
    diag = diagnose(log_text, hints=_hints(plan), log=str(spec.log_path), ascend_release=ascend)
    reason = exc.said or Said(text=exc.message)
    if diag.top is not None:
        reason = said("serve.diagnosed", error=reason, title=diag.top.title, fix=diag.top.fix)
    elif diag.first_error:
        reason = said("serve.first_error", error=reason, line=diag.first_error)
    return ServeResult(
        verdict="FAIL",
        reason=reason,
        stage=plan.stage,
        url=spec.url,
        python=python,
        command=spec.argv,
        log=str(spec.log_path),
        plan=plan,
        cpus=list(spec.cpus) if spec.cpus else None,
        log_facts=parse_log(log_text),
        diagnosis=diag,
        log_tail=exc.log_tail,
    )


def _hold(server: ManagedServer, out: Output, before: Said) -> Said:
    """Serves until Ctrl-C or vLLM's exit; ``before`` with how it ended."""
    out.status(f"serving at {server.url} (Ctrl-C to stop)")
    try:
        while server.alive():
            time.sleep(1.0)
    except KeyboardInterrupt:
        return said("serve.held_stopped", before=before)
    code = server.proc.returncode if server.proc else None
    return said("serve.held_exited", before=before, code=code)


def _stop_info(server: ManagedServer) -> StopInfo | None:
    report = server.stop()
    if report is None:
        return None
    return StopInfo(
        signals=report.signals,
        seconds=report.seconds,
        leftover_pids=report.leftover_pids,
        swept_tmp_files=len(report.swept),
    )


def serve_model(
    options: ServeOptions, out: Output | None = None, *, keep: bool = False
) -> tuple[ServeResult, ManagedServer | None]:
    """Start, wait for readiness, record; then stop (default), hold, or keep it running for
    later gates (``keep``: the caller or process exit stops it)."""
    out = out or Output()
    options.run_dir.mkdir(parents=True, exist_ok=True)
    plan, spec, python = prepare(options)
    server = ManagedServer(spec)
    out.status(f"starting vLLM ({plan.stage} weights) at {spec.url}, log {spec.log_path}")
    kept: ManagedServer | None = None
    with terminate_on_signals():
        try:
            server.start()
            server.wait_ready()
        except ServerStartFailed as exc:
            server.stop()
            result = _failed(plan, spec, python, exc, server.log_text())
            result.write_json(options.run_dir / "serve.json")
            return result, None
        except BaseException:
            server.stop()
            raise
        try:
            result = _ready_result(plan, server, spec, python)
            out.status(f"ready: {result.reason}")
            if options.smoke:
                result.smoke = _run_smoke(plan, server, options, out)
                if result.smoke.get("verdict") == "FAIL":
                    result.verdict = "FAIL"
                    result.reason = said("serve.smoke_failed", before=result.reason)
            if options.hold:
                result.reason = _hold(server, out, result.reason)
            if keep and not options.hold:
                kept = server
            else:
                result.stop = _stop_info(server)
        finally:
            if kept is None:
                server.stop()
    result.write_json(options.run_dir / "serve.json")
    return result, kept


def _run_smoke(
    plan: LaunchPlan, server: ManagedServer, options: ServeOptions, out: Output
) -> dict[str, Any]:
    from adaptgate.smoke import SmokeOptions, run_smoke

    smoke = run_smoke(
        SmokeOptions(
            url=server.url,
            model=plan.served_model_name,
            expected_max_model_len=plan.max_model_len,
            thinking=plan.features.thinking,
            tools=plan.features.tools,
            concurrency=options.smoke_concurrency,
        ),
        out,
    )
    smoke.write_json(options.run_dir / "smoke.json")
    data: dict[str, Any] = smoke.model_dump(mode="json")
    return data
