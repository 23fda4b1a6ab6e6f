"""`adaptgate serve` end to end with the fake engine: a clean start/stop with the recorded
numbers, a failed launch diagnosed, and killing adaptgate (SIGINT, SIGTERM, SIGKILL; while
waiting for readiness or while holding) leaves no engine process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from adaptgate.serve.process import free_port
from conftest import pid_alive, read_pids

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]
LOGS = Path(__file__).parents[2] / "data" / "logs"
RUN_SERVE = (
    "import sys; from adaptgate.cli.serve import command; command(prog_name='adaptgate serve')"
)


def serve_cmd(model: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-c", RUN_SERVE, str(model), "--target", "cpu",
        "--run-dir", str(run_dir), *extra,
    ]  # fmt: skip


def test_serve_records_startup_and_kv_capacity(
    fake_vllm: Path, tiny_bf16: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    done = subprocess.run(
        [*serve_cmd(tiny_bf16, run, "--stage", "dummy", "--port", "0"), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["verdict"] == "PASS"
    assert result["stage"] == "dummy"
    assert "--load-format" in result["command"]
    assert result["kv_cache_tokens_reported"] == 1_048_576
    # inspect: 2 layers x 2 (K,V) x 2 kv heads x 64 x 2 bytes = 1 KiB per token; 1 GiB of KV
    assert result["kv_cache_tokens_predicted"] == 1_048_576
    assert result["kv_ratio"] == 1.0
    assert result["startup_seconds"] > 0
    assert result["stop"]["leftover_pids"] == []
    assert (run / "vllm.log").is_file() and (run / "serve.json").is_file()
    assert all(not pid_alive(p) for p in read_pids(fake_vllm))


def test_failed_launch_comes_back_diagnosed(
    fake_vllm: Path, tiny_bf16: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "crash")
    monkeypatch.setenv("FAKE_VLLM_LOG", str(LOGS / "cpu_fp8_no_amx.log"))
    done = subprocess.run(
        [*serve_cmd(tiny_bf16, tmp_path / "run", "--port", "0"), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["verdict"] == "FAIL"
    assert result["diagnosis"]["findings"][0]["id"] == "cpu_fp8_needs_amx"
    assert "--to bf16" in result["reason"]["text"]
    assert "AMX" in result["log_tail"]


def test_port_in_use_is_a_clear_error(fake_vllm: Path, tiny_bf16: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = str(holder.getsockname()[1])
        done = subprocess.run(
            serve_cmd(tiny_bf16, tmp_path / "run", "--port", port),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 2
    assert f"port {port}" in done.stderr and "already in use" in done.stderr
    assert "fix:" in done.stderr


def _wait(predicate, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.mark.parametrize(
    ("sig", "when"),
    [
        (signal.SIGINT, "serving"),
        (signal.SIGTERM, "serving"),
        (signal.SIGKILL, "serving"),
        (signal.SIGTERM, "starting"),
        (signal.SIGKILL, "starting"),
    ],
    ids=lambda v: getattr(v, "name", v),
)
def test_killing_adaptgate_leaves_no_engine_behind(
    fake_vllm: Path,
    tiny_bf16: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sig: signal.Signals,
    when: str,
) -> None:
    if when == "starting":
        monkeypatch.setenv("FAKE_VLLM_DELAY", "60")
    port = free_port()
    proc = subprocess.Popen(
        serve_cmd(tiny_bf16, tmp_path / "run", "--hold", "--port", str(port)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        assert _wait(lambda: len(read_pids(fake_vllm)) >= 2), "the engine never started"
        if when == "serving":
            assert _wait(lambda: _healthy(port)), "the engine never became healthy"
        engine = read_pids(fake_vllm)
        assert all(pid_alive(p) for p in engine)
        os.kill(proc.pid, sig)
        proc.wait(timeout=90)
        # SIGKILL gives adaptgate no chance: its watchdog must do the job
        assert _wait(lambda: not any(pid_alive(p) for p in engine), 60), (
            f"engine processes alive after {sig.name}: {[p for p in engine if pid_alive(p)]}"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig != signal.SIGKILL:
        assert proc.returncode in {0, 130}


def test_serve_smoke_records_the_checks(fake_vllm: Path, tiny_bf16: Path, tmp_path: Path) -> None:
    """The fake engine serves /v1/models but no completions: the smoke run says so."""
    run = tmp_path / "run"
    done = subprocess.run(
        [*serve_cmd(tiny_bf16, run, "--port", "0", "--smoke"), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    first = result["smoke"]["checks"][0]
    assert (first["id"], first["status"]) == ("models", "PASS")
    assert result["smoke"]["protocol_verdict"] == "FAIL"
    assert "smoke protocol checks failed" in result["reason"]["text"]
    assert (run / "smoke.json").is_file()
