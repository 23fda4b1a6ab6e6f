"""``run_accuracy(AccuracyOptions) -> AccuracyResult``: the tasks through lm-eval against one
endpoint, ``repeats`` times, then the verdict against the baseline."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from adaptgate.accuracy import harness
from adaptgate.accuracy.baseline import load_baseline
from adaptgate.accuracy.builtin import write_task
from adaptgate.accuracy.models import AccuracyOptions, AccuracyResult, Interval, TaskAccuracy
from adaptgate.accuracy.verdict import judge, wilson_interval
from adaptgate.client import Client
from adaptgate.console import Output
from adaptgate.errors import ServerUnreachable
from adaptgate.results import package_version
from adaptgate.stats import Distribution


@contextmanager
def _task_dir(work_dir: Path | None) -> Iterator[Path]:
    if work_dir is not None:
        yield write_task(work_dir / "task")
        return
    with tempfile.TemporaryDirectory(prefix="adaptgate-accuracy-") as tmp:
        yield write_task(Path(tmp))


def served_model(options: AccuracyOptions) -> str:
    """The model to ask: ``options.model``, else the first the server lists."""
    client = Client(options.url, api_key_env=options.api_key_env, timeout_s=options.timeout_s)
    names = client.model_ids()
    if options.model:
        return options.model
    if not names:
        raise ServerUnreachable(
            f"{client.base} serves no model (GET /v1/models lists none)",
            fix="check the server, or name the model with --model",
        )
    return names[0]


def task_accuracy(name: str, runs: list[dict[str, Any]]) -> TaskAccuracy:
    """One task over the repeats: the mean accuracy, its Wilson interval over the task's items
    (repeats of the same items are not new evidence, so n stays the item count), the spread."""
    metrics = [harness.primary_metric(run["results"][name]) for run in runs]
    values = [value for _, value in metrics]
    samples = int(runs[0]["n-samples"][name]["effective"])
    mean = sum(values) / len(values)
    low, high = wilson_interval(mean * samples, samples)
    return TaskAccuracy(
        task=name,
        metric=metrics[0][0],
        accuracy=mean,
        ci=Interval(low=low, high=high),
        samples=samples,
        repeats=Distribution.of(values),
        data_hash=harness.data_hash(runs[0]["samples"][name]),
    )


def run_accuracy(options: AccuracyOptions, out: Output | None = None) -> AccuracyResult:
    out = out or Output()
    t0 = time.perf_counter()
    baseline = load_baseline(options.baseline) if options.baseline is not None else None
    harness.go_offline(options.data_dir)
    runs = []
    with _task_dir(options.work_dir) as include_path:
        manager = harness.task_manager(include_path)
        harness.check_tasks(manager, options.tasks, options.data_dir)  # bad input before the server
        model = served_model(options)
        for i in range(options.repeats):
            out.status(
                f"  accuracy: run {i + 1}/{options.repeats} of {', '.join(options.tasks)} on "
                f"{model} ({'chat' if options.chat else 'completions'}) ..."
            )
            runs.append(
                harness.evaluate(
                    manager,
                    options.tasks,
                    url=options.url,
                    model=model,
                    chat=options.chat,
                    limit=options.limit,
                    concurrency=options.concurrency,
                    timeout_s=options.timeout_s,
                    api_key_env=options.api_key_env,
                )
            )
    # the leaf tasks lm-eval ran (a group names several), in its order
    tasks = [task_accuracy(name, runs) for name in runs[0]["n-samples"]]
    for t in tasks:
        out.status(
            f"  {t.task}: {t.accuracy:.3f} [{t.ci.low:.3f}, {t.ci.high:.3f}] of {t.samples} items"
        )
    verdict, reason, comparisons = judge(tasks, options.chat, baseline, options.tolerance)
    return AccuracyResult(
        url=options.url,
        model=model,
        chat_template=options.chat,
        lm_eval_version=package_version("lm-eval"),
        tasks=tasks,
        tolerance=options.tolerance,
        baseline=str(options.baseline) if options.baseline is not None else None,
        comparisons=comparisons,
        verdict=verdict,
        reason=reason,
        seconds=round(time.perf_counter() - t0, 3),
    )
