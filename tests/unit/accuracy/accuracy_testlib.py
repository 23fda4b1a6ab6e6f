"""Accuracy results built in memory for the verdict, rendering and baseline tests."""

from __future__ import annotations

from adaptgate.accuracy.models import AccuracyResult, Interval, TaskAccuracy
from adaptgate.accuracy.verdict import wilson_interval
from adaptgate.record import GateStatus
from adaptgate.stats import Distribution


def task(name: str, correct: int, n: int, data_hash: str = "h") -> TaskAccuracy:
    low, high = wilson_interval(correct, n)
    return TaskAccuracy(
        task=name,
        metric="exact_match,none",
        accuracy=correct / n,
        ci=Interval(low=low, high=high),
        samples=n,
        repeats=Distribution.of([correct / n]),
        data_hash=data_hash,
    )


def result(*tasks: TaskAccuracy, chat: bool = True) -> AccuracyResult:
    return AccuracyResult(
        url="http://127.0.0.1:8000",
        model="demo",
        chat_template=chat,
        lm_eval_version="0.4.13",
        tasks=list(tasks),
        tolerance=0.05,
        verdict=GateStatus.INCONCLUSIVE,
        reason="no baseline to compare against",
        seconds=1.0,
    )
