"""The KV-cache gate's typed result: JSON first; the table and the plot render it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from adaptgate.kvcache.degeneration import Degeneration
from adaptgate.kvcache.scan import LayerScan
from adaptgate.precision.metrics import GenerationMetrics, LogitMetrics
from adaptgate.precision.thresholds import Check
from adaptgate.results import Result

Verdict = Literal["SAFE", "RISKY", "UNSAFE"]
VERDICT_ORDER: dict[str, int] = {"SAFE": 0, "RISKY": 1, "UNSAFE": 2}


class ModelInfo(BaseModel):
    path: str
    architecture: str
    num_layers: int
    kv_heads: int
    head_dim: int
    attention_bias: bool = Field(description="k_proj carries a bias (Qwen2-style)")
    qk_norm: bool = Field(description="keys are RMS-normalized before rotary (Qwen3-style)")
    dtype: str = Field(description="the checkpoint's dtype (the engine's activation dtype)")


class Settings(BaseModel):
    scales: Literal["checkpoint", "unit", "calibrated"]
    new_tokens: int
    prompts: int
    reference_dtype: str
    threads: int | None
    thresholds: str


class PromptInfo(BaseModel):
    id: str
    category: str
    tokens: int
    baseline_repetition: float
    baseline_loop_period: int | None


class ScaleReport(BaseModel):
    source: Literal["checkpoint", "unit", "calibrated"]
    per_channel: bool
    k: list[float] = Field(description="per layer: the scale (C8: the largest channel scale)")
    v: list[float]
    notes: list[str] = Field(default_factory=list)


class ScanSummary(BaseModel):
    elements: int = Field(description="K and V elements scanned")
    saturated: int
    saturated_fraction: float
    overflow_fraction: float = Field(
        description="worst layer and tensor: share clipped by more than 20%"
    )
    flushed_fraction: float = Field(description="worst layer (FP8 underflow to zero)")
    rel_rms_error: float = Field(description="worst layer and tensor")
    clip_ratio: float = Field(description="max |x/scale| over every layer / the largest code")


class FormatReport(BaseModel):
    format: str
    title: str
    engine: str
    prefill: Literal["fresh", "cache"] = Field(
        description="where prefill attention reads K/V: the fresh values or the cache"
    )
    how_enabled: str
    vllm_flag: str | None
    deployable: bool = Field(True, description="False: the engine refuses this checkpoint")
    scales: ScaleReport
    verdict: Verdict
    reason: str
    checks: list[Check]
    layers_at_risk: list[str]
    scan: ScanSummary
    logits: LogitMetrics = Field(description="teacher-forced, every step of every prompt")
    kl_per_step: list[float] = Field(description="mean KL over prompts at each step")
    top1_per_step: list[float] = Field(description="top-1 agreement over prompts at each step")
    generation: GenerationMetrics
    degeneration: list[Degeneration]
    repetition_increase: float
    degenerated_share: float
    nonfinite_steps: int


class Timings(BaseModel):
    load_seconds: float
    calibrate_seconds: float
    simulate_seconds: float
    total_seconds: float


class KVCacheResult(Result):
    kind: str = "kvcache"
    model: ModelInfo
    settings: Settings
    prompts: list[PromptInfo]
    formats: list[FormatReport]
    scan: list[LayerScan]
    recommended_kv_cache_dtype: str = Field(
        description="vLLM's --kv-cache-dtype: the best SAFE FP8 format, else auto"
    )
    recommended_ascend: str = Field(description='"C8" when int8_c8 is SAFE, else "none"')
    recommendation: str
    artifacts: list[str] = Field(default_factory=list)
    timings: Timings | None = None

    def format(self, name: str) -> FormatReport | None:
        return next((f for f in self.formats if f.format == name), None)
