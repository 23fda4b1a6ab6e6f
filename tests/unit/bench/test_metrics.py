import pytest
from bench_timelines import EPOCH, request_a, request_b, request_c

from adaptgate.bench.metrics import DEFINITIONS, BenchMetrics, compute, concurrency, steady_window
from adaptgate.bench.models import SLOConfig
from adaptgate.bench.timeline import finalize


@pytest.fixture
def records():
    return [finalize(ex, EPOCH) for ex in (request_a(), request_b(), request_c())]


def test_timeline_fields(records):
    a, b, c = records
    assert a.ok and b.ok and not c.ok
    assert a.first_chunk_at == pytest.approx(0.010)  # the empty chunk: vLLM's TTFT stop
    assert a.first_token_at == pytest.approx(0.050)  # the first chunk carrying a token
    assert a.last_token_at == pytest.approx(0.090)
    assert a.output_tokens == 4 and a.client_token_chunks == 4 and a.finish_reason == "length"
    assert b.first_chunk_at == pytest.approx(0.061) and b.first_token_at == pytest.approx(0.100)
    assert b.first_content_at == pytest.approx(0.130) and b.reasoning_chunks == 2
    assert c.error == "http_503" and "overloaded" in (c.error_detail or "")


def test_latency_metrics_against_hand_computed_values(records):
    m = compute(records)
    assert m.ttft_ms.count == 2
    assert sorted([m.ttft_ms.min, m.ttft_ms.max]) == pytest.approx([40.0, 48.0])
    assert m.ttft_ms.p50 == pytest.approx(44.0)
    assert m.ttft_first_chunk_ms.min == pytest.approx(1.0)  # b's role chunk, 1 ms after sending
    assert m.ttft_first_chunk_ms.max == pytest.approx(8.0)
    assert [m.ttfc_ms.min, m.ttfc_ms.max] == pytest.approx([48.0, 70.0])  # b: content at 130 ms
    assert m.tpot_ms.mean == pytest.approx((90 - 50) / 3)  # both: 40 ms over 3 gaps
    assert (
        m.itl_ms.count == 6
        and m.itl_ms.min == pytest.approx(10)
        and m.itl_ms.max == pytest.approx(20)
    )
    assert [m.e2el_ms.min, m.e2el_ms.max] == pytest.approx([80.0, 88.0])
    assert [m.e2el_incl_queue_ms.min, m.e2el_incl_queue_ms.max] == pytest.approx([90.0, 90.0])
    assert [m.queue_ms.min, m.queue_ms.max] == pytest.approx([0.0, 10.0])  # c: 0, a: 2, b: 10
    assert [m.lateness_ms.min, m.lateness_ms.max] == pytest.approx([0.0, 1.0])
    assert m.decode_speed_tok_s.p50 == pytest.approx(1000 / (40 / 3))
    assert [m.request_output_tok_s.min, m.request_output_tok_s.max] == pytest.approx(
        [4 / 0.088, 4 / 0.080]
    )


def test_throughput_concurrency_failures(records):
    m = compute(records)
    assert m.duration_s == pytest.approx(0.150)
    assert (m.completed, m.failed, m.failures_by_reason) == (2, 1, {"http_503": 1})
    assert m.total_output_tokens == 8 and m.total_input_tokens == 20
    assert m.request_throughput == pytest.approx(2 / 0.150)
    assert m.output_throughput == pytest.approx(8 / 0.150)
    assert m.total_token_throughput == pytest.approx(28 / 0.150)
    assert m.peak_concurrency == 2
    assert m.mean_concurrency == pytest.approx((0.093 + 0.090 + 0.005) / 0.150)
    assert m.output_throughput_per_concurrency == pytest.approx(
        m.output_throughput / m.mean_concurrency
    )
    assert m.request_goodput is None


def test_goodput(records):
    m = compute(records, SLOConfig(ttft_ms=45))
    assert m.request_goodput == pytest.approx(1 / 0.150) and m.goodput_fraction == 0.5
    m = compute(records, SLOConfig(ttft_ms=100, tpot_ms=13.0))
    assert m.request_goodput == 0.0
    m = compute(records, SLOConfig(e2el_ms=85))
    assert m.goodput_fraction == 0.5


def test_concurrency_touching_intervals_do_not_overlap():
    a, b, _ = (finalize(ex, EPOCH) for ex in (request_a(), request_b(), request_c()))
    b2 = b.model_copy(update={"sent_at": a.end_at, "end_at": 0.2})
    peak, mean = concurrency([a, b2], 0.0, 0.2)
    assert peak == 1
    assert mean == pytest.approx((0.093 + (0.2 - 0.095)) / 0.2)


def test_steady_window(records):
    window = steady_window(records)
    assert window == pytest.approx((0.095, 0.100))  # first completion -> last dispatch
    m = compute(records, window=window)
    assert m.window == "steady state" and m.completed == 1  # a ends at 0.095
    assert m.failed == 1  # c was sent in the window


def test_every_metric_has_a_definition():
    dists = [
        n
        for n, f in BenchMetrics.model_fields.items()
        if "Distribution" in str(f.annotation) and n not in ("output_tokens", "input_tokens")
    ]
    for name in [
        *dists,
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
        "request_goodput",
        "peak_concurrency",
        "mean_concurrency",
        "output_throughput_per_concurrency",
        "duration_s",
    ]:
        assert DEFINITIONS.get(name), name
