from __future__ import annotations

from adaptgate.kvcache.degeneration import measure, repetition_rate, tail_loop


def test_repetition_rate() -> None:
    assert repetition_rate(list(range(100))) == 0.0
    loop = [1, 2, 3] * 30
    assert repetition_rate(loop) == 1 - 3 / (len(loop) - 3)
    assert repetition_rate([1, 2]) == 0.0


def test_tail_loop() -> None:
    assert tail_loop(list(range(50)) + [7, 8] * 40) == 2
    assert tail_loop(list(range(200))) is None
    assert tail_loop([5] * 10) is None  # shorter than the window
    assert tail_loop(list(range(100)) + list(range(17)) * 5) is None  # period 17 > 16


def test_degeneration_against_the_baseline() -> None:
    base = list(range(300))
    looping = list(range(100)) + [4, 5, 6, 7] * 50
    d = measure(looping, base)
    assert d.loop_period == 4 and d.baseline_loop_period is None
    assert d.increase > 0.5 and d.degenerated(0.25)
    same = measure(looping, looping)
    assert same.increase == 0 and not same.degenerated(0.25)  # a loop the baseline shares
