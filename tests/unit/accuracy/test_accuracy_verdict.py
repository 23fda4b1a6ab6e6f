"""Wilson's interval against independent computations, and the verdict: FAIL only when a drop
exceeds both the relative tolerance and the noise."""

from __future__ import annotations

import math
import random

import pytest
from accuracy_testlib import result, task

from adaptgate.accuracy.verdict import Z95, drop_z, judge, wilson_interval
from adaptgate.record import GateStatus


def _cases() -> list[tuple[int, int]]:
    rng = random.Random(0)
    cases = [(0, 10), (10, 10), (1, 40), (17, 40), (39, 40)]
    return cases + [
        (k, n) for n in (rng.randint(5, 2000) for _ in range(40)) if (k := rng.randint(0, n)) >= 0
    ]


@pytest.mark.parametrize(("k", "n"), _cases())
def test_wilson_bounds_are_the_roots_of_the_score_equation(k, n):
    """Wilson's bounds are the proportions pi with |p - pi| = z sqrt(pi (1 - pi) / n): the
    roots of (1 + z2/n) pi^2 - (2p + z2/n) pi + p^2 = 0, solved here with the quadratic formula
    in float64 -- another computation than the module's centre +- half-width."""
    p, z2 = k / n, Z95 * Z95
    a, b, c = 1 + z2 / n, -(2 * p + z2 / n), p * p
    disc = math.sqrt(b * b - 4 * a * c)
    roots = ((-b - disc) / (2 * a), (-b + disc) / (2 * a))
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(max(0.0, roots[0]), abs=1e-12)
    assert high == pytest.approx(min(1.0, roots[1]), abs=1e-12)
    assert low <= p <= high


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (17, 40), (40, 40), (523, 1319)])
def test_wilson_matches_scipy(k, n):
    stats = pytest.importorskip("scipy.stats", reason="scipy (installed with lm-eval) is absent")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k, n)
    assert (low, high) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_the_z_of_a_drop_is_the_pooled_two_proportion_statistic():
    # 30/40 -> 20/40: pooled 0.625, se sqrt(0.625 * 0.375 * (2 / 40))
    assert drop_z(0.75, 40, 0.5, 40) == pytest.approx(0.25 / math.sqrt(0.625 * 0.375 / 20))
    assert drop_z(1.0, 40, 1.0, 40) == 0.0  # no variance, no evidence


def test_no_baseline_is_inconclusive_unless_accuracy_is_zero():
    verdict, reason, comparisons = judge([task("en", 17, 40)], True, None, 0.05)
    assert verdict is GateStatus.INCONCLUSIVE and "no baseline" in reason.text and comparisons == []
    verdict, reason, _ = judge([task("en", 17, 40), task("zh", 0, 40)], True, None, 0.05)
    assert verdict is GateStatus.FAIL and reason.text == "accuracy 0 on zh"


def test_a_drop_beyond_tolerance_and_noise_fails():
    base = result(task("en", 800, 1000))
    verdict, reason, (c,) = judge([task("en", 700, 1000)], True, base, 0.05)
    assert verdict is GateStatus.FAIL and c.verdict is GateStatus.FAIL
    assert c.difference == pytest.approx(-0.1) and c.relative_drop == pytest.approx(0.125)
    assert c.z > Z95 and "beyond the noise" in reason.text


def test_a_drop_beyond_tolerance_but_within_the_noise_is_inconclusive():
    """The same 12.5% relative drop on 40 items is noise: never a FAIL."""
    base = result(task("en", 32, 40))
    verdict, reason, (c,) = judge([task("en", 28, 40)], True, base, 0.05)
    assert c.relative_drop == pytest.approx(0.125) and c.z < Z95
    assert verdict is GateStatus.INCONCLUSIVE and "within the noise" in reason.text


def test_a_significant_drop_within_tolerance_passes():
    base = result(task("en", 9000, 10000))
    verdict, _, (c,) = judge([task("en", 8700, 10000)], True, base, 0.05)
    assert c.z > Z95 and c.relative_drop < 0.05
    assert verdict is GateStatus.PASS


def test_a_gain_passes():
    verdict, reason, _ = judge([task("en", 30, 40)], True, result(task("en", 20, 40)), 0.05)
    assert verdict is GateStatus.PASS and "within the 5% tolerance" in reason.text


def test_other_data_another_prompt_form_or_a_task_the_baseline_lacks_is_not_compared():
    base = result(task("en", 20, 40, data_hash="other"))
    verdict, reason, _ = judge([task("en", 20, 40)], True, base, 0.05)
    assert verdict is GateStatus.INCONCLUSIVE and "data hash differs" in reason.text
    verdict, reason, _ = judge([task("en", 20, 40)], False, result(task("en", 20, 40)), 0.05)
    assert verdict is GateStatus.INCONCLUSIVE and "ran with the chat template" in reason.text
    verdict, reason, _ = judge([task("zh", 20, 40)], True, result(task("en", 20, 40)), 0.05)
    assert verdict is GateStatus.INCONCLUSIVE and "zh: the baseline did not run it" in reason.text


def test_one_failing_task_fails_the_verdict():
    base = result(task("en", 800, 1000), task("zh", 500, 1000))
    tasks = [task("en", 810, 1000), task("zh", 300, 1000)]
    verdict, reason, comparisons = judge(tasks, True, base, 0.05)
    assert verdict is GateStatus.FAIL and reason.text.startswith("zh dropped")
    assert [c.verdict for c in comparisons] == [GateStatus.PASS, GateStatus.FAIL]
