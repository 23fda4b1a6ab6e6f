"""The inspect gate's options (:class:`InspectOptions`) and typed result (:class:`InspectResult`):
the checkpoint's facts, exact parameter counts, quantization, memory plan, support and route."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from adaptgate.errors import EXIT_FAIL, EXIT_OK
from adaptgate.formats.detect import QuantScheme
from adaptgate.inspect.devices import DeviceProfile
from adaptgate.inspect.facts import ArchFacts
from adaptgate.inspect.kvcache import KVCacheFacts
from adaptgate.inspect.lint import Finding
from adaptgate.inspect.memory import RoutePlan
from adaptgate.inspect.opscan import OperatorScan
from adaptgate.inspect.params import ParamCounts
from adaptgate.inspect.releases import ReleaseChoice
from adaptgate.inspect.support import SupportReport
from adaptgate.messages import Said
from adaptgate.results import Result


class InspectOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str | None = Field(None, description="checkpoint directory or cached HF model id")
    config_path: Path | None = Field(None, description="plan from config.json alone")
    target: str | None = None
    release: str | None = None
    device: str | None = None
    devices: int = Field(1, ge=1)
    max_model_len: int | None = Field(None, ge=1)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    kv_cache_dtype: Literal["auto", "bf16", "fp8", "int8"] = "auto"
    cpu_memory_gib: float | None = Field(None, gt=0)
    speculative_mtp: bool = Field(False, description="plan the MTP draft layers' KV too")
    cpu_flags: frozenset[str] | None = Field(
        None, description="flags of the target CPU (--target cpu); default: this host's"
    )
    allow_pickle: bool = False
    vllm_src: Path | None = Field(None, description="vLLM tree for the operator scan")
    vllm_ascend_src: Path | None = Field(
        None, description="vllm-ascend tree the operator scan checks against"
    )


class ParamsCheck(BaseModel):
    headers_total: int
    computed_total: int
    diff_pct: float
    headers_mtp: int
    computed_mtp: int


class RouteOption(BaseModel):
    route: str
    title: Said
    weight_bytes: int = Field(description="bytes the weights take in device memory")
    file_bytes: int | None = Field(
        None, description="bytes read from the checkpoint, where they differ from weight_bytes"
    )
    loads_as: str | None = Field(None, description="native: the dtype the engine loads it as")
    plan: RoutePlan | None = None


class InspectResult(Result):
    kind: str = "inspect"
    mode: Literal["checkpoint", "config"]
    model: str | None
    config_path: str | None
    facts: ArchFacts
    params: ParamCounts | None = Field(None, description="exact, from tensor headers")
    params_computed: ParamCounts
    params_check: ParamsCheck | None = None
    quant: QuantScheme
    kv_cache: KVCacheFacts
    kv_cache_dtype: str
    device: DeviceProfile | None = None
    devices: int = 1
    utilization: float | None = None
    max_model_len: int | None = None
    support: SupportReport | None = None
    release: ReleaseChoice | None = Field(
        None, description="the engine release planned for (--target), and why that one"
    )
    routes: list[RouteOption] = Field(default_factory=list)
    recommended: str | None = None
    recommendation: Said | None = None
    verdict: Literal["PASS", "FAIL"]
    reason: Said
    warnings: list[Said] = Field(default_factory=list)
    findings: list[Finding] = Field(
        default_factory=list, description="checkpoint consistency lint (errors fail inspect)"
    )
    operator_scan: OperatorScan | None = Field(
        None, description="the model code's operators against vllm-ascend (Ascend targets)"
    )

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.verdict == "PASS" else EXIT_FAIL

    @property
    def counts(self) -> ParamCounts:
        return self.params or self.params_computed
