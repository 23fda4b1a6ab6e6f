"""The statistics of an accuracy and the verdict against a baseline.

A task's accuracy is a proportion of n items, so its 95% interval is Wilson's score interval
(sound near 0 and 1, where the normal approximation is not). A drop FAILs only when it exceeds
both the relative tolerance (5% by default, as vllm-ascend's lm-eval CI gate uses) and the noise:
a pooled two-proportion z-test at 95% must call it real. Published run-to-run spread on GSM8K is
up to two points, so a drop inside the noise of a small task is INCONCLUSIVE, never a FAIL.
"""

from __future__ import annotations

import math

from adaptgate.accuracy.models import AccuracyResult, Comparison, TaskAccuracy, Verdict
from adaptgate.messages import Message, Said, joined, message
from adaptgate.record import GateStatus

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: a two-sided 95% interval


def wilson_interval(correct: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for ``correct`` successes of ``n`` (``correct`` may be a mean
    over repeats times n)."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # at p = 0 or 1 a bound equals p exactly, which rounding would put a hair outside
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def drop_z(baseline: float, n_baseline: int, candidate: float, n_candidate: int) -> float:
    """The pooled two-proportion z statistic of the drop baseline - candidate (0 when both are
    0 or 1: no variance, no evidence)."""
    pooled = (baseline * n_baseline + candidate * n_candidate) / (n_baseline + n_candidate)
    variance = pooled * (1 - pooled) * (1 / n_baseline + 1 / n_candidate)
    return 0.0 if variance <= 0 else (baseline - candidate) / math.sqrt(variance)


def _reason_other(
    task: TaskAccuracy, base: TaskAccuracy, chat: bool, base_chat: bool
) -> Message | None:
    if base.data_hash != task.data_hash:
        return message("accuracy.other_data")
    if chat != base_chat:
        with_ = "without" if base_chat is False else "with"
        return message(f"accuracy.baseline_{with_}_template")
    return None


def compare(
    task: TaskAccuracy, base: TaskAccuracy, tolerance: float, *, chat: bool, base_chat: bool
) -> Comparison:
    difference = task.accuracy - base.accuracy
    relative = -difference / base.accuracy if base.accuracy > 0 else 0.0
    z = drop_z(base.accuracy, base.samples, task.accuracy, task.samples)
    significant = z > Z95
    verdict: Verdict = GateStatus.PASS
    reason = message("accuracy.within_tolerance", tolerance=f"{tolerance:.0%}")
    drop = {"drop": f"{relative:.1%}", "tolerance": f"{tolerance:.0%}", "z": f"{z:.2f}"}
    if other := _reason_other(task, base, chat, base_chat):
        verdict, reason = GateStatus.INCONCLUSIVE, other
    elif relative > tolerance and significant:
        verdict = GateStatus.FAIL
        reason = message("accuracy.dropped", **drop)
    elif relative > tolerance:
        verdict = GateStatus.INCONCLUSIVE
        reason = message(
            "accuracy.dropped_in_noise",
            **drop,
            n=task.samples,
            n_base=base.samples,
            z95=f"{Z95:.2f}",
        )
    return Comparison(
        task=task.task,
        baseline_accuracy=base.accuracy,
        baseline_ci=base.ci,
        baseline_samples=base.samples,
        difference=difference,
        relative_drop=relative,
        z=z,
        verdict=verdict,
        reason=reason.said,
    )


def judge(
    tasks: list[TaskAccuracy], chat: bool, baseline: AccuracyResult | None, tolerance: float
) -> tuple[Verdict, Said, list[Comparison]]:
    """The verdict, its reason, and each task's comparison with the baseline."""
    if baseline is None:
        zero = [t.task for t in tasks if t.accuracy == 0]
        if zero:
            return GateStatus.FAIL, joined([message("accuracy.zero", tasks=", ".join(zero))]), []
        return GateStatus.INCONCLUSIVE, joined([message("accuracy.no_baseline")]), []
    by_name = {t.task: t for t in baseline.tasks}
    comparisons = [
        compare(t, by_name[t.task], tolerance, chat=chat, base_chat=baseline.chat_template)
        for t in tasks
        if t.task in by_name
    ]
    missing = [t.task for t in tasks if t.task not in by_name]
    failed = [c for c in comparisons if c.verdict is GateStatus.FAIL]
    if failed:
        reasons = [message("accuracy.task_failed", task=c.task, reason=c.reason) for c in failed]
        return GateStatus.FAIL, joined(reasons), comparisons
    unsure = [
        message("accuracy.task_unsure", task=c.task, reason=c.reason)
        for c in comparisons
        if c.verdict is GateStatus.INCONCLUSIVE
    ]
    unsure += [message("accuracy.not_in_baseline", task=name) for name in missing]
    if unsure:
        return GateStatus.INCONCLUSIVE, joined(unsure), comparisons
    all_within = message("accuracy.all_within", tolerance=f"{tolerance:.0%}")
    return GateStatus.PASS, joined([all_within]), comparisons
