"""A minimal OpenAI-compatible client for the served-model check (standard library only).

Requests send the reference's token ids as the prompt (no re-tokenization on the server),
greedy decoding (``temperature 0``), ``logprobs`` top-k, and two vLLM extensions that other
servers ignore or reject: ``return_tokens_as_token_ids`` (tokens come back as ``token_id:N``)
and ``prompt_logprobs``. A 400 answer to the extensions is retried without them.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from adaptgate.errors import AdaptgateError

TOKEN_ID_PREFIX = "token_id:"


class ServerError(AdaptgateError, ConnectionError):
    """The server could not be reached or answered with an error."""


@dataclass
class Completion:
    tokens: list[str]  # "token_id:N" or token text
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float]]
    prompt_logprobs: list[dict[str, float] | None] | None = None
    finish_reason: str | None = None
    raw_usage: dict[str, Any] = field(default_factory=dict)
    text: str | None = None  # the generated text, as the server decoded it


def _post(url: str, body: dict[str, Any], timeout: float, headers: dict[str, str]) -> Any:
    data = json.dumps(body).encode("utf-8")
    req = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **headers}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))


def _get(url: str, timeout: float, headers: dict[str, str]) -> Any:
    req = urllib.request.Request(url, headers=headers, method="GET")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))


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


class OpenAIClient:
    def __init__(self, url: str, *, timeout: float = 120.0, api_key_env: str = "OPENAI_API_KEY"):
        self.base = url.rstrip("/")
        if not self.base.endswith("/v1"):
            self.base += "/v1"
        self.timeout = timeout
        key = os.environ.get(api_key_env)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.extensions = True

    def _fail(self, what: str, exc: Exception) -> ServerError:
        detail = str(exc)
        if isinstance(exc, urllib.error.HTTPError):
            body = exc.read().decode("utf-8", "replace")[:300]
            detail = f"HTTP {exc.code}: {' '.join(body.split())}"
        return ServerError(
            f"{what} at {self.base} failed: {detail}",
            fix="check that the server is up and serves an OpenAI-compatible API",
        )

    def models(self) -> list[str]:
        try:
            data = _get(f"{self.base}/models", self.timeout, self.headers)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise self._fail("GET /v1/models", exc) from None
        return [str(m.get("id")) for m in data.get("data", []) if isinstance(m, dict)]

    def complete(
        self,
        model: str,
        prompt_ids: list[int],
        max_tokens: int,
        top_k: int,
        *,
        ignore_eos: bool = False,
    ) -> Completion:
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
        try:
            try:
                data = _post(
                    f"{self.base}/completions",
                    extended if self.extensions else body,
                    self.timeout,
                    self.headers,
                )
            except urllib.error.HTTPError as exc:
                if exc.code != 400 or not self.extensions:
                    raise
                self.extensions = False
                data = _post(f"{self.base}/completions", body, self.timeout, self.headers)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise self._fail("POST /v1/completions", exc) from None
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
            raise ServerError(
                f"the server's completion has no logprobs ({type(exc).__name__}: {exc})",
                fix="use a server that supports `logprobs` on /v1/completions (vLLM does)",
            ) from None
