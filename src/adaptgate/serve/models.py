"""The launch plan's typed pieces: every flag and variable carries the reason it is there."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adaptgate.errors import UsageError
from adaptgate.inspect.facts import ArchFacts
from adaptgate.record import KV_CACHE_DTYPES
from adaptgate.results import Result

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
    reason: str
    source: str | None = None


class EnvVar(BaseModel):
    name: str
    value: str
    reason: str
    source: str | None = None


class Omitted(BaseModel):
    """Something a seed report or tutorial sets that the plan deliberately leaves out."""

    name: str
    reason: str


class Layout(BaseModel):
    tp: int
    dp: int = 1
    expert_parallel: bool = False
    nodes: int = 1
    devices_per_node: int = 1
    dp_local: int = Field(1, description="data-parallel ranks per node")
    reason: str

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
    reason: str


class MtpPlan(BaseModel):
    layers: int
    enabled: bool
    num_speculative_tokens: int
    kv_bytes_per_token_without: int
    kv_bytes_per_token_with: int
    kv_tokens_without: int
    kv_tokens_with: int
    weight_bytes_per_rank: int = Field(description="estimate: MTP params x bytes/param")
    reason: str


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
    notes: list[str] = Field(default_factory=list)


class OperatorRow(BaseModel):
    op: str
    detail: str
    status: Literal["supported", "unverified", "unsupported", "needs-conversion"]
    note: str
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


class LaunchPlan(Result):
    kind: str = "plan"
    model: str = Field(description="the checkpoint (or config.json) the plan is for")
    served_path: str = Field(description="the directory vLLM loads")
    served_model_name: str
    target: Target
    release: str
    device: str
    stage: Stage
    launcher: Literal["vllm-serve", "python-module"]
    bind_host: str = Field(description="the address vLLM listens on")
    port: int
    facts: ArchFacts
    quant_label: str
    route: str
    route_reason: str
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
    kernels: list[KernelChoice] = Field(default_factory=list)
    setup: list[SetupStep] = Field(default_factory=list)
    memory: MemorySummary | None = None
    features: Features
    validation: list[list[str]] = Field(default_factory=list, description="argv of each check")
    warnings: list[str] = Field(default_factory=list)

    def flag(self, name: str) -> Flag | None:
        return next((f for f in self.flags if f.flag == name), None)

    def env_value(self, name: str) -> str | None:
        var = next((v for v in self.env if v.name == name), None)
        return var.value if var else None
