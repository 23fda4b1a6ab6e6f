"""Regenerate ``run_full.json`` (not run by the tests; run it when a gate's result changes):

    .venv/bin/python tests/unit/report/data/make_run_full.py

inspect, convert (w8a8-dynamic), the serve plan, the precision comparison (CPU FP32 reference of
the FP8 model vs the W8A8_DYNAMIC simulation) and the benchmark (against the calibration server)
are real results of adaptgate's code on the tiny FP8 Qwen3 demo model. The serve stages and the
smoke checks need a vLLM this machine may lack: their results are built with the gates' own
result models, with the values of a CPU run. kvcache runs for real on the FP8 and C8 caches.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "run_full.json"
RUN_DIR = "runs/Qwen3-tiny-FP8-ascend-a2"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gate(
    name: str,
    title: str,
    status: str,
    reason: Any,
    seconds: float,
    summary: dict[str, Any],
    result: Any,
    artifacts: list[str],
) -> dict[str, Any]:
    said = reason if hasattr(reason, "said") else None  # a catalogue sentence, else old text
    return {
        "name": name,
        "title": title,
        "status": status,
        "reason": str(said.said.text) if said is not None else reason,
        "reason_id": said.said.id if said is not None else None,
        "reason_params": said.said.params if said is not None else {},
        "started": "2026-11-22T02:20:00+00:00",
        "finished": "2026-11-22T02:21:00+00:00",
        "seconds": seconds,
        "summary": summary,
        "artifacts": artifacts,
        "result": None if result is None else json.loads(result.to_json()),
        "exit_code": None,
    }


def main() -> None:
    from adaptgate.demo import make_model
    from adaptgate.demo.spec import make_spec
    from adaptgate.pipeline import runner
    from adaptgate.record import RunSettings

    tmp = Path(tempfile.mkdtemp())
    model = make_model(tmp / "Qwen3-tiny-FP8", make_spec(arch="qwen3", format="fp8_block"))
    run_dir = tmp / "run"
    runner.GATES = {name: runner.GATES[name] for name in ("inspect", "convert")}
    import os

    os.environ["ADAPTGATE_CONVERT_TO"] = "w8a8-dynamic"
    settings = RunSettings(model=str(model), target="ascend-a2", device="910b4")
    record = runner.run_pipeline(runner.RunOptions(settings, run_dir, fresh=True))
    data = json.loads(record.to_json())
    gates = data["gates"]

    # serve: the real plan; this host has no NPU, so the stages are built from the models
    from adaptgate.gate import RunContext
    from adaptgate.messages import message, said
    from adaptgate.serve.doctor import Diagnosis, Finding, signatures
    from adaptgate.serve.gate import ServeGate
    from adaptgate.serve.models import ServeGateResult, ServeResult
    from adaptgate.serve.shell import engine_argv

    ctx = RunContext(run_dir=run_dir, settings=settings, record=record)
    outcome = ServeGate().run(ctx)
    plan = outcome.result.plan  # type: ignore[union-attr]
    url = "http://127.0.0.1:8000"
    a = ServeResult(
        verdict="PASS",
        reason=said("serve.ready", seconds=38.2),
        stage="dummy",
        url=url,
        python="python3",
        command=engine_argv(plan),
        log="serve/stage-a/vllm.log",
        plan=plan,
        startup_seconds=38.2,
        served_models=[plan.served_model_name],
        reported_max_model_len=plan.max_model_len,
    )
    acl = next(sig for sig in signatures() if sig.id == "acl_init_107001")
    diag = Diagnosis(
        log="serve/stage-b/vllm.log",
        lines=812,
        verdict="diagnosed",
        findings=[
            Finding(
                id=acl.id,
                title=acl.title,
                cause=acl.cause,
                fix=acl.fix,
                line=311,
                hits=1,
                evidence=["RuntimeError: aclInit failed, error code 107001"],
            )
        ],
    )
    predicted = plan.memory.predicted_kv_tokens if plan.memory else 720384
    reported = int(predicted * 0.9765)
    b = ServeResult(
        verdict="PASS",
        reason=said(
            "serve.kv_reported",
            before=said("serve.ready", seconds=44.9),
            reported=reported,
            predicted=predicted,
        ),
        stage="real",
        url=url,
        python="python3",
        command=engine_argv(plan),
        log="serve/stage-b/vllm.log",
        plan=plan,
        startup_seconds=44.9,
        served_models=[plan.served_model_name],
        reported_max_model_len=plan.max_model_len,
        kv_cache_tokens_reported=reported,
        kv_cache_tokens_predicted=predicted,
        kv_ratio=0.9765,
        diagnosis=diag,
    )
    serve = ServeGateResult(plan=plan, stage_a=a, stage_b=b)
    gates.append(
        _gate(
            "serve",
            "Serve (Stage A dummy weights, Stage B real weights)",
            "PASS",
            message("serve.stage", stage="Stage B", reason=b.reason),
            85.3,
            {
                "served_model_name": plan.served_model_name,
                "url": url,
                "stage_a_startup_s": 38.2,
                "stage_b_startup_s": 44.9,
                "kv_cache_tokens_reported": reported,
                "kv_ratio": 0.9765,
            },
            serve,
            ["serve/plan/RUNBOOK.md", "serve/stage-b/vllm.log"],
        )
    )

    from adaptgate.smoke.models import CheckResult, CheckStatus, Evidence, SmokeResult

    def check(
        cid: str, title: str, cat: str, status: CheckStatus, reason: Any, resp: str
    ) -> CheckResult:
        return CheckResult(
            id=cid,
            title=title,
            category=cat,
            status=status,
            reason=reason,
            evidence=[Evidence(status_code=200, response=resp)],
            seconds=0.4,
        )

    smoke = SmokeResult(
        url=url,
        model=plan.served_model_name,
        checks=[
            check(
                "models",
                "/v1/models lists the served name",
                "protocol",
                CheckStatus.PASS,
                said("smoke.model_listed", model="qwen3-tiny", length=40960),
                '{"data":[{"id":"qwen3-tiny"}]}',
            ),
            check(
                "chat",
                "chat completion returns text",
                "protocol",
                CheckStatus.PASS,
                said("smoke.chars_in_content", chars=23),
                "hello there",
            ),
            check(
                "max_tokens",
                "max_tokens honoured",
                "protocol",
                CheckStatus.PASS,
                said("smoke.max_tokens_honoured", used=8),
                "",
            ),
            check(
                "chinese",
                "a Chinese question gets a CJK answer",
                "quality",
                CheckStatus.FAIL,
                said("smoke.cjk_low", share="12%"),
                "the the the",
            ),
            check(
                "arithmetic",
                "120 km in 2 hours",
                "quality",
                CheckStatus.FAIL,
                said("smoke.no_sixty", numbers="[]"),
                "km km",
            ),
        ],
        protocol_verdict="PASS",
        quality_verdict="FAIL",
        verdict="PASS",
        counts={"PASS": 3, "FAIL": 2, "SKIPPED": 0},
    )
    gates.append(
        _gate(
            "smoke",
            "Smoke checks (protocol, then model quality)",
            "PASS",
            message(
                "smoke.verdict_failed_quality",
                protocol="PASS",
                quality="FAIL",
                failed="`chinese`, `arithmetic`",
            ),
            6.1,
            {
                "protocol": "PASS",
                "quality": "FAIL",
                "counts": smoke.counts,
                "failed_protocol": [],
                "failed_quality": ["chinese", "arithmetic"],
            },
            smoke,
            ["smoke/smoke.json"],
        )
    )

    # precision: the real gate (CPU FP32 reference, the W8A8_DYNAMIC simulation of the converted
    # model compared with it); no server here, so its served-model check is SKIPPED
    from adaptgate.precision.gate import PrecisionGate

    prec = PrecisionGate(max_new_tokens=8).run(ctx)
    gates.append(
        _gate(
            "precision",
            PrecisionGate.title,
            prec.status.value,
            said(prec.reason_id, **prec.reason_params) if prec.reason_id else prec.reason,
            24.0,
            prec.summary,
            prec.result,
            [str(p.relative_to(run_dir)) for p in prec.artifacts],
        )
    )

    # kvcache: the real gate, asked for both an FP8 (vLLM) and the C8 (vllm-ascend) cache
    from adaptgate.kvcache.gate import KVCacheGate

    os.environ["ADAPTGATE_KVCACHE"] = "fp8_e4m3,int8_c8"
    ctx.settings = settings.with_environment()  # what a run does with the environment
    kv = KVCacheGate().run(ctx)
    gates.append(
        _gate(
            "kvcache",
            KVCacheGate.title,
            kv.status.value,
            said(kv.reason_id, **kv.reason_params) if kv.reason_id else kv.reason,
            31.0,
            kv.summary,
            kv.result,
            [str(p.relative_to(run_dir)) for p in kv.artifacts],
        )
    )

    # bench: the real client against the calibration server
    port = _port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from adaptgate.cli.bench import command; command()",
            "calibration-server",
            "--port",
            str(port),
        ]
    )
    try:
        time.sleep(2.0)
        from adaptgate.bench.api import build_config, run
        from adaptgate.bench.gate import _summary, default_scenario, verdict

        cfg = default_scenario("cpu", f"http://127.0.0.1:{port}", None)
        cfg["output"] = {"dir": str(run_dir / "bench")}
        result = run(build_config(cfg))
    finally:
        server.terminate()
        server.wait()
    status, reason = verdict([result.result])  # type: ignore[list-item]
    gates.append(
        _gate(
            "bench",
            "Serving benchmark",
            status.value,
            reason,
            12.3,
            _summary(result.result),
            result.result,
            [str(p.relative_to(run_dir)) for p in result.files],
        )
    )
    data["gates"] = gates
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    text = text.replace(str(run_dir), RUN_DIR).replace(str(tmp), "/models")
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} from {run_dir}")


if __name__ == "__main__":
    main()
