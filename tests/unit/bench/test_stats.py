import math
import random

import pytest

from adaptgate.stats import Distribution


def _linear(sorted_values: list[float], q: float) -> float:
    """Hyndman-Fan type 7, written out independently of numpy."""
    h = (len(sorted_values) - 1) * q / 100
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def _nearest_rank(sorted_values: list[float], q: float) -> float:
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
def test_distribution_matches_independent_computation(n):
    rng = random.Random(n)
    values = [rng.lognormvariate(3, 0.7) for _ in range(n)]
    s = sorted(values)
    d = Distribution.of(values)
    mean = sum(values) / n
    assert d.count == n
    assert d.mean == pytest.approx(mean)
    assert d.std == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in values) / n))
    assert (d.min, d.max) == (s[0], s[-1])
    for q, got in ((50, d.p50), (90, d.p90), (95, d.p95), (99, d.p99)):
        assert got == pytest.approx(_linear(s, q))
    assert d.percentile_method == "linear"
    nr = Distribution.of(values, method="nearest_rank")
    for q, got in ((50, nr.p50), (90, nr.p90), (99, nr.p99)):
        assert got == pytest.approx(_nearest_rank(s, q))


def test_empty_and_non_finite_values():
    d = Distribution.of([])
    assert d.count == 0 and d.p99 is None and d.get("median") is None
    d = Distribution.of([1.0, float("nan"), float("inf"), 3.0])
    assert d.count == 2 and d.mean == 2.0


def test_scaled_and_get():
    d = Distribution.of([0.010, 0.020, 0.030], unit="s").scaled(1000, "ms")
    assert d.unit == "ms" and d.p50 == pytest.approx(20.0) and d.max == pytest.approx(30.0)
    assert d.get("median") == d.p50
    assert "linear" in d.method_description
