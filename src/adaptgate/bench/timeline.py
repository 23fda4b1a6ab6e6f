"""One request's timeline: what the hot path captures (``Exchange``) and what it means
(``RequestRecord``, one line of the per-request JSONL).

Clock: ``time.monotonic()`` everywhere (CLOCK_MONOTONIC on Linux: one clock for every process on
the machine, so worker processes and the calibration server share it). Stored times are seconds
relative to the run's epoch (its first scheduled dispatch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from adaptgate.bench.sse import parse_stream


@dataclass(slots=True)
class Exchange:
    """Raw capture of one request, filled on the hot path: clock stamps and bytes only."""

    index: int
    scheduled_at: float | None = None  # absolute monotonic; None = as soon as possible
    started_at: float = 0.0  # the client task began (lateness = started - scheduled)
    sent_at: float | None = None  # just before the request was written (after any cap wait)
    headers_at: float | None = None
    end_at: float | None = None
    status: int | None = None
    reads: list[tuple[float, bytes]] = field(default_factory=list)
    body: bytes = b""  # non-200 response body (truncated)
    error: str | None = None  # failure reason category, when the transport failed
    error_detail: str | None = None
    worker: int = 0
    conversation: int | None = None
    turn: int | None = None
    prompt_tokens: int | None = None  # expected (from the dataset)
    max_tokens: int | None = None


class RequestRecord(BaseModel):
    """One request, parsed. Times are seconds from the run epoch; durations in ms."""

    index: int
    worker: int = 0
    conversation: int | None = None
    turn: int | None = None
    ok: bool
    error: str | None = Field(default=None, description="failure reason category")
    error_detail: str | None = None
    http_status: int | None = None
    scheduled_at: float | None = None
    started_at: float | None = None
    sent_at: float | None = None
    headers_at: float | None = None
    first_chunk_at: float | None = Field(
        default=None, description="first SSE chunk with choices, even a role-only one (vLLM TTFT)"
    )
    first_token_at: float | None = Field(
        default=None, description="first chunk carrying a token (content or reasoning)"
    )
    first_content_at: float | None = Field(
        default=None, description="first chunk carrying answer content (not reasoning)"
    )
    last_token_at: float | None = None
    end_at: float | None = Field(default=None, description="stream closed ([DONE] or EOF)")
    token_times: list[float] = Field(default_factory=list, description="token-carrying chunks")
    prompt_tokens: int | None = Field(default=None, description="expected by the dataset")
    max_tokens: int | None = None
    usage_prompt_tokens: int | None = None
    usage_completion_tokens: int | None = None
    client_token_chunks: int = 0
    reasoning_chunks: int = 0
    finish_reason: str | None = None
    output_text: str = ""

    @property
    def output_tokens(self) -> int:
        """Server's usage count when it sent one (as vllm bench serve), else token chunks."""
        if self.usage_completion_tokens is not None:
            return self.usage_completion_tokens
        return self.client_token_chunks

    @property
    def input_tokens(self) -> int:
        if self.usage_prompt_tokens is not None:
            return self.usage_prompt_tokens
        return self.prompt_tokens or 0


def _rel(t: float | None, epoch: float) -> float | None:
    return None if t is None else t - epoch


def finalize(ex: Exchange, epoch: float, *, keep_text: bool = False) -> RequestRecord:
    """Parse the captured bytes into a record; classify the failure reason if any."""
    rec: dict[str, Any] = {
        "index": ex.index,
        "worker": ex.worker,
        "conversation": ex.conversation,
        "turn": ex.turn,
        "http_status": ex.status,
        "scheduled_at": _rel(ex.scheduled_at, epoch),
        "started_at": _rel(ex.started_at, epoch) if ex.started_at else None,
        "sent_at": _rel(ex.sent_at, epoch),
        "headers_at": _rel(ex.headers_at, epoch),
        "end_at": _rel(ex.end_at, epoch),
        "prompt_tokens": ex.prompt_tokens,
        "max_tokens": ex.max_tokens,
    }
    error, detail = ex.error, ex.error_detail
    if ex.status is not None and ex.status != 200:
        error = error or f"http_{ex.status}"
        detail = detail or ex.body[:300].decode("utf-8", errors="replace")
    parsed = parse_stream(ex.reads)
    texts: list[str] = []
    token_times: list[float] = []
    for chunk in parsed.chunks:
        t = chunk.t - epoch
        if chunk.error and error is None:
            error, detail = "server_error_event", chunk.error
        if chunk.has_choices and rec.get("first_chunk_at") is None:
            rec["first_chunk_at"] = t
        if chunk.carries_token:
            token_times.append(t)
            rec["client_token_chunks"] = rec.get("client_token_chunks", 0) + 1
            if chunk.reasoning:
                rec["reasoning_chunks"] = rec.get("reasoning_chunks", 0) + 1
            if chunk.text and rec.get("first_content_at") is None:
                rec["first_content_at"] = t
            texts.append(chunk.text)
        if chunk.finish_reason:
            rec["finish_reason"] = chunk.finish_reason
        if chunk.usage:
            rec["usage_prompt_tokens"] = chunk.usage.get("prompt_tokens")
            rec["usage_completion_tokens"] = chunk.usage.get("completion_tokens")
    if token_times:
        rec["first_token_at"], rec["last_token_at"] = token_times[0], token_times[-1]
    rec["token_times"] = token_times
    rec["output_text"] = "".join(texts) if keep_text else ""
    if error is None and ex.status == 200:
        if parsed.malformed:
            error, detail = "malformed_sse", parsed.malformed
        elif not parsed.done:
            error = "stream_ended_without_done"
            detail = f"{len(parsed.chunks)} chunks, then the connection closed"
        elif not token_times:
            error, detail = "no_tokens", "the stream finished without any token"
    rec["ok"] = error is None and ex.status == 200
    rec["error"], rec["error_detail"] = error, detail
    return RequestRecord(**rec)
