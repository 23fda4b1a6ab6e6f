"""Accuracy options and results: per task the accuracy with its 95% interval, the sample count,
the spread over repeats, and the verdict against a baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from adaptgate.client import EndpointOptions
from adaptgate.errors import EXIT_FAIL, EXIT_OK
from adaptgate.messages import Said
from adaptgate.record import GateStatus
from adaptgate.results import Result
from adaptgate.stats import Distribution

# adaptgate's own offline task, one per language (adaptgate.accuracy.builtin writes them)
BUILTIN_TASKS = ("adaptgate_basic_en", "adaptgate_basic_zh")
TOLERANCE = 0.05  # vllm-ascend's tests/e2e/models/test_lm_eval_correctness.py RTOL


# the gate's own statuses, less SKIPPED and ERROR: only the gate (no server, a crash) gives those
Verdict = Literal[GateStatus.PASS, GateStatus.FAIL, GateStatus.INCONCLUSIVE]


class AccuracyOptions(EndpointOptions):
    tasks: list[str] = Field(default_factory=lambda: list(BUILTIN_TASKS))
    baseline: Path | None = Field(None, description="an accuracy result JSON or a run directory")
    repeats: int = Field(1, ge=1, le=20)
    limit: int | None = Field(None, ge=1, description="at most this many items per task")
    data_dir: Path | None = Field(
        None, description="a Hugging Face cache (HF_HOME layout) holding the registry tasks' data"
    )
    chat: bool = Field(True, description="apply the server's chat template (chat completions)")
    tolerance: float = Field(TOLERANCE, gt=0, lt=1, description="relative drop allowed")
    concurrency: int = Field(4, ge=1, le=64)
    timeout_s: float = Field(300.0, gt=0)
    work_dir: Path | None = Field(
        None, description="where the built-in task's files go (default: a temporary directory)"
    )


class Interval(BaseModel):
    model_config = ConfigDict(frozen=True)

    low: float
    high: float


class TaskAccuracy(BaseModel):
    task: str
    metric: str = Field(description="lm-eval's metric and filter, e.g. exact_match,none")
    accuracy: float = Field(description="the mean over the repeats")
    ci: Interval = Field(description="Wilson's 95% score interval over the task's items")
    samples: int = Field(description="items per repeat")
    repeats: Distribution = Field(description="the accuracy of each repeat")
    data_hash: str | None = Field(
        None, description="sha256 of the task's items as lm-eval saw them"
    )


class Comparison(BaseModel):
    task: str
    baseline_accuracy: float
    baseline_ci: Interval
    baseline_samples: int
    difference: float = Field(description="candidate - baseline")
    relative_drop: float = Field(description="(baseline - candidate) / baseline")
    z: float = Field(description="pooled two-proportion z of the drop; > 1.96 is beyond noise")
    verdict: Verdict
    reason: Said


class AccuracyResult(Result):
    kind: str = "accuracy"
    url: str
    model: str | None
    chat_template: bool = Field(description="the chat template was applied (chat completions)")
    lm_eval_version: str | None
    tasks: list[TaskAccuracy]
    tolerance: float
    baseline: str | None = Field(None, description="where the baseline result came from")
    comparisons: list[Comparison] = Field(default_factory=list)
    verdict: Verdict
    reason: Said
    seconds: float

    @property
    def exit_code(self) -> int:
        return EXIT_FAIL if self.verdict is GateStatus.FAIL else EXIT_OK

    def task(self, name: str) -> TaskAccuracy | None:
        return next((t for t in self.tasks if t.task == name), None)
