"""The check registry and what a check receives: the client, the options, the served model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adaptgate.client import Client, Reply
from adaptgate.messages import Message, Said, message
from adaptgate.registry import Registry
from adaptgate.smoke.models import Category, CheckStatus, Evidence, SmokeOptions, excerpt

PROMPT = "The future of AI is"
CHAT_PROMPT = "Give me a short introduction to large language models."


@dataclass
class SmokeContext:
    client: Client
    options: SmokeOptions
    model: str = ""
    max_model_len: int | None = None
    thinking: bool | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    def completion_body(self, prompt: str = PROMPT, **extra: Any) -> dict[str, Any]:
        body = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": self.options.max_tokens,
            "temperature": 0,
        }
        return {**body, **extra}

    def chat_body(self, content: str = CHAT_PROMPT, **extra: Any) -> dict[str, Any]:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.options.max_tokens,
            "temperature": 0,
        }
        return {**body, **extra}


@dataclass
class Outcome:
    status: CheckStatus
    reason: Said
    evidence: list[Evidence] = field(default_factory=list)

    @classmethod
    def passed(cls, reason: Message | Said, *evidence: Evidence) -> Outcome:
        return cls(CheckStatus.PASS, reason.said, list(evidence))

    @classmethod
    def failed(cls, reason: Message | Said, *evidence: Evidence) -> Outcome:
        return cls(CheckStatus.FAIL, reason.said, list(evidence))

    @classmethod
    def skipped(cls, reason: Message | Said, *evidence: Evidence) -> Outcome:
        return cls(CheckStatus.SKIPPED, reason.said, list(evidence))


@dataclass(frozen=True)
class CheckDef:
    id: str
    category: Category
    fn: Callable[[SmokeContext], Outcome]

    @property
    def title(self) -> str:
        """What the check verifies, in English; the catalogue's ``smoke.check.<id>`` holds it
        in every language, so a report renders a check's title from its id."""
        return message(title_id(self.id)).text


def title_id(check_id: str) -> str:
    return f"smoke.check.{check_id}"


CHECKS: Registry[CheckDef] = Registry("smoke check")


def check(check_id: str, category: Category) -> Callable[..., Any]:
    def deco(fn: Callable[[SmokeContext], Outcome]) -> Callable[[SmokeContext], Outcome]:
        CHECKS.add(check_id, CheckDef(check_id, category, fn))
        return fn

    return deco


def _short_body(body: dict[str, Any] | None) -> dict[str, Any] | None:
    if body is None:
        return None
    out = dict(body)
    for key in ("prompt", "messages", "tools"):
        if key in out:
            out[key] = excerpt(str(out[key]) if key != "prompt" else out[key], 300)
    return out


def evidence(reply: Reply, **details: Any) -> Evidence:
    """The exchange as evidence: method, path and a shortened body; never headers."""
    response = reply.text or ""
    if reply.events:
        response = f"{len(reply.events)} events" + (", [DONE]" if reply.done else ", no [DONE]")
    if reply.error and not reply.text:
        response = reply.error
    return Evidence(
        request={"method": reply.method, "path": reply.path, "body": _short_body(reply.body)},
        status_code=reply.status or None,
        response=excerpt(response),
        details=details,
    )


def http_failure(reply: Reply, what: str) -> Outcome | None:
    """A FAIL outcome when the request did not get a 200 JSON answer; ``what`` names the
    request as code (``POST /v1/completions``, ``stream``)."""
    if reply.ok:
        return None
    detail = reply.error or f"HTTP {reply.status}"
    return Outcome.failed(message("smoke.http_failed", what=what, detail=detail), evidence(reply))
