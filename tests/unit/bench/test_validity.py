import pytest
from bench_timelines import EPOCH, request_a, request_b, request_c

from adaptgate.bench.models import ValidityConfig
from adaptgate.bench.timeline import finalize
from adaptgate.bench.validity import ClientHealth, assess, delivered_rates
from adaptgate.stats import Distribution


def health(**kw) -> ClientHealth:
    base = {
        "workers": 1,
        "scheduled_rate": 100.0,
        "delivered_rate": 100.0,
        "lateness_ms": Distribution.of([0.5, 1.0, 2.0]),
        "loop_lag_ms": Distribution.of([0.1, 0.2]),
        "cpu_share": [0.3],
    }
    return ClientHealth(**{**base, **kw})


@pytest.fixture
def records():
    return [finalize(ex, EPOCH) for ex in (request_a(), request_b())]


def test_valid_run(records):
    v = assess(records, health(), ValidityConfig(), ignore_eos=True)
    assert v.status == "VALID" and not v.reasons
    waits = Distribution.of([0.05] * 99 + [2.0])  # one slow window in 100: p99 below the limit
    v = assess(records, health(cpu_wait_ms=waits), ValidityConfig(), ignore_eos=True)
    assert v.status == "VALID" and any(c.name == "client_cpu_wait_p99_ms" for c in v.checks)


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"delivered_rate": 98.0}, "dispatched"),
        ({"lateness_ms": Distribution.of([50.0] * 10)}, "lateness"),
        ({"loop_lag_ms": Distribution.of([30.0] * 10)}, "loop lag"),
        ({"cpu_share": [0.2, 0.97]}, "97%"),
        ({"cpu_wait_ms": Distribution.of([0.05] * 97 + [2.0] * 3)}, "2.00 ms for a CPU"),
        ({"interrupted": True}, "interrupted"),
        ({"worker_errors": ["client worker 1 died"]}, "died"),
    ],
)
def test_client_limited_runs_are_invalid(records, kw, needle):
    v = assess(records, health(**kw), ValidityConfig(), ignore_eos=True)
    assert v.status == "INVALID"
    assert any(needle in r.text for r in v.reasons), v.reasons


def test_thresholds_are_configurable(records):
    cfg = ValidityConfig(max_rate_shortfall=0.05)
    assert assess(records, health(delivered_rate=98.0), cfg, True).status == "VALID"


def test_workload_warnings(records):
    short = records[0].model_copy(update={"usage_completion_tokens": 3, "finish_reason": "stop"})
    failed = finalize(request_c(), EPOCH)
    v = assess([short, records[1], failed], health(), ValidityConfig(), ignore_eos=True)
    assert v.status == "VALID"
    text = " ".join(w.text for w in v.warnings)
    assert "1 of 2 requests returned other than max_tokens" in text
    assert "'stop'" in text and "http_503" in text
    assert "differ from token chunks" in text  # usage 3 vs 4 chunks


def test_busy_machine_warns(records):
    v = assess(records, health(load_average=[5.0, 6.0], cpu_count=2), ValidityConfig(), True)
    assert v.status == "VALID" and any("machine busy" in w.text for w in v.warnings)


def test_no_success_is_invalid():
    v = assess([finalize(request_c(), EPOCH)], health(), ValidityConfig(), True)
    assert v.status == "INVALID"


def test_delivered_rates(records):
    sched, started = delivered_rates(records)
    assert sched == pytest.approx(1 / 0.050)  # due at 0 and 50 ms
    assert started == pytest.approx(1 / 0.049)  # started at 1 and 50 ms


def test_lateness_limit_scales_with_the_arrival_gap(records):
    # at 10 req/s (100 ms gaps) a 40 ms late dispatch does not bunch requests: limit 50 ms
    slow = health(
        scheduled_rate=10.0, delivered_rate=10.0, lateness_ms=Distribution.of([40.0] * 10)
    )
    assert assess(records, slow, ValidityConfig(), True).status == "VALID"
    fast = health(
        scheduled_rate=400.0, delivered_rate=400.0, lateness_ms=Distribution.of([12.0] * 10)
    )
    assert assess(records, fast, ValidityConfig(), True).status == "INVALID"  # floor 10 ms


def test_cpu_wait_limit_scales_with_the_token_gap(records):
    waits = Distribution.of([2.0] * 10)
    assert assess(records, health(cpu_wait_ms=waits), ValidityConfig(), True).status == "INVALID"
    cfg = ValidityConfig(max_cpu_wait_itl_fraction=0.25)  # of the 10 ms median gap: 2.5 ms
    v = assess(records, health(cpu_wait_ms=waits), cfg, True)
    assert v.status == "VALID"
    check = next(c for c in v.checks if c.name == "client_cpu_wait_p99_ms")
    assert check.threshold == pytest.approx(2.5)
