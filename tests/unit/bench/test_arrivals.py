from itertools import pairwise

import numpy as np
import pytest

from adaptgate.bench.scheduler.arrivals import (
    arrival_offsets,
    offsets_for_duration,
    scheduled_rate,
)


def test_constant_and_unlimited():
    assert arrival_offsets(4, 10.0, "constant") == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert arrival_offsets(3, None) == [0.0, 0.0, 0.0]
    assert scheduled_rate(arrival_offsets(101, 50.0, "constant")) == pytest.approx(50.0)


@pytest.mark.parametrize(("process", "shape"), [("poisson", 1.0), ("gamma", 0.25), ("gamma", 4.0)])
def test_gap_statistics(process, shape):
    offsets = arrival_offsets(40_000, 20.0, process, burstiness=shape, seed=1)
    gaps = np.diff(offsets)
    assert gaps.mean() == pytest.approx(1 / 20.0, rel=0.03)
    # coefficient of variation of gamma gaps is 1/sqrt(shape)
    assert gaps.std() / gaps.mean() == pytest.approx(1 / np.sqrt(shape), rel=0.05)


def test_seeded_and_monotonic():
    a = arrival_offsets(100, 5.0, seed=3)
    assert a == arrival_offsets(100, 5.0, seed=3) and a != arrival_offsets(100, 5.0, seed=4)
    assert all(x <= y for x, y in pairwise(a))


def test_duration():
    offsets = offsets_for_duration(2.0, 10.0, "constant")
    assert len(offsets) == 20 and offsets[-1] < 2.0
