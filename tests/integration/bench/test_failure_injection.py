"""Failures are counted by reason and the run still produces its result."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("aiohttp", reason="aiohttp (the benchmark client) is not installed")

from adaptgate.bench.api import build_config
from adaptgate.bench.calibration_server import Schedule, launch
from adaptgate.bench.runner import run_benchmark

pytestmark = pytest.mark.timeout(120)


def config(url: str, **load):
    return build_config(
        {
            "endpoint": {"url": url, "timeout_s": 5},
            "dataset": {"input_len": 8, "output_len": 8},
            "load": {"rate": 50, "num_requests": 40, "arrival": "constant", **load},
            "output": {"scrape_metrics": False},
        }
    )


def test_server_killed_mid_run():
    with launch(Schedule(ttft_ms=10, itl_ms=10, die_after=10)) as (url, proc):
        result, records = run_benchmark(config(url))
        assert proc.wait(timeout=10) == 17
    m = result.metrics
    assert m.completed >= 5 and m.failed > 0
    reasons = set(m.failures_by_reason)
    assert reasons <= {"server_disconnected", "connect_error", "stream_ended_without_done"}
    assert "connect_error" in reasons  # requests after the death
    assert len(records) == 40


def test_malformed_chunks_and_http_errors():
    with launch(Schedule(ttft_ms=5, itl_ms=2, malformed_every=4, error_every=5)) as (url, _):
        result, _ = run_benchmark(config(url))
    f = result.metrics.failures_by_reason
    # request n (1-based) errs when n % 5 == 0, else is malformed when n % 4 == 0
    assert f["http_503"] == 8
    assert f["malformed_sse"] == 8
    assert result.metrics.completed == 24
    assert any("failed requests" in w.text for w in result.validity.warnings)


def test_slow_headers_count_in_ttft_and_timeouts():
    with launch(Schedule(ttft_ms=5, itl_ms=1, slow_headers_s=0.3)) as (url, _):
        result, records = run_benchmark(config(url, num_requests=10))
        assert result.metrics.ttft_ms.min >= 300
        assert all(r.headers_at - r.sent_at >= 0.3 for r in records)
        cfg = config(url, num_requests=5).model_copy(deep=True)
        cfg.endpoint.timeout_s = 0.1
        timed_out, _ = run_benchmark(cfg)
    assert timed_out.metrics.failures_by_reason == {"timeout": 5}
    assert timed_out.validity.status == "INVALID"  # nothing succeeded


def test_no_server_is_a_clear_error():
    from adaptgate.errors import ServerUnreachable

    with pytest.raises(ServerUnreachable, match="no server answers"):
        run_benchmark(config("http://127.0.0.1:9"))


@pytest.mark.slow
def test_ctrl_c_writes_partial_results(tmp_path):
    with launch(Schedule(ttft_ms=5, itl_ms=5)) as (url, _):
        cmd = [
            sys.executable,
            "-c",
            "from adaptgate.cli.bench import command; command(prog_name='adaptgate bench')",
            url,
            "--rate",
            "20",
            "-n",
            "400",
            "--out",
            str(tmp_path),
            "-q",
            "--no-plots",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(4)
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 1  # INVALID: interrupted
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["client"]["interrupted"] and data["validity"]["status"] == "INVALID"
    assert 0 < data["metrics"]["completed"] < 400
    lines = (tmp_path / "requests.jsonl").read_text().splitlines()
    assert 0 < len(lines) < 400
