"""The benchmark's typed settings (:class:`BenchConfig`: a scenario YAML file is this model written
out) and results (written as JSON first; every table and plot renders from them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adaptgate.bench.metrics import DEFINITIONS, BenchMetrics
from adaptgate.bench.server import MetricSample, ServerInfo
from adaptgate.bench.validity import ClientHealth, Validity
from adaptgate.client import API_KEY_ENV
from adaptgate.errors import UsageError
from adaptgate.messages import Said
from adaptgate.results import Result
from adaptgate.stats import METHOD_DESCRIPTIONS, METHOD_DESCRIPTIONS_ZH


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
    reasons: list[Said] = Field(default_factory=list)
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
    definitions: dict[str, Said] = Field(default_factory=lambda: dict(DEFINITIONS))
    percentile_method: Said = Said(
        text=METHOD_DESCRIPTIONS["linear"], zh=METHOD_DESCRIPTIONS_ZH["linear"]
    )
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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointConfig(_Model):
    url: str = Field(description="server base URL, e.g. http://127.0.0.1:8000")
    model: str | None = Field(default=None, description="served model name; default: the first")
    api: Literal["completions", "chat"] = "completions"
    api_key_env: str = Field(default=API_KEY_ENV, description="env var holding the key")
    timeout_s: float = Field(default=600.0, gt=0, description="whole-request timeout")
    read_timeout_s: float | None = Field(default=None, gt=0, description="max gap between reads")
    temperature: float | None = Field(
        default=None,
        description="sent only when set; None leaves sampling to the server's defaults (the "
        "model's generation_config), as vllm bench serve does -- greedy (0) is cheaper on the "
        "server, so the two are different workloads",
    )
    extra_body: dict[str, object] = Field(default_factory=dict)

    @property
    def path(self) -> str:
        return "/v1/chat/completions" if self.api == "chat" else "/v1/completions"


class DatasetConfig(_Model):
    kind: Literal["random", "sharegpt", "jsonl", "multiturn"] = "random"
    input_len: int = Field(default=128, ge=1)
    output_len: int = Field(default=128, ge=1)
    range_ratio: float = Field(default=0.0, ge=0, lt=1, description="lengths uniform in ±ratio")
    prefix_len: int = Field(default=0, ge=0, description="shared prefix tokens")
    num_prefixes: int = Field(default=1, ge=1, description="distinct shared prefixes")
    path: Path | None = None
    turns: int = Field(default=3, ge=1, description="multiturn: user turns per conversation")
    think_time_s: float = Field(default=0.0, ge=0, description="multiturn: pause between turns")
    ignore_eos: bool = True
    align_with_server: bool = Field(default=True, description="align lengths via /tokenize")
    seed: int = 0


class LoadConfig(_Model):
    mode: Literal["open", "closed"] = "open"
    arrival: Literal["poisson", "gamma", "constant"] = "poisson"
    rate: float | None = Field(default=None, gt=0, description="req/s; None = all at once")
    burstiness: float = Field(default=1.0, gt=0, description="gamma shape; 1 = Poisson")
    concurrency: int | None = Field(
        default=None, ge=1, description="closed: in-flight requests; open: cap on in-flight"
    )
    num_requests: int | None = Field(default=200, ge=1)
    duration_s: float | None = Field(default=None, gt=0)
    warmup_requests: int = Field(default=0, ge=0)
    workers: int | Literal["auto"] = Field(default="auto", description="client processes")
    client_cpus: list[int] | None = Field(
        default=None,
        description="run the client (and its worker processes) on these CPUs only: on a host "
        "that also runs the server, the CPUs the server was not pinned to",
    )
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> LoadConfig:
        if self.mode == "closed" and self.concurrency is None:
            raise UsageError("a closed-loop load needs --concurrency")
        if self.num_requests is None and self.duration_s is None:
            raise UsageError("give a request count or a duration")
        return self


class SLOConfig(_Model):
    ttft_ms: float | None = Field(default=None, gt=0)
    tpot_ms: float | None = Field(default=None, gt=0)
    e2el_ms: float | None = Field(default=None, gt=0)

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.e2el_ms))


class ValidityConfig(_Model):
    """When the client, not the server, limited a run (thresholds of INVALID)."""

    max_rate_shortfall: float = Field(default=0.01, description="delivered vs scheduled rate")
    max_lateness_p99_ms: float = Field(
        default=10.0, description="dispatch lateness p99 (floor of the limit)"
    )
    max_lateness_gap_fraction: float = Field(
        default=0.5,
        description="dispatch lateness p99 may reach this fraction of the mean inter-arrival gap "
        "(later than that, requests bunch into bursts the schedule did not ask for)",
    )
    max_loop_lag_p99_ms: float = Field(default=5.0, description="event-loop lag p99")
    max_client_cpu: float = Field(default=0.9, description="busiest worker's CPU share of a core")
    max_cpu_wait_p99_ms: float = Field(
        default=0.5,
        description="client's mean wait for a CPU per wakeup, p99 over 10 ms windows (kernel "
        "schedstat): above it, timestamps are late because other work holds the client's CPU "
        "(floor of the limit)",
    )
    max_cpu_wait_itl_fraction: float = Field(
        default=0.05,
        description="the CPU-wait limit may reach this fraction of the median inter-token gap "
        "(a slow CPU server tolerates proportionally later timestamps)",
    )
    retries: int = Field(
        default=0,
        ge=0,
        le=10,
        description="measure again, at most this many times, when a run comes out INVALID; "
        "every attempt is kept (no limit above is loosened)",
    )


class SweepConfig(_Model):
    rates: list[float] = Field(default_factory=list)
    concurrencies: list[int] = Field(default_factory=list)
    sla_search: bool = Field(default=False, description="largest rate/concurrency meeting SLOs")
    sla_quantile: Literal["p50", "p90", "p95", "p99"] = "p99"
    search_steps: int = Field(default=6, ge=1)


class OutputConfig(_Model):
    dir: Path | None = None
    plots: bool = True
    keep_text: bool = False
    scrape_metrics: bool = True
    scrape_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="a vLLM API server stalls its streams ~10 ms to render /metrics (measured on "
        "the CPU build): every scrape shows in tail latency, so not too often",
    )
    label: str | None = None


class BenchConfig(_Model):
    endpoint: EndpointConfig
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    load: LoadConfig = Field(default_factory=LoadConfig)
    slo: SLOConfig = Field(default_factory=SLOConfig)
    validity: ValidityConfig = Field(default_factory=ValidityConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
