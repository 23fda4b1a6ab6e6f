"""The benchmark against the real vLLM CPU server on a tiny demo checkpoint (started once)."""

import pytest

pytest.importorskip("aiohttp", reason="aiohttp (the benchmark client) is not installed")

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def vllm_url(tmp_path_factory, vllm_server):
    from adaptgate.demo import DemoSpec, make_model

    work = tmp_path_factory.mktemp("vllm")
    model = make_model(work / "model", DemoSpec(arch="qwen3", format="bf16"))
    with vllm_server(model, work, name="demo", max_model_len=1024) as server:
        yield server.url


def test_bench_real_vllm(vllm_url):
    from adaptgate.bench.api import build_config
    from adaptgate.bench.runner import run_benchmark

    cfg = build_config(
        {
            "endpoint": {"url": vllm_url},
            "dataset": {"input_len": 64, "output_len": 32},
            "load": {"rate": 8, "concurrency": 8, "num_requests": 32, "warmup_requests": 4},
            "output": {"scrape_interval_s": 0.5},
        }
    )
    result, records = run_benchmark(cfg)
    m = result.metrics
    assert m.completed == 32 and m.failed == 0
    assert result.server.model == "demo" and result.server.version
    # prompts aligned with the served model's tokenizer through /tokenize: exactly 64 tokens
    assert result.server.tokenizer == "server:demo" and result.server.tokenizer_fingerprint
    assert all(r.usage_prompt_tokens == 64 for r in records)
    # ignore_eos honoured: every request generated exactly max_tokens
    assert all(r.output_tokens == 32 and r.finish_reason == "length" for r in records)
    assert m.tpot_ms.p50 > 0 and m.ttft_ms.p50 >= m.ttft_first_chunk_ms.p50
    names = set().union(*(s.values for s in result.server_metrics))
    assert "vllm:num_requests_running" in names
    client_checks = {c.name: c.status for c in result.validity.checks}
    assert client_checks.get("output_length") == "ok"


def test_chat_endpoint(vllm_url):
    from adaptgate.bench.api import build_config
    from adaptgate.bench.runner import run_benchmark

    cfg = build_config(
        {
            "endpoint": {"url": vllm_url, "api": "chat"},
            "dataset": {"input_len": 32, "output_len": 16},
            "load": {"mode": "closed", "concurrency": 4, "num_requests": 12},
        }
    )
    result, records = run_benchmark(cfg)
    assert result.metrics.completed == 12
    # the chat template adds tokens beyond the nominal prompt: reported, not hidden
    assert all(r.usage_prompt_tokens > 32 for r in records)
    assert any("prompt" in w.text for w in result.validity.warnings)
