"""What the server says about itself: ``/version``, ``/v1/models``, tokenizer fingerprint, and
its Prometheus ``/metrics`` scraped during the run (kept as series beside the client's numbers)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any

from pydantic import BaseModel, Field

from adaptgate.errors import ServerUnreachable
from adaptgate.messages import Said, said

# vLLM gauges and counters worth a series (names differ slightly across versions).
KEEP_PREFIXES = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "vllm:cpu_cache_usage_perc",
    "vllm:prefix_cache_queries",
    "vllm:prefix_cache_hits",
    "vllm:gpu_prefix_cache_queries",
    "vllm:gpu_prefix_cache_hits",
    "vllm:num_preemptions",
    "vllm:prompt_tokens",
    "vllm:generation_tokens",
    "vllm:request_success",
)
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


class ServerInfo(BaseModel):
    url: str
    version: str | None = None
    models: list[dict[str, Any]] = Field(default_factory=list)
    model: str
    max_model_len: int | None = None
    tokenizer: str = Field(description="'server:<model>' (/tokenize) or 'words' (approximate)")
    tokenizer_fingerprint: str | None = Field(
        default=None, description="sha256 of the server's token ids for a fixed probe text"
    )
    has_metrics: bool = False


class MetricSample(BaseModel):
    t: float = Field(description="seconds from the run epoch")
    values: dict[str, float]
    duration_ms: float | None = Field(
        default=None, description="how long the server took to answer this scrape"
    )


def parse_prometheus(text: str, keep: tuple[str, ...] = KEEP_PREFIXES) -> dict[str, float]:
    """The series whose names start with ``keep``, summed over their label sets (one engine ->
    one value each)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m or not m.group(1).startswith(keep) or m.group(1).endswith("_created"):
            continue
        try:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
        except ValueError:
            continue
    return out


async def _get_json(session: Any, url: str, headers: dict[str, str]) -> Any:
    async with session.get(url, headers=headers) as resp:
        if resp.status != 200:
            return None
        return await resp.json(content_type=None)


async def probe(
    session: Any, base: str, headers: dict[str, str], model: str | None
) -> tuple[str | None, list[dict[str, Any]], bool]:
    """(/version, /v1/models data, whether /metrics answers); raises ServerUnreachable."""
    import aiohttp

    base = base.rstrip("/")
    try:
        models_doc = await _get_json(session, base + "/v1/models", headers)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ServerUnreachable(
            f"no server answers at {base}: {type(exc).__name__}: {exc}",
            fix="start the server first, or check the URL (scheme, host, port)",
        ) from None
    models = list((models_doc or {}).get("data") or [])
    version = None
    try:
        doc = await _get_json(session, base + "/version", headers)
        version = str(doc.get("version")) if isinstance(doc, dict) else None
    except (aiohttp.ClientError, OSError, TimeoutError):
        pass
    has_metrics = False
    try:
        async with session.get(base + "/metrics", headers=headers) as resp:
            has_metrics = resp.status == 200
    except (aiohttp.ClientError, OSError, TimeoutError):
        pass
    if model is None and not models:
        raise ServerUnreachable(
            f"{base}/v1/models lists no model", fix="pass --model NAME of the served model"
        )
    return version, models, has_metrics


class Scraper:
    """Polls ``/metrics`` every ``interval`` seconds; raw text is parsed after the run."""

    def __init__(self, base: str, headers: dict[str, str], interval: float) -> None:
        self.url = base.rstrip("/") + "/metrics"
        self.headers = headers
        self.interval = interval
        self.raw: list[tuple[float, float, str]] = []  # (asked at, answered at, text)

    async def run(self, stop: asyncio.Event) -> None:
        import aiohttp

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while not stop.is_set():
                try:
                    t0 = time.monotonic()
                    async with session.get(self.url, headers=self.headers) as resp:
                        if resp.status == 200:
                            text = await resp.text()
                            self.raw.append((t0, time.monotonic(), text))
                except (aiohttp.ClientError, OSError, TimeoutError):
                    pass
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)

    def series(self, epoch: float) -> list[MetricSample]:
        return [
            MetricSample(t=t1 - epoch, values=parse_prometheus(text), duration_ms=(t1 - t0) * 1000)
            for t0, t1, text in self.raw
        ]

    def cost_warning(self, run_s: float, limit: float = 0.005) -> Said | None:
        """A warning when answering the scrapes took more than ``limit`` of the run's time: a
        server busy rendering /metrics delays every stream it is serving meanwhile."""
        spent = sum(t1 - t0 for t0, t1, _ in self.raw)
        if not self.raw or run_s <= 0 or spent / run_s <= limit:
            return None
        each = 1000 * spent / len(self.raw)
        return said("bench.scrape_cost", each=f"{each:.1f}", share=f"{spent / run_s:.1%}")
