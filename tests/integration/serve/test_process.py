"""ManagedServer against the fake engine: readiness, clean stop of the whole process group,
escalation to SIGTERM/SIGKILL, private temporary files, port checks, startup failures."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from adaptgate.errors import PortInUse, ServerStartFailed, VllmNotFound
from adaptgate.serve.process import (
    ManagedServer,
    ServerSpec,
    check_vllm,
    free_port,
    group_members,
    sweep_stale,
    tmp_snapshot,
)
from conftest import pid_alive, read_pids

pytestmark = pytest.mark.timeout(120)


def spec_for(tmp_path: Path, *, port: int | None = None, **kw: object) -> ServerSpec:
    port = port or free_port()
    argv = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(tmp_path),
        "--served-model-name",
        "tiny",
        "--port",
        str(port),
        "--max-model-len",
        "4096",
    ]
    return ServerSpec(
        argv=argv,
        log_path=tmp_path / "run" / "vllm.log",
        port=port,
        served_model_name="tiny",
        ready_timeout_s=60,
        stop_grace_s=3,
        term_grace_s=2,
        **kw,  # type: ignore[arg-type]
    )


def test_ready_then_stop_leaves_no_process_and_no_tmp_files(
    fake_vllm: Path, tmp_path: Path
) -> None:
    before = tmp_snapshot(Path(tempfile.gettempdir()))
    with ManagedServer(spec_for(tmp_path)) as server:
        ready = server.wait_ready()
        assert ready.max_model_len == 4096
        assert ready.models["data"][0]["id"] == "tiny"
        pgid = server.pgid
        assert pgid is not None
        members = group_members(pgid)
        assert len(members) >= 2  # server + engine child, one group
        private = server.tmpdir
        assert private is not None
        assert any(p.name.startswith("vllm_dist_") for p in private.iterdir())
    report = server.stop_report
    assert report is not None
    assert report.signals == ["SIGINT"]
    assert report.leftover_pids == []
    assert group_members(pgid) == []
    assert not private.exists()
    assert tmp_snapshot(Path(tempfile.gettempdir())) - before == set()
    assert "CPU KV cache size" in (tmp_path / "run" / "vllm.log").read_text()


def test_stubborn_engine_gets_sigterm(
    fake_vllm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "stubborn")
    server = ManagedServer(spec_for(tmp_path))
    server.start()
    server.wait_ready()
    report = server.stop()
    assert report is not None
    assert report.signals == ["SIGINT", "SIGTERM"]
    assert all(not pid_alive(p) for p in read_pids(fake_vllm))


def test_immortal_engine_child_gets_sigkill(
    fake_vllm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "immortal_child")
    server = ManagedServer(spec_for(tmp_path))
    server.start()
    server.wait_ready()
    report = server.stop()
    assert report is not None
    assert report.signals == ["SIGINT", "SIGTERM", "SIGKILL"]
    assert report.leftover_pids == []
    assert all(not pid_alive(p) for p in read_pids(fake_vllm))


def test_port_in_use_is_refused_before_starting(fake_vllm: Path, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = ManagedServer(spec_for(tmp_path, port=port))
        with pytest.raises(PortInUse, match=f"port {port}"):
            server.start()
    assert server.proc is None


def test_crash_at_startup_raises_with_the_log(
    fake_vllm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = Path(__file__).parents[2] / "data" / "logs" / "cpu_fp8_no_amx.log"
    monkeypatch.setenv("FAKE_VLLM_MODE", "crash")
    monkeypatch.setenv("FAKE_VLLM_LOG", str(log))
    with ManagedServer(spec_for(tmp_path)) as server, pytest.raises(ServerStartFailed) as info:
        server.wait_ready()
    assert "exited with code 1" in info.value.message
    assert "AMX" in info.value.log_tail


def test_engine_failure_with_a_lingering_api_process_fails_fast(
    fake_vllm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "fatal_hang")
    monkeypatch.setattr("adaptgate.serve.process.FATAL_GRACE_S", 1.0)
    t0 = time.monotonic()
    with (
        ManagedServer(spec_for(tmp_path)) as server,
        pytest.raises(ServerStartFailed, match="engine"),
    ):
        server.wait_ready()
    assert time.monotonic() - t0 < 30  # not the 60 s ready deadline


def test_python_without_vllm_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("this interpreter has a real vllm")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(VllmNotFound, match="cannot import vllm") as info:
        check_vllm(sys.executable)
    assert info.value.fix and "--vllm-python" in info.value.fix
    with pytest.raises(VllmNotFound, match="cannot run"):
        check_vllm(str(tmp_path / "no-such-python"))


def test_sweep_removes_only_new_unheld_files(tmp_path: Path) -> None:
    old = tmp_path / f"vllm_dist_{uuid.uuid4().hex}"
    old.write_text("old")
    before = tmp_snapshot(tmp_path)
    new = tmp_path / f"vllm_dist_{uuid.uuid4().hex}"
    new.write_text("new")
    held = tmp_path / f"vllm_dist_{uuid.uuid4().hex}"
    held.write_text("held")
    other = tmp_path / "unrelated.txt"
    other.write_text("x")
    live = socket.socket(socket.AF_UNIX)
    live_path = tmp_path / str(uuid.uuid4())
    live.bind(str(live_path))
    with held.open() as fh:
        assert fh.readable()
        removed = sweep_stale(tmp_path, before)
    live.close()
    assert removed == [str(new)]
    assert old.exists() and held.exists() and other.exists() and live_path.exists()
    assert os.getuid() == old.stat().st_uid


def test_every_process_of_the_server_runs_on_the_pinned_cpus(tmp_path: Path) -> None:
    """The mask is set before exec, so the server and every process it starts inherit it (vLLM's
    API server, engine core and workers alike)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs to tell a pinned process from an unpinned one")
    # the log's first line echoes the argv: the printed markers are assembled at run time
    child = "import os; print('chi' + 'ld', sorted(os.sched_getaffinity(0)), flush=True)"
    parent = (
        "import os, subprocess, sys, time; print('par' + 'ent', sorted(os.sched_getaffinity(0)), "
        f"flush=True); subprocess.run([sys.executable, '-c', {child!r}]); time.sleep(60)"
    )
    spec = ServerSpec(
        argv=[sys.executable, "-c", parent],
        log_path=tmp_path / "vllm.log",
        port=free_port(),
        stop_grace_s=2,
        cpus=(cpus[0],),
    )
    with ManagedServer(spec) as server:
        deadline = time.monotonic() + 30
        while "child [" not in server.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = server.log_text()
    assert f"parent [{cpus[0]}]" in log and f"child [{cpus[0]}]" in log, log
    assert sorted(os.sched_getaffinity(0)) == cpus  # this process is not pinned
