"""A small OpenAI-compatible HTTP client on the standard library (urllib + threads): JSON
requests, server-sent-event streams, and the API key from an environment variable, sent as a
Bearer header and never stored, logged or put into evidence."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

MAX_BODY = 20_000


@dataclass
class Reply:
    """One HTTP exchange: status 0 means no HTTP answer (connection refused, timeout)."""

    method: str
    path: str
    body: dict[str, Any] | None
    status: int = 0
    data: Any = None
    text: str = ""
    error: str | None = None
    seconds: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


class ApiClient:
    def __init__(self, url: str, *, api_key_env: str | None = None, timeout_s: float = 300.0):
        self.base = url.rstrip("/")
        self.timeout_s = timeout_s
        self._key_env = api_key_env

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self._key_env) if self._key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        return urllib.request.Request(
            self.base + path, data=data, method=method, headers=self._headers()
        )

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Reply:
        reply = Reply(method=method, path=path, body=body)
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(
                self._request(method, path, body), timeout=self.timeout_s
            ) as resp:
                reply.status = resp.status
                reply.text = resp.read(MAX_BODY * 50).decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            reply.status = exc.code
            reply.text = exc.read(MAX_BODY).decode("utf-8", errors="replace")
            reply.error = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reply.error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        reply.seconds = round(time.perf_counter() - t0, 3)
        if reply.text:
            try:
                reply.data = json.loads(reply.text)
            except ValueError:
                if reply.error is None:
                    reply.error = "response is not JSON"
        return reply

    def get(self, path: str) -> Reply:
        return self.call("GET", path)

    def post(self, path: str, body: dict[str, Any]) -> Reply:
        return self.call("POST", path, body)

    def stream(self, path: str, body: dict[str, Any]) -> Reply:
        """POST with ``stream: true``; every ``data:`` event parsed, ``[DONE]`` noted."""
        body = {**body, "stream": True}
        reply = Reply(method="POST", path=path, body=body)
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(
                self._request("POST", path, body), timeout=self.timeout_s
            ) as resp:
                reply.status = resp.status
                for raw in resp:
                    line = raw.decode("utf-8", errors="replace").strip()
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        reply.done = True
                        break
                    try:
                        reply.events.append(json.loads(payload))
                    except ValueError:
                        reply.error = f"unparsable event: {payload[:200]}"
        except urllib.error.HTTPError as exc:
            reply.status = exc.code
            reply.text = exc.read(MAX_BODY).decode("utf-8", errors="replace")
            reply.error = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reply.error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        reply.seconds = round(time.perf_counter() - t0, 3)
        return reply


def message_of(reply: Reply) -> dict[str, Any]:
    """choices[0].message of a chat reply ({} when absent)."""
    try:
        msg = reply.data["choices"][0]["message"]
    except (TypeError, KeyError, IndexError):
        return {}
    return msg if isinstance(msg, dict) else {}


def choice_of(reply: Reply) -> dict[str, Any]:
    try:
        choice = reply.data["choices"][0]
    except (TypeError, KeyError, IndexError):
        return {}
    return choice if isinstance(choice, dict) else {}


def reasoning_of(message: dict[str, Any]) -> str:
    """vLLM named the field reasoning_content, newer releases name it reasoning."""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def streamed_text(reply: Reply, *, chat: bool) -> tuple[str, str, str | None]:
    """(content, reasoning, finish_reason) accumulated over a stream's events."""
    content, reasoning, finish = [], [], None
    for event in reply.events:
        for choice in event.get("choices") or []:
            if chat:
                delta = choice.get("delta") or {}
                content.append(delta.get("content") or "")
                reasoning.append(reasoning_of(delta))
            else:
                content.append(choice.get("text") or "")
            finish = choice.get("finish_reason") or finish
    return "".join(content), "".join(reasoning), finish


def stream_usage(reply: Reply) -> dict[str, Any] | None:
    for event in reversed(reply.events):
        usage = event.get("usage")
        if isinstance(usage, dict):
            return usage
    return None
