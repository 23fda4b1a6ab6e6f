"""Smoke-check options and results: each check PASS / FAIL / SKIPPED with its evidence."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from adaptgate.client import EndpointOptions
from adaptgate.errors import EXIT_FAIL, EXIT_OK
from adaptgate.messages import Said
from adaptgate.results import Result

Category = Literal["protocol", "quality"]
EXCERPT = 400


class CheckStatus(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIPPED = "SKIPPED"


class SmokeOptions(EndpointOptions):
    expected_max_model_len: int | None = None
    thinking: bool | None = Field(None, description="None: decide from the chat reply")
    tools: bool = Field(False, description="the plan enables tool calling")
    reference_model: str | None = Field(
        None,
        description="the source checkpoint: the server must render chats as its own tokenizer "
        "and chat template do (the chat_template check)",
    )
    concurrency: int = Field(4, ge=2, le=64)
    max_tokens: int = Field(24, ge=4, le=512, description="protocol checks' generation length")
    quality_max_tokens: int = Field(1024, ge=16, description="budget for quality answers")
    timeout_s: float = Field(300.0, gt=0)
    only: list[str] = Field(default_factory=list)
    skip: list[str] = Field(default_factory=list)


def excerpt(text: str | None, limit: int = EXCERPT) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Evidence(BaseModel):
    """What was sent (no headers, so no key) and what came back, shortened."""

    request: dict[str, Any] | None = None
    status_code: int | None = None
    response: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class CheckResult(BaseModel):
    id: str
    title: str
    category: Category
    status: CheckStatus
    reason: Said
    evidence: list[Evidence] = Field(default_factory=list)
    seconds: float = 0.0


class SmokeResult(Result):
    kind: str = "smoke"
    url: str
    model: str | None
    checks: list[CheckResult]
    protocol_verdict: Literal["PASS", "FAIL"]
    quality_verdict: Literal["PASS", "FAIL", "SKIPPED"]
    verdict: Literal["PASS", "FAIL"] = Field(description="the gate's verdict: protocol checks")
    counts: dict[str, int]

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.verdict == "PASS" else EXIT_FAIL

    def by_id(self, check_id: str) -> CheckResult | None:
        return next((c for c in self.checks if c.id == check_id), None)
