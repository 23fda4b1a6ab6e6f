"""The benchmark's typed results: written as JSON first, every table and plot renders from it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from adaptgate.bench.config import BenchConfig
from adaptgate.bench.metrics import DEFINITIONS, BenchMetrics
from adaptgate.bench.server import MetricSample, ServerInfo
from adaptgate.bench.validity import ClientHealth, Validity
from adaptgate.results import Result
from adaptgate.stats import METHOD_DESCRIPTIONS


class Reproducibility(BaseModel):
    prompt_set_hash: str = Field(description="sha256 of the prompts and output lengths")
    num_prompts: int
    tokenizer: str
    tokenizer_fingerprint: str | None = None
    dataset_seed: int
    arrival_seed: int
    api_key_env: str = Field(description="env var the key was read from (the key is not stored)")
    api_key_sent: bool
    clock: str = "time.monotonic (CLOCK_MONOTONIC), seconds from the run epoch"


class Attempt(BaseModel):
    """An earlier measurement of the same run that came out INVALID and was measured again."""

    attempt: int = Field(description="1 for the first measurement")
    validity: str
    reasons: list[str] = Field(default_factory=list)
    request_throughput: float
    ttft_p50_ms: float | None = None
    tpot_p50_ms: float | None = None
    client_cpu_wait_p99_ms: float | None = None
    dir: str | None = Field(default=None, description="where its full result was written")

    @classmethod
    def of(cls, attempt: int, result: BenchResult, where: str | None) -> Attempt:
        m, wait = result.metrics, result.client.cpu_wait_ms
        return cls(
            attempt=attempt,
            validity=result.validity.status,
            reasons=list(result.validity.reasons),
            request_throughput=m.request_throughput,
            ttft_p50_ms=m.ttft_ms.p50,
            tpot_p50_ms=m.tpot_ms.p50,
            client_cpu_wait_p99_ms=wait.p99 if wait is not None else None,
            dir=where,
        )


class BenchResult(Result):
    kind: str = "bench"
    label: str | None = None
    config: BenchConfig
    server: ServerInfo
    repro: Reproducibility
    client: ClientHealth
    validity: Validity
    metrics: BenchMetrics = Field(description="the whole run")
    steady: BenchMetrics | None = Field(default=None, description="the steady-state window")
    server_metrics: list[MetricSample] = Field(default_factory=list)
    definitions: dict[str, str] = Field(default_factory=lambda: dict(DEFINITIONS))
    percentile_method: str = METHOD_DESCRIPTIONS["linear"]
    requests_file: str | None = Field(default=None, description="per-request JSONL, if written")
    epoch_monotonic: float | None = Field(
        default=None,
        description="the run epoch on this machine's CLOCK_MONOTONIC: request times + this = "
        "time.monotonic(), to line requests up with server-side logs on the same machine",
    )
    earlier_attempts: list[Attempt] = Field(
        default_factory=list,
        description="measurements of this run that came out INVALID before this one "
        "(validity.retries)",
    )

    @property
    def valid(self) -> bool:
        return self.validity.status == "VALID"

    def vllm_compat(self) -> dict[str, Any]:
        """Fields named as in ``vllm bench serve --save-result``, with vLLM's definitions: its TTFT
        is to the first chunk with choices, even an empty one (our ``ttft_first_chunk_ms``);
        adaptgate's first-token TTFT goes under names vLLM does not use
        (``*_ttft_first_token_ms``)."""
        m, cfg = self.metrics, self.config
        out: dict[str, Any] = {
            "date": self.created,
            "backend": "openai-chat" if cfg.endpoint.api == "chat" else "openai",
            "model_id": self.server.model,
            "tokenizer_id": self.repro.tokenizer,
            "num_prompts": self.repro.num_prompts,
            "request_rate": cfg.load.rate if cfg.load.rate is not None else "inf",
            "burstiness": cfg.load.burstiness,
            "max_concurrency": cfg.load.concurrency,
            "duration": m.duration_s,
            "completed": m.completed,
            "failed": m.failed,
            "total_input_tokens": m.total_input_tokens,
            "total_output_tokens": m.total_output_tokens,
            "request_throughput": m.request_throughput,
            "request_goodput": m.request_goodput,
            "output_throughput": m.output_throughput,
            "total_token_throughput": m.total_token_throughput,
        }
        for key, dist in (
            ("ttft", m.ttft_first_chunk_ms),
            ("ttft_first_token", m.ttft_ms),
            ("tpot", m.tpot_ms),
            ("itl", m.itl_ms),
            ("e2el", m.e2el_ms),
            ("client_queue_time", m.queue_ms),
            ("e2el_including_client_queue", m.e2el_incl_queue_ms),
        ):
            out[f"mean_{key}_ms"] = dist.mean
            out[f"median_{key}_ms"] = dist.p50
            out[f"std_{key}_ms"] = dist.std
            for q in ("p90", "p95", "p99"):
                out[f"{q}_{key}_ms"] = getattr(dist, q)
        return out


class SLAOutcome(BaseModel):
    axis: str = Field(description="'rate' or 'concurrency'")
    quantile: str
    best: float | None = Field(description="largest value meeting every SLO with a VALID run")
    tried: list[tuple[float, bool, str]] = Field(
        default_factory=list, description="(value, met, why) in the order tried"
    )


class SweepResult(Result):
    kind: str = "bench-sweep"
    axis: str
    runs: list[BenchResult]
    sla: SLAOutcome | None = None
