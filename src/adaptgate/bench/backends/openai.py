"""OpenAI-compatible streaming client: ``/v1/completions`` and ``/v1/chat/completions``.

Hot path discipline: bodies are serialized before the run and sent through
:class:`~adaptgate.bench.backends.http.HTTPClient`, which stamps every socket read in its protocol
callback. Parsing waits until the request has ended (:func:`adaptgate.bench.timeline.finalize`),
so JSON work never delays a timestamp. aiohttp (:func:`new_session`) serves everything else.
"""

from __future__ import annotations

import json
import os
from typing import Any

from adaptgate.bench.backends.http import HTTPClient
from adaptgate.bench.data import PromptItem
from adaptgate.bench.models import EndpointConfig


def auth_headers(cfg: EndpointConfig) -> dict[str, str]:
    """Bearer header from the environment variable named in the config; never stored."""
    key = os.environ.get(cfg.api_key_env)
    return {"Authorization": f"Bearer {key}"} if key else {}


class OpenAIBackend:
    def __init__(self, cfg: EndpointConfig, model: str, *, ignore_eos: bool) -> None:
        self.cfg = cfg
        self.model = model
        self.ignore_eos = ignore_eos
        self.headers = {"Content-Type": "application/json", **auth_headers(cfg)}

    def payload(self, item: PromptItem, messages: list[dict[str, str]] | None = None) -> bytes:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": item.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.cfg.temperature is not None:
            body["temperature"] = self.cfg.temperature
        if self.ignore_eos:
            body["ignore_eos"] = True
        if self.cfg.api == "chat":
            body["messages"] = messages or [{"role": "user", "content": item.prompt}]
        else:
            body["prompt"] = item.prompt if messages is None else _flatten(messages)
        body.update(self.cfg.extra_body)
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    def client(self) -> HTTPClient:
        """A connection pool for the hot path (one per client event loop)."""
        return HTTPClient(
            self.cfg.url, timeout_s=self.cfg.timeout_s, read_timeout_s=self.cfg.read_timeout_s
        )

    def request(self, client: HTTPClient, body: bytes) -> bytes:
        """The whole HTTP request for a JSON ``body``."""
        return client.request("POST", self.cfg.path, self.headers, body)

    def probe_request(self, client: HTTPClient) -> bytes:
        """A cheap request that proves a connection: ``GET /v1/models``."""
        headers = {k: v for k, v in self.headers.items() if k != "Content-Type"}
        return client.request("GET", "/v1/models", headers)


def _flatten(messages: list[dict[str, str]]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"


def new_session(connections: int | None = None) -> Any:
    """An aiohttp session without a connection cap (a cap would queue requests invisibly)."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=connections or 0, limit_per_host=0, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector, read_bufsize=2**18, auto_decompress=False, trust_env=False
    )
