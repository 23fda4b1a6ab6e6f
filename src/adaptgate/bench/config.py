"""Typed settings of a benchmark; a scenario YAML file is this model written out.

Precedence: CLI options > scenario file > defaults. The API key is never a setting: only the name
of the environment variable that holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adaptgate.errors import UsageError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointConfig(_Model):
    url: str = Field(description="server base URL, e.g. http://127.0.0.1:8000")
    model: str | None = Field(default=None, description="served model name; default: the first")
    api: Literal["completions", "chat"] = "completions"
    api_key_env: str = Field(default="OPENAI_API_KEY", description="env var holding the key")
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


def load_scenario(path: Path) -> dict[str, object]:
    """A scenario YAML as a dict (validated when merged with the CLI options)."""
    import yaml

    if not path.is_file():
        raise UsageError(f"scenario file {path} does not exist", fix="pass an existing YAML file")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a YAML mapping", fix="see `adaptgate bench --help`")
    return data


def merge(base: dict[str, object], overrides: dict[str, dict[str, object]]) -> dict[str, object]:
    """Section-wise update of a scenario dict with the options given on the command line."""
    merged = dict(base)
    for section, values in overrides.items():
        current = merged.get(section) or {}
        if not isinstance(current, dict):
            raise UsageError(f"scenario section {section!r} must be a mapping")
        merged[section] = {**current, **{k: v for k, v in values.items() if v is not None}}
    return merged
