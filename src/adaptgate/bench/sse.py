"""Server-sent events: split timed socket reads into timed events, classify OpenAI stream chunks.

Parsing happens after a request ends, never on the hot path: while streaming, the client only
stamps each socket read with the clock. An event's time is the time of the read that completed it
(its terminating blank line), which is when a client could first have acted on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

DONE = "[DONE]"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    t: float
    data: str


def split_events(reads: Iterable[tuple[float, bytes]]) -> tuple[list[SSEEvent], bytes]:
    """SSE events (their ``data:`` lines joined) with the time of the read that completed each;
    also the unterminated remainder (non-empty when the stream was cut mid-event)."""
    events: list[SSEEvent] = []
    buf = b""
    for t, data in reads:
        buf += data
        if b"\n\n" not in buf and b"\r\n\r\n" not in buf:
            continue
        buf = buf.replace(b"\r\n", b"\n")
        *complete, buf = buf.split(b"\n\n")
        for block in complete:
            payload = _event_data(block)
            if payload is not None:
                events.append(SSEEvent(t, payload))
    return events, buf


def _event_data(block: bytes) -> str | None:
    lines = []
    for raw in block.split(b"\n"):
        if raw.startswith(b"data:"):
            value = raw[5:]
            lines.append(value[1:] if value.startswith(b" ") else value)
        # comments (":"), "event:", "id:", "retry:" carry no chunk data
    if not lines:
        return None
    return b"\n".join(lines).decode("utf-8", errors="replace")


@dataclass(slots=True)
class Chunk:
    """What one OpenAI streaming chunk carries."""

    t: float
    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    has_choices: bool = False
    error: str | None = None

    @property
    def carries_token(self) -> bool:
        return bool(self.text or self.reasoning)


class MalformedChunk(ValueError):
    """A data line that is not an OpenAI chunk (not JSON, or not an object)."""


def parse_chunk(event: SSEEvent) -> Chunk:
    try:
        obj = json.loads(event.data)
    except json.JSONDecodeError as exc:
        raise MalformedChunk(f"not JSON: {event.data[:80]!r}") from exc
    if not isinstance(obj, dict):
        raise MalformedChunk(f"not a JSON object: {event.data[:80]!r}")
    chunk = Chunk(event.t)
    if "error" in obj or obj.get("object") == "error":
        err = obj.get("error", obj)
        chunk.error = str(err.get("message", err) if isinstance(err, dict) else err)
        return chunk
    usage = obj.get("usage")
    if isinstance(usage, dict):
        chunk.usage = usage
    choices = obj.get("choices") or []
    if not isinstance(choices, list):
        raise MalformedChunk(f"choices is not a list: {event.data[:80]!r}")
    if choices:
        chunk.has_choices = True
        choice = choices[0]
        if not isinstance(choice, dict):
            raise MalformedChunk(f"choice is not an object: {event.data[:80]!r}")
        delta = choice.get("delta")
        if isinstance(delta, dict):  # chat
            chunk.text = delta.get("content") or ""
            chunk.reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
        else:  # completions
            chunk.text = choice.get("text") or ""
        chunk.finish_reason = choice.get("finish_reason")
    return chunk


@dataclass
class ParsedStream:
    chunks: list[Chunk] = field(default_factory=list)
    done: bool = False
    first_event_t: float | None = None
    malformed: str | None = None
    trailing: bytes = b""


def parse_stream(reads: Iterable[tuple[float, bytes]]) -> ParsedStream:
    events, rest = split_events(reads)
    out = ParsedStream(trailing=rest)
    for event in _until_done(events, out):
        try:
            out.chunks.append(parse_chunk(event))
        except MalformedChunk as exc:
            out.malformed = out.malformed or str(exc)
    return out


def _until_done(events: list[SSEEvent], out: ParsedStream) -> Iterator[SSEEvent]:
    for event in events:
        if out.first_event_t is None:
            out.first_event_t = event.t
        if event.data.strip() == DONE:
            out.done = True
            return
        yield event
