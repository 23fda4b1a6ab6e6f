"""The serve gate's options and typed results: the launch plan (every flag and variable carries
the reason it is there), a served model (:class:`ServeOptions` -> :class:`ServeResult`) and the
gate's result (:class:`ServeGateResult`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adaptgate.errors import (
    EXIT_FAIL,
    EXIT_OK,
    UsageError,
)
from adaptgate.inspect.facts import ArchFacts
from adaptgate.inspect.opscan import OperatorScan
from adaptgate.messages import Said
from adaptgate.record import KV_CACHE_DTYPES
from adaptgate.results import Result
from adaptgate.serve.doctor import Diagnosis
from adaptgate.serve.logfacts import LogFacts
from adaptgate.serve.server_facts import ServerFacts

Target = Literal["ascend-a2", "ascend-a3", "cuda", "cpu"]
TARGETS: tuple[Target, ...] = ("ascend-a2", "ascend-a3", "cuda", "cpu")
Stage = Literal["dummy", "real"]
RouteName = Literal["native", "bf16", "w8a8_dynamic"]
# The device profile a target plans for when --device is not given.
DEFAULT_DEVICE: dict[str, str] = {
    "ascend-a2": "910b3",
    "ascend-a3": "a3",
    "cuda": "h100",
    "cpu": "cpu",
}


class PlanOptions(BaseModel):
    """What ``adaptgate plan`` (and serve) is asked for."""

    model_config = ConfigDict(frozen=True)

    model: str | None = Field(None, description="checkpoint directory")
    config_path: Path | None = Field(None, description="plan from config.json alone")
    target: Target
    release: str | None = Field(None, description="vllm-ascend / vLLM release (default: latest)")
    device: str | None = Field(None, description="device profile id (default per target)")
    devices: int = Field(1, ge=1, description="devices per node")
    nodes: int | None = Field(None, ge=1, description="None: one node, more only if needed")
    max_model_len: int | None = Field(None, ge=16)
    max_num_seqs: int | None = Field(None, ge=1)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    kv_cache_dtype: str = Field(
        "auto", description="auto, bf16, fp8, fp8_e4m3, fp8_e5m2 (vLLM) or int8 (Ascend C8)"
    )
    avg_context_tokens: int = Field(
        2048, ge=16, description="average context per running request, sizes --max-num-seqs"
    )
    route: RouteName | None = Field(None, description="override inspect's recommended route")
    served_model_name: str | None = None
    served_path: str | None = Field(None, description="path vLLM loads (default: per route)")
    host: str | None = Field(None, description="default 0.0.0.0, 127.0.0.1 on cpu")
    port: int = Field(8000, ge=0, le=65535)
    stage: Stage = "real"
    tools: bool | None = Field(None, description="None: on when the family has a tool parser")
    reasoning: bool | None = Field(None, description="None: on for thinking models")
    mtp: bool | None = Field(None, description="None: on when the model has MTP layers")
    mtp_tokens: int | None = Field(None, ge=1, le=8)
    enforce_eager: bool | None = Field(None, description="None: eager on cpu only")
    cpu_kv_cache_gib: int = Field(1, ge=1, description="VLLM_CPU_KVCACHE_SPACE on cpu")
    cpu_amx: bool | None = Field(None, description="None: read this host's /proc/cpuinfo")
    image: str | None = Field(None, description="container image (default per target/release)")
    container_model_dir: str = "/models"
    vllm_src: Path | None = Field(None, description="vLLM tree for the operator scan")
    vllm_ascend_src: Path | None = Field(None, description="vllm-ascend tree it checks against")
    cpu_memory_gib: float | None = Field(None, gt=0)

    @field_validator("kv_cache_dtype")
    @classmethod
    def _known_kv_dtype(cls, value: str) -> str:
        if value not in KV_CACHE_DTYPES:
            raise UsageError(
                f"unknown KV-cache dtype {value!r}", fix=f"use one of: {', '.join(KV_CACHE_DTYPES)}"
            )
        return value


def inspect_kv_dtype(value: str) -> Literal["auto", "bf16", "fp8", "int8"]:
    """The element type inspect sizes the cache with (every FP8 variant is one byte)."""
    if value.startswith("fp8"):
        return "fp8"
    if value in {"auto", "bf16", "int8"}:
        return value  # type: ignore[return-value]
    raise ValueError(value)


class Flag(BaseModel):
    """One engine argument: ``value`` None for a switch."""

    flag: str
    value: str | None = None
    reason: Said
    source: str | None = None


class EnvVar(BaseModel):
    name: str
    value: str
    reason: Said
    source: str | None = None


class Omitted(BaseModel):
    """Something a seed report or tutorial sets that the plan deliberately leaves out."""

    name: str
    reason: Said


class Layout(BaseModel):
    tp: int
    dp: int = 1
    expert_parallel: bool = False
    nodes: int = 1
    devices_per_node: int = 1
    dp_local: int = Field(1, description="data-parallel ranks per node")
    reason: Said

    @property
    def ranks(self) -> int:
        return self.tp * self.dp


class MemorySummary(BaseModel):
    """Inspect's memory plan of the chosen layout, restated for the runbook."""

    route: str
    device: str
    device_memory_bytes: int
    utilization: float
    weights_per_rank: int
    activation_reserve: int
    non_torch: int
    kv_budget: int
    kv_bytes_per_token: int
    kv_block_size: int
    predicted_kv_tokens: int = Field(description="KV-cache capacity inspect predicts per replica")
    max_len_one_seq: int
    concurrency_at_max_len: int | None
    status: str
    reason: Said


class MtpPlan(BaseModel):
    layers: int
    enabled: bool
    num_speculative_tokens: int
    kv_bytes_per_token_without: int
    kv_bytes_per_token_with: int
    kv_tokens_without: int
    kv_tokens_with: int
    weight_bytes_per_rank: int = Field(description="estimate: MTP params x bytes/param")
    reason: Said


class NodeCommand(BaseModel):
    """One node's launch: env plus ``vllm serve`` (node-specific flags appended)."""

    node: int
    role: Literal["single", "head", "worker"]
    env: list[EnvVar]
    extra_flags: list[Flag] = Field(default_factory=list)
    placeholders: dict[str, str] = Field(
        default_factory=dict, description="shell variables the operator must set, with meaning"
    )


class ContainerCommand(BaseModel):
    image: str
    name: str
    run: list[str]
    exec: list[str]
    notes: list[Said] = Field(default_factory=list)


class OperatorRow(BaseModel):
    op: str
    detail: Said
    status: Literal["supported", "unverified", "unsupported", "needs-conversion"]
    note: Said
    source: str | None = None


class ConversionStep(BaseModel):
    route: str
    argv: list[str]
    output: str
    reason: str


class KernelChoice(BaseModel):
    """A kernel adaptgate can add to the engine, and whether this plan turns it on."""

    name: str
    title: str
    enabled: bool
    env: str | None = Field(None, description="the variable that switches it on")
    reason: str
    source: str | None = None


class SetupStep(BaseModel):
    """Commands run before the launch: on each node's host, then inside its container."""

    name: str
    title: str
    host: list[list[str]] = Field(default_factory=list)
    container: list[list[str]] = Field(default_factory=list)
    reason: str
    source: str | None = None
    expect: str | None = Field(None, description="what the last command prints when it worked")


class Features(BaseModel):
    thinking: bool
    tools: bool
    reasoning_parser: str | None = None
    tool_parser: str | None = None
    graph_mode: str
    async_scheduling: bool
    quantization: str = Field(description="what vLLM runs: the scheme and its flag")
    kv_cache_dtype: str


class SeedDisagreement(BaseModel):
    """A seed report's claim about this model or platform that adaptgate does not share
    (serve/seed_disagreements.yaml)."""

    id: str
    seed: str
    quote: str = Field(description="the seed's words (Chinese)")
    gloss: str = Field(description="the quote in English")
    position: Said
    reason: Said = Field(description="why, and what adaptgate measured or only read")
    source: Said


class LaunchPlan(Result):
    kind: str = "plan"
    model: str = Field(description="the checkpoint (or config.json) the plan is for")
    served_path: str = Field(description="the directory vLLM loads")
    served_model_name: str
    target: Target
    release: str
    release_reason: Said = Field(
        Said(text=""),
        description="why this release: --release, the installed engine, or the newest known",
    )
    device: str
    stage: Stage
    launcher: Literal["vllm-serve", "python-module"]
    bind_host: str = Field(description="the address vLLM listens on")
    port: int
    facts: ArchFacts
    quant_label: str
    route: str
    route_reason: Said
    conversion: ConversionStep | None = None
    layout: Layout
    max_model_len: int
    max_num_seqs: int
    flags: list[Flag]
    env: list[EnvVar]
    omitted: list[Omitted] = Field(default_factory=list)
    commands: list[NodeCommand]
    container: ContainerCommand | None = None
    mtp: MtpPlan | None = None
    operators: list[OperatorRow]
    operator_scan: OperatorScan | None = Field(
        None, description="the model code's operators against vllm-ascend (Ascend targets)"
    )
    kernels: list[KernelChoice] = Field(default_factory=list)
    setup: list[SetupStep] = Field(default_factory=list)
    memory: MemorySummary | None = None
    features: Features
    validation: list[list[str]] = Field(default_factory=list, description="argv of each check")
    warnings: list[Said] = Field(default_factory=list)
    seed_disagreements: list[SeedDisagreement] = Field(
        default_factory=list, description="where adaptgate disagrees with a seed about this model"
    )

    def flag(self, name: str) -> Flag | None:
        return next((f for f in self.flags if f.flag == name), None)

    def env_value(self, name: str) -> str | None:
        var = next((v for v in self.env if v.name == name), None)
        return var.value if var else None


class ServeOptions(BaseModel):
    plan: PlanOptions
    run_dir: Path
    vllm_python: str | None = None
    ready_timeout_s: float | None = Field(None, gt=0)
    stop_grace_s: float = Field(30.0, gt=0)
    hold: bool = Field(False, description="keep serving until Ctrl-C / SIGTERM")
    smoke: bool = Field(False, description="run the smoke checks once it serves")
    smoke_concurrency: int = 4
    cpus: tuple[int, ...] | None = Field(
        None,
        description="run every vLLM process on these CPUs only (cpu target: the worker's "
        "OpenMP threads bound to them too), leaving the others to a benchmark client",
    )


class StopInfo(BaseModel):
    signals: list[str]
    seconds: float
    leftover_pids: list[int]
    swept_tmp_files: int


class ServeResult(Result):
    kind: str = "serve"
    verdict: Literal["PASS", "FAIL"]
    reason: Said
    stage: str
    url: str
    python: str
    command: list[str]
    log: str
    plan: LaunchPlan
    cpus: list[int] | None = Field(None, description="the CPUs every vLLM process was pinned to")
    startup_seconds: float | None = None
    served_models: list[str] = Field(default_factory=list)
    reported_max_model_len: int | None = None
    kv_cache_tokens_reported: int | None = None
    kv_cache_tokens_predicted: int | None = None
    kv_ratio: float | None = Field(None, description="reported / predicted")
    log_facts: LogFacts = Field(default_factory=LogFacts)
    diagnosis: Diagnosis | None = None
    log_tail: str | None = None
    stop: StopInfo | None = None
    smoke: dict[str, Any] | None = Field(None, description="the smoke result, when run")

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.verdict == "PASS" else EXIT_FAIL


class ServeGateResult(Result):
    kind: str = "serve-gate"
    plan: LaunchPlan
    stage_a: ServeResult | None = None
    stage_b: ServeResult | None = None
    skipped: Said | None = Field(None, description="why serving was skipped")
    operators_proven: bool | None = Field(
        None, description="Stage A started the architecture on the backend: the table holds"
    )
    server: ServerFacts | None = Field(
        None, description="--url: the measured server's own facts and how it departs from the plan"
    )
