"""The one OpenAI-compatible HTTP client (HTTP from the standard library): how smoke, precision,
serve and kvcache call a server. bench measures with its own async client, which stays as measured.
:class:`EndpointOptions` is the endpoint as the commands that call a server take it.

- ``call``/``get``/``post``/``stream`` never raise: a :class:`Reply` records the exchange
  (status 0 when nothing answered), for smoke's evidence and serve's readiness polling.
- ``model_ids`` and ``complete`` raise :class:`ServerUnreachable` when nothing answers or the
  server answers with an error; ``version`` is None when the server does not say.
- The API key is read from the environment variable the client is given at each request, sent
  as a Bearer header, and never stored; an answer that echoes it has it masked, so it reaches
  no reply, evidence, error or log.

``complete`` sends token ids as the prompt (no re-tokenization on the server), greedy, with
top-k ``logprobs`` and two vLLM extensions other servers ignore or reject:
``return_tokens_as_token_ids`` (tokens come back as ``token_id:N``, read by :func:`token_ids`
and :func:`top_ids`) and ``prompt_logprobs``. A 400 answer to the extensions is retried
without them, and they are not sent again.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from adaptgate.errors import ServerUnreachable

API_KEY_ENV = "OPENAI_API_KEY"  # what smoke, precision and bench read unless told otherwise
TOKEN_ID_PREFIX = "token_id:"
ERROR_BODY = 20_000  # bytes of an error answer kept
ERROR_DETAIL = 300  # characters of it an error message quotes
MASK = "***"
# nothing (usable) answered: refused, reset, timed out, or a broken HTTP exchange
_NO_ANSWER = (urllib.error.URLError, OSError, http.client.HTTPException)


class EndpointOptions(BaseModel):
    """The server a command calls: the options models of smoke and accuracy extend it."""

    model_config = ConfigDict(frozen=True)

    url: str
    model: str | None = Field(None, description="served model name (default: the first listed)")
    api_key_env: str | None = Field(
        API_KEY_ENV, description="env var holding the API key (sent as Bearer)"
    )


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


@dataclass
class Completion:
    tokens: list[str]  # "token_id:N" or token text
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float]]
    prompt_logprobs: list[dict[str, float] | None] | None = None
    finish_reason: str | None = None
    raw_usage: dict[str, Any] = field(default_factory=dict)
    text: str | None = None  # the generated text, as the server decoded it


class Client:
    """``Client(url)``: ``url`` is the server's root; a trailing ``/v1`` is accepted."""

    def __init__(
        self, url: str, *, api_key_env: str | None = API_KEY_ENV, timeout_s: float = 120.0
    ) -> None:
        base = url.rstrip("/")
        self.base = base.removesuffix("/v1")
        self.timeout_s = timeout_s
        self._key_env = api_key_env
        self.extensions = True  # False once the server refused vLLM's completion extensions

    def _key(self) -> str | None:
        if self._key_env is None:
            return None
        return os.environ.get(self._key_env) or None

    def _exchange(self, reply: Reply, read: Callable[[Any], None]) -> Reply:
        key = self._key()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(reply.body).encode() if reply.body is not None else None
        request = urllib.request.Request(
            self.base + reply.path, data=data, method=reply.method, headers=headers
        )
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                reply.status = resp.status
                read(resp)
        except urllib.error.HTTPError as exc:
            reply.status = exc.code
            reply.text = exc.read(ERROR_BODY).decode("utf-8", errors="replace")
            reply.error = f"HTTP {exc.code}"
        except _NO_ANSWER as exc:
            reply.error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        reply.seconds = round(time.perf_counter() - t0, 3)
        if key:  # a server may quote the header it refused
            reply.text = reply.text.replace(key, MASK)
            if reply.error:
                reply.error = reply.error.replace(key, MASK)
        return reply

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Reply:
        """One JSON request; ``data`` is the parsed answer (an error's too)."""

        reply = Reply(method=method, path=path, body=body)

        def read(resp: Any) -> None:
            reply.text = resp.read().decode("utf-8", errors="replace")

        self._exchange(reply, read)
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
        reply = Reply(method="POST", path=path, body={**body, "stream": True})

        def read(resp: Any) -> None:
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

        return self._exchange(reply, read)

    def json_of(self, reply: Reply) -> Any:
        """The answer's JSON; ServerUnreachable unless the server answered 200 with JSON."""
        if reply.ok:
            return reply.data
        detail = reply.error or f"HTTP {reply.status}"
        if reply.status not in {0, 200}:
            detail = f"HTTP {reply.status}: {' '.join(reply.text[:ERROR_DETAIL].split())}"
        raise ServerUnreachable(
            f"{reply.method} {reply.path} at {self.base} failed: {detail}",
            fix="check that the server is up and serves an OpenAI-compatible API",
        )

    def model_ids(self) -> list[str]:
        """GET /v1/models: the served model names."""
        doc = self.json_of(self.get("/v1/models"))
        entries = doc.get("data") if isinstance(doc, dict) else None
        return [str(m.get("id")) for m in entries or [] if isinstance(m, dict)]

    def version(self) -> str | None:
        """GET /version: the server's (vLLM's) version, None when it does not say."""
        reply = self.get("/version")
        doc = reply.data
        if reply.ok and isinstance(doc, dict) and doc.get("version"):
            return str(doc["version"])
        return None

    def complete(
        self,
        model: str,
        prompt_ids: list[int],
        max_tokens: int,
        top_k: int,
        *,
        ignore_eos: bool = False,
    ) -> Completion:
        """A greedy completion of token ids with top-k logprobs (see the module docstring)."""
        body: dict[str, Any] = {
            "model": model,
            "prompt": prompt_ids,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "logprobs": top_k,
        }
        extended = {**body, "return_tokens_as_token_ids": True, "prompt_logprobs": top_k}
        if ignore_eos:  # vLLM: every request yields max_tokens
            extended["ignore_eos"] = True
        reply = self.post("/v1/completions", extended if self.extensions else body)
        if reply.status == 400 and self.extensions:
            self.extensions = False
            reply = self.post("/v1/completions", body)
        data = self.json_of(reply)
        try:
            choice = data["choices"][0]
            lp = choice.get("logprobs") or {}
            return Completion(
                tokens=[str(t) for t in lp.get("tokens") or []],
                token_logprobs=list(lp.get("token_logprobs") or []),
                top_logprobs=[dict(t or {}) for t in lp.get("top_logprobs") or []],
                prompt_logprobs=_prompt_logprobs(choice.get("prompt_logprobs")),
                finish_reason=choice.get("finish_reason"),
                raw_usage=dict(data.get("usage") or {}),
                text=choice.get("text") if isinstance(choice.get("text"), str) else None,
            )
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ServerUnreachable(
                f"the server's completion has no logprobs ({type(exc).__name__}: {exc})",
                fix="use a server that supports `logprobs` on /v1/completions (vLLM does)",
            ) from None


def _prompt_logprobs(raw: Any) -> list[dict[str, float] | None] | None:
    """vLLM: ``[None, {"<id>": {"logprob": x, "rank": r, "decoded_token": t}, ...}, ...]``."""
    if not isinstance(raw, list):
        return None
    out: list[dict[str, float] | None] = []
    for entry in raw:
        if not isinstance(entry, dict):
            out.append(None)
            continue
        row = {}
        for key, value in entry.items():
            lp = value.get("logprob") if isinstance(value, dict) else value
            if isinstance(lp, int | float):
                row[str(key)] = float(lp)
        out.append(row)
    return out


# -- reading vLLM's token ids ---------------------------------------------------------------


def _token_id(token: str) -> int | None:
    if token.startswith(TOKEN_ID_PREFIX):
        try:
            return int(token[len(TOKEN_ID_PREFIX) :])
        except ValueError:
            return None
    return None


def token_ids(tokens: list[str]) -> list[int] | None:
    """``["token_id:7", ...]`` -> ``[7, ...]``; None when any token is not an id."""
    ids = [_token_id(t) for t in tokens]
    return None if any(i is None for i in ids) else [int(i) for i in ids if i is not None]


def top_ids(top: dict[str, float]) -> dict[int, float] | None:
    """A top-k ``{"token_id:7": lp}`` (or prompt_logprobs' ``{"7": lp}``) keyed by id; None
    when a key is neither."""
    out: dict[int, float] = {}
    for key, value in top.items():
        tid = _token_id(key)
        if tid is None:
            if key.lstrip("-").isdigit():  # prompt_logprobs keys are bare ids
                tid = int(key)
            else:
                return None
        out[tid] = float(value)
    return out


# -- reading chat and completion answers -----------------------------------------------------


def choice_of(reply: Reply) -> dict[str, Any]:
    """choices[0] of an answer ({} when absent)."""
    try:
        choice = reply.data["choices"][0]
    except (TypeError, KeyError, IndexError):
        return {}
    return choice if isinstance(choice, dict) else {}


def message_of(reply: Reply) -> dict[str, Any]:
    """choices[0].message of a chat answer ({} when absent)."""
    msg = choice_of(reply).get("message")
    return msg if isinstance(msg, dict) else {}


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
    """The usage block of a stream (its last event that has one)."""
    for event in reversed(reply.events):
        usage = event.get("usage")
        if isinstance(usage, dict):
            return usage
    return None
