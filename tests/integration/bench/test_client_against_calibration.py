"""The client against the calibration server: schedule accuracy, metric boundaries, failures.

Timing assertions are ratios and tolerances against the server's configured schedule, never
absolute wall-clock limits on the test itself."""

import pytest

pytest.importorskip("aiohttp", reason="aiohttp (the benchmark client) is not installed")

from adaptgate.bench.api import build_config
from adaptgate.bench.calibration_server import Schedule, launch
from adaptgate.bench.runner import run_benchmark

pytestmark = pytest.mark.timeout(120)


def config(url: str, **sections):
    data = {
        "endpoint": {"url": url},
        "dataset": {"input_len": 16, "output_len": 8},
        "load": {"rate": 50, "num_requests": 60, "arrival": "constant"},
        "output": {"scrape_interval_s": 0.2},
    }
    for key, values in sections.items():
        data[key] = {**data.get(key, {}), **values}
    return build_config(data)


@pytest.fixture(scope="module")
def server():
    with launch(Schedule(ttft_ms=20, itl_ms=5)) as (url, _):
        yield url


def test_schedule_and_metric_boundaries(server):
    result, records = run_benchmark(config(server))
    m = result.metrics
    assert m.completed == 60 and m.failed == 0
    # the delivered schedule: constant 50 req/s, measured from the client's own dispatch times
    assert result.client.delivered_rate == pytest.approx(50.0, rel=0.02)
    # TTFT cannot be below the server's 20 ms; TPOT is the 5 ms ITL (8 tokens)
    assert 20.0 <= m.ttft_ms.p50 < 20.0 * 1.5
    assert m.tpot_ms.p50 == pytest.approx(5.0, rel=0.2)
    assert m.output_tokens.min == m.output_tokens.max == 8
    assert all(r.usage_completion_tokens == r.client_token_chunks == 8 for r in records)
    assert result.server.tokenizer.startswith("server:")  # /tokenize aligned the prompts
    assert all(r.usage_prompt_tokens == 16 for r in records)
    assert result.server_metrics and "vllm:num_requests_running" in result.server_metrics[0].values
    assert result.repro.prompt_set_hash and result.server.version == "calibration-2"
    # the kernel's account of the client's waits for a CPU, one sample per 10 ms of run
    wait = result.client.cpu_wait_ms
    assert wait is not None and wait.count > 50 and wait.min >= 0
    assert any(c.name == "client_cpu_wait_p99_ms" for c in result.validity.checks)


def test_chat_role_chunk_and_reasoning():
    with launch(Schedule(ttft_ms=20, itl_ms=5, reasoning_tokens=3)) as (url, _):
        result, _ = run_benchmark(config(url, endpoint={"api": "chat"}, load={"num_requests": 20}))
    m = result.metrics
    # the role-only chunk leaves at once: vLLM's definition reads ~0 ms, ours waits for a token
    assert m.ttft_first_chunk_ms.p50 < 20.0 <= m.ttft_ms.p50
    # the first content token comes 3 reasoning tokens (3 x 5 ms) after the first token
    assert m.ttfc_ms.p50 - m.ttft_ms.p50 == pytest.approx(15.0, abs=5.0)


def test_closed_loop_keeps_concurrency():
    with launch(Schedule(ttft_ms=20, itl_ms=5)) as (url, _):
        result, _ = run_benchmark(
            config(url, load={"mode": "closed", "concurrency": 4, "num_requests": 40, "rate": None})
        )
    assert result.metrics.peak_concurrency == 4
    assert result.metrics.mean_concurrency == pytest.approx(4.0, rel=0.25)
    assert result.client.delivered_rate is None  # no schedule to deliver in a closed loop


def test_rate_with_concurrency_cap_queues_on_the_client():
    with launch(Schedule(ttft_ms=50, itl_ms=10)) as (url, _):
        result, _ = run_benchmark(
            config(url, load={"rate": 100, "concurrency": 2, "num_requests": 30})
        )
    m = result.metrics
    assert m.peak_concurrency == 2
    # 30 requests of ~120 ms through 2 slots: later ones wait on the client, and it shows
    assert m.queue_ms.max > 500 and m.e2el_incl_queue_ms.p99 > m.e2el_ms.p99 + 400


def test_multi_turn():
    with launch(Schedule(ttft_ms=5, itl_ms=1)) as (url, _):
        result, records = run_benchmark(
            config(
                url,
                endpoint={"api": "chat"},
                dataset={"kind": "multiturn", "turns": 3},
                load={"num_requests": 5},
            )
        )
    assert result.metrics.completed == 15
    by_conv = {}
    for r in records:
        by_conv.setdefault(r.conversation, []).append(r)
    for turns in by_conv.values():
        assert [t.turn for t in turns] == [0, 1, 2]
        # the history grows: each turn's prompt is longer than the one before
        lengths = [t.usage_prompt_tokens for t in turns]
        assert lengths == sorted(lengths) and lengths[0] < lengths[-1]


@pytest.mark.slow
def test_two_worker_processes_share_one_schedule(server):
    result, records = run_benchmark(
        config(server, load={"rate": 100, "num_requests": 200, "workers": 2})
    )
    assert result.client.workers == 2 and len(result.client.cpu_share) == 2
    assert {r.worker for r in records} == {0, 1}
    assert result.metrics.completed == 200
    assert result.client.delivered_rate == pytest.approx(100.0, rel=0.03)


def test_an_invalid_measurement_is_taken_again_and_every_attempt_is_kept(
    server, tmp_path, monkeypatch
):
    import json

    from adaptgate.bench import runner
    from adaptgate.bench.api import run
    from adaptgate.bench.gate import verdict
    from adaptgate.record import GateStatus

    # a limit no client meets: every attempt INVALID, for the reason the limit names
    cfg = config(
        server,
        load={"num_requests": 20},
        validity={"max_loop_lag_p99_ms": 1e-9, "retries": 2},
        output={"dir": str(tmp_path), "plots": False},
    )
    result = run(cfg).result
    assert not result.valid
    assert [a.attempt for a in result.earlier_attempts] == [1, 2]
    for attempt in result.earlier_attempts:
        assert attempt.validity == "INVALID"
        assert any("event loop lag" in why.text for why in attempt.reasons)
        assert attempt.request_throughput > 0
        assert (tmp_path / f"attempt-{attempt.attempt}" / "bench.json").is_file()
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert len(saved["earlier_attempts"]) == 2 and saved["validity"]["status"] == "INVALID"
    status, reason = verdict([result])
    assert status is GateStatus.INCONCLUSIVE and "INVALID in all 3 attempts" in reason.text
    # scripted: INVALID, then VALID -> one earlier attempt kept, PASS saying so
    valid = result.model_copy(
        update={"validity": result.validity.model_copy(update={"status": "VALID", "reasons": []})}
    )
    script = iter([(result, []), (valid, [])])
    monkeypatch.setattr(runner, "run_benchmark", lambda *a: next(script))
    again = run(cfg.model_copy(update={"output": cfg.output.model_copy(update={"dir": None})}))
    assert again.result.valid and [a.attempt for a in again.result.earlier_attempts] == [1]
    status, reason = verdict([again.result])
    assert status is GateStatus.PASS and "VALID after 1 INVALID attempt" in reason.text


def test_the_client_runs_on_its_cpus_and_gives_them_back(server):
    import os

    cpus = sorted(os.sched_getaffinity(0))
    result, _ = run_benchmark(config(server, load={"client_cpus": [cpus[-1]], "num_requests": 20}))
    assert result.client.client_cpus == [cpus[-1]] and result.client.workers == 1
    assert result.metrics.completed == 20
    assert sorted(os.sched_getaffinity(0)) == cpus
    with pytest.raises(Exception, match="cannot pin the client"):
        run_benchmark(config(server, load={"client_cpus": [max(cpus) + 64]}))
