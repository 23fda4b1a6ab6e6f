"""OpenAI-compatible streaming client: ``/v1/completions`` and ``/v1/chat/completions``.

Hot path discipline: bodies are serialized before the run; while a response streams, the client
only appends ``(clock, bytes)`` per socket read. Parsing waits until the request has ended
(:func:`adaptgate.bench.timeline.finalize`), so JSON work never delays a timestamp.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from adaptgate.bench.config import EndpointConfig
from adaptgate.bench.data import PromptItem
from adaptgate.bench.timeline import Exchange

MAX_ERROR_BODY = 2000


def auth_headers(cfg: EndpointConfig) -> dict[str, str]:
    """Bearer header from the environment variable named in the config; never stored."""
    key = os.environ.get(cfg.api_key_env)
    return {"Authorization": f"Bearer {key}"} if key else {}


class OpenAIBackend:
    def __init__(self, cfg: EndpointConfig, model: str, *, ignore_eos: bool) -> None:
        self.cfg = cfg
        self.model = model
        self.ignore_eos = ignore_eos
        self.url = cfg.url.rstrip("/") + cfg.path
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

    def timeout(self) -> Any:
        import aiohttp

        return aiohttp.ClientTimeout(total=self.cfg.timeout_s, sock_read=self.cfg.read_timeout_s)

    async def send(self, session: Any, body: bytes, ex: Exchange) -> None:
        """Stream one request into ``ex``; every failure is recorded, none is raised
        (except cancellation, recorded then re-raised)."""
        import aiohttp

        clock = time.monotonic
        reads = ex.reads
        ex.sent_at = clock()
        try:
            async with session.post(
                self.url, data=body, headers=self.headers, timeout=self.timeout()
            ) as resp:
                ex.headers_at = clock()
                ex.status = resp.status
                if resp.status != 200:
                    ex.body = (await resp.read())[:MAX_ERROR_BODY]
                else:
                    async for data in resp.content.iter_any():
                        reads.append((clock(), data))
        except asyncio.CancelledError:
            ex.error, ex.error_detail = "cancelled", "the run was interrupted"
            ex.end_at = clock()
            raise
        except TimeoutError:
            ex.error, ex.error_detail = "timeout", "no complete response within the timeout"
        except aiohttp.ClientConnectorError as exc:
            ex.error, ex.error_detail = "connect_error", str(exc)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            ex.error, ex.error_detail = "server_disconnected", f"{type(exc).__name__}: {exc}"
        except aiohttp.ClientResponseError as exc:
            ex.error, ex.error_detail = "bad_response", f"{type(exc).__name__}: {exc}"
        except (aiohttp.ClientError, OSError) as exc:
            ex.error, ex.error_detail = "transport_error", f"{type(exc).__name__}: {exc}"
        ex.end_at = clock()


def _flatten(messages: list[dict[str, str]]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"


def new_session(connections: int | None = None) -> Any:
    """An aiohttp session without a connection cap (a cap would queue requests invisibly)."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=connections or 0, limit_per_host=0, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector, read_bufsize=2**18, auto_decompress=False, trust_env=False
    )
