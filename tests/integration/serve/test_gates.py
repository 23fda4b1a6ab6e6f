"""ServeGate and SmokeGate in a run context: Stage A then Stage B on the fake engine, the URL
handed to the smoke gate, skips that say why, and no server left once stop_all() ran."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from adaptgate.gate import RunContext
from adaptgate.record import GateRecord, GateStatus, RunRecord, RunSettings
from adaptgate.serve.gate import ServeGate
from adaptgate.serve.process import stop_all
from conftest import pid_alive, read_pids

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]
CHECKS_DIR = Path(__file__).parents[2] / "unit" / "smoke"


def context(tmp_path: Path, model: str, target: str = "cpu") -> RunContext:
    settings = RunSettings(model=model, target=target)
    record = RunRecord(run_dir=str(tmp_path), settings=settings)
    return RunContext(run_dir=tmp_path, settings=settings, record=record)


def test_serve_gate_runs_both_stages_and_keeps_stage_b(
    fake_vllm: Path, tiny_bf16: Path, tmp_path: Path
) -> None:
    ctx = context(tmp_path, str(tiny_bf16))
    try:
        outcome = ServeGate().run(ctx)
        assert outcome.status is GateStatus.PASS, outcome.reason
        s = outcome.summary
        assert s["url"].startswith("http://127.0.0.1:")
        assert s["stage_a_startup_s"] > 0 and s["stage_b_startup_s"] > 0
        assert s["kv_cache_tokens_reported"] == s["kv_cache_tokens_predicted"] == 1_048_576
        assert (tmp_path / "serve" / "plan" / "RUNBOOK.md").is_file()
        assert (tmp_path / "serve" / "stage-a" / "vllm.log").is_file()
        pids = read_pids(fake_vllm)
        assert len(pids) == 4  # stage A's server + engine (stopped), stage B's (running)
        assert not any(pid_alive(p) for p in pids[:2])
        assert all(pid_alive(p) for p in pids[2:])
    finally:
        stop_all()
    assert not any(pid_alive(p) for p in read_pids(fake_vllm))


def test_serve_gate_skips_targets_this_host_cannot_run(tiny_bf16: Path, tmp_path: Path) -> None:
    if Path("/dev/davinci_manager").exists():
        pytest.skip("this host has Ascend NPUs")
    ctx = context(tmp_path, str(tiny_bf16), target="ascend-a2")
    outcome = ServeGate().run(ctx)
    assert outcome.status is GateStatus.SKIPPED
    assert "needs Ascend NPUs" in outcome.reason
    assert any(p.name == "RUNBOOK.md" for p in outcome.artifacts)


def test_smoke_gate_checks_the_served_url(tmp_path: Path) -> None:
    sys.path.insert(0, str(CHECKS_DIR))
    from fake_openai import FakeConfig, FakeOpenAI

    from adaptgate.smoke.gate import SmokeGate

    ctx = context(tmp_path, "m")
    assert SmokeGate().run(ctx).status is GateStatus.SKIPPED  # no serve gate yet
    with FakeOpenAI(FakeConfig(model="tiny")) as fake:
        ctx.record.put(
            GateRecord(
                name="serve",
                title="Serve",
                status=GateStatus.PASS,
                reason="ok",
                summary={"url": fake.url, "served_model_name": "tiny", "max_model_len": 4096},
            )
        )
        outcome = SmokeGate().run(ctx)
    assert outcome.status is GateStatus.PASS, outcome.reason
    assert outcome.summary["protocol"] == "PASS"
    assert outcome.summary["failed_quality"] == ["chinese", "arithmetic"]
    assert (tmp_path / "smoke" / "smoke.json").is_file()


def test_serve_gate_with_url_uses_the_running_server_and_starts_nothing(
    tiny_bf16: Path, tmp_path: Path
) -> None:
    sys.path.insert(0, str(CHECKS_DIR))
    from fake_openai import FakeConfig, FakeOpenAI

    settings = RunSettings(model=str(tiny_bf16), target="ascend-a2", device="910b4")
    with FakeOpenAI(FakeConfig(model="tiny")) as fake:
        ctx = context(tmp_path, str(tiny_bf16), target="ascend-a2")
        ctx.settings = settings.model_copy(update={"url": fake.url})
        outcome = ServeGate().run(ctx)
    assert outcome.status is GateStatus.PASS, outcome.reason
    assert outcome.summary["url"] == fake.url.rstrip("/")
    assert outcome.summary["served_model_name"] == "tiny"
    assert outcome.summary["external"] is True
    assert (tmp_path / "serve" / "plan" / "RUNBOOK.md").is_file()  # the plan is still written
    assert not (tmp_path / "serve" / "stage-a").exists()
    # nothing answers there any more: a FAIL that says so
    ctx.settings = settings.model_copy(update={"url": fake.url})
    down = ServeGate().run(ctx)
    assert down.status is GateStatus.FAIL
    assert "no OpenAI-compatible server answers" in down.reason


def test_serve_gate_with_url_and_server_log_records_the_servers_own_facts(
    fake_vllm: Path, tiny_bf16: Path, tmp_path: Path
) -> None:
    """A server launched elsewhere (the fake vLLM, its stdout as the log): the gate records its
    /version, model list and the log's launch arguments, and lists how they depart from the
    plan: another served name, max_model_len 2048, and --dtype the plan does not pass."""
    import os
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "server.log"
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", "/models/m"]
    argv += ["--port", str(port), "--served-model-name", "tiny", "--max-model-len", "2048"]
    argv += ["--dtype", "float16"]
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        ctx = context(tmp_path / "run", str(tiny_bf16))
        ctx.settings = ctx.settings.model_copy(update={"url": url, "server_log": str(log)})
        outcome = ServeGate().run(ctx)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert outcome.status is GateStatus.PASS, outcome.reason
    s = outcome.summary
    assert s["server_version"] == "0.0.0+fake" and s["served_model_name"] == "tiny"
    assert s["max_model_len"] == 2048 and s["plan_differences"] > 0
    assert "difference(s) from the plan" in outcome.reason
    server = outcome.result.server  # type: ignore[union-attr]
    assert server is not None and server.log == str(log)
    assert server.log_facts and server.log_facts.vllm_version == "0.0.0+fake"
    assert server.log_facts.launch_args and server.log_facts.launch_args["dtype"] == "float16"
    kinds = {d.flag: d.kind for d in server.differences}
    assert kinds["--served-model-name"] == "model" and kinds["--max-model-len"] == "differs"
    assert kinds["--dtype"] == "extra"
