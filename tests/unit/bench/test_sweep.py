import pytest
from bench_timelines import make_result

from adaptgate.bench.models import BenchConfig
from adaptgate.bench.sweep import meets, run_sweep, sweep_axis, with_value
from adaptgate.errors import UsageError


def cfg(**sweep) -> BenchConfig:
    return BenchConfig.model_validate(
        {
            "endpoint": {"url": "http://x"},
            "load": {"rate": 1},
            "slo": {"ttft_ms": 100},
            "sweep": sweep,
        }
    )


def fake_run(capacity: float):
    """TTFT grows past the 100 ms SLO once the rate exceeds ``capacity``."""

    def run(c: BenchConfig):
        rate = c.load.rate or 0
        shift = 0.0 if rate <= capacity else 0.2
        return make_result(rate, ttft_shift=shift, label=c.output.label)[0]

    return run


def test_sweep_axis_and_labels():
    assert sweep_axis(cfg(rates=[4, 1, 2])) == ("rate", [1, 2, 4])
    c = with_value(cfg(concurrencies=[2]), "concurrency", 8)
    assert c.load.concurrency == 8 and c.output.label == "concurrency=8"
    with pytest.raises(UsageError):
        sweep_axis(cfg())


def test_plain_sweep_runs_each_value():
    axis, runs, sla = run_sweep(cfg(rates=[1, 2, 4]), fake_run(10))
    assert axis == "rate" and [r.config.load.rate for r in runs] == [1, 2, 4] and sla is None


def test_sla_search_brackets_the_capacity():
    _, runs, sla = run_sweep(cfg(rates=[1, 20], sla_search=True, search_steps=6), fake_run(7.3))
    assert sla is not None and sla.best is not None
    assert 7.3 - (20 - 1) / 2**6 <= sla.best <= 7.3
    assert len(runs) == 2 + 6


def test_sla_search_grows_when_everything_passes():
    _, _, sla = run_sweep(cfg(rates=[1], sla_search=True, search_steps=3), fake_run(1000))
    assert sla.best == 8.0  # 1 -> 2 -> 4 -> 8, all passing


def test_invalid_runs_never_meet_the_sla():
    res = make_result(valid=False)[0]
    ok, why = meets(res, cfg())
    assert not ok and why.startswith("INVALID")
