"""The KV-cache gate's options (:class:`KVCacheConfig`) and typed result: JSON first; the table
and the plot render it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adaptgate.errors import UsageError
from adaptgate.kvcache.degeneration import Degeneration
from adaptgate.kvcache.formats import FORMAT_NAMES, KV_FORMATS
from adaptgate.kvcache.scales import ScaleMode
from adaptgate.kvcache.scan import LayerScan
from adaptgate.messages import Said
from adaptgate.metrics.limits import Check
from adaptgate.metrics.logits import GenerationMetrics, LogitMetrics
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


Mode = Literal["auto", "full", "teacher-forced"]


class Settings(BaseModel):
    scales: Literal["checkpoint", "unit", "calibrated"]
    mode: Literal["full", "teacher-forced"] = Field(
        "full",
        description="full: free-running greedy decoding and the teacher-forced pass along the "
        "baseline's continuation; teacher-forced: one pass over the weights along forced texts, "
        "degeneration not measured",
    )
    loading: Literal["full", "streamed"] = Field("full", description="streamed: layer by layer")
    new_tokens: int = Field(description="greedy tokens (full) or forced tokens (teacher-forced)")
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
    notes: list[Said] = Field(default_factory=list)


class ScanSummary(BaseModel):
    elements: int = Field(description="K and V elements scanned")
    saturated: int
    saturated_fraction: float
    overflow_fraction: float | None = Field(
        None,
        description="worst layer and tensor: share clipped by more than 20% (None: a result "
        "written before adaptgate measured it)",
    )
    flushed_fraction: float = Field(description="worst layer (FP8 underflow to zero)")
    rel_rms_error: float = Field(description="worst layer and tensor")
    clip_ratio: float = Field(description="max |x/scale| over every layer / the largest code")


class Endpoint(BaseModel):
    url: str
    model: str
    managed: bool = Field(description="started here for this measurement (else given)")
    log: str | None = None
    startup_seconds: float | None = None


class EngineArm(BaseModel):
    """One server (one ``--kv-cache-dtype``) against the FP32 reference."""

    kv_cache_dtype: str
    endpoint: Endpoint
    positions: int = Field(description="teacher-forced positions scored")
    kl_mean: float = Field(description="KL(engine || reference), top-k lower bound, mean")
    kl_max: float
    top1_agreement: float = Field(description="engine argmax == reference argmax")
    logprob_abs_diff_mean: float = Field(description="|Δ log p| of the forced token")
    exact_match_rate: float = Field(description="greedy tokens matching the reference's")
    seconds: float


class EngineFormat(BaseModel):
    """A candidate cache on the engine, against ``auto`` on the same engine."""

    format: str
    arm: EngineArm | None = None
    error: str | None = Field(None, description="why it was not measured (e.g. no start)")
    kl_mean: float | None = Field(None, description="arm's KL minus auto's (floored at 0)")
    top1_agreement: float | None = Field(None, description="forced argmax equal to auto's")
    exact_match_rate: float | None = Field(None, description="greedy tokens equal to auto's")
    repetition_increase: float | None = None
    degenerated_share: float | None = None
    verdict: Verdict | None = None
    checks: list[Check] = Field(default_factory=list)
    reason: Said = Field(default_factory=lambda: Said(text=""))


class EngineRun(BaseModel):
    """What the engine measured (``auto`` and every candidate), or why it did not."""

    engine: str = Field(
        description="where, as a name: vLLM CPU (local), started here; --engine-url, the given "
        "servers"
    )
    top_k: int = Field(20, description="vLLM's default --max-logprobs")
    auto: EngineArm | None = None
    formats: list[EngineFormat] = Field(default_factory=list)
    skipped: Said | None = None
    seconds: float = 0.0

    def format(self, name: str) -> EngineFormat | None:
        return next((f for f in self.formats if f.format == name), None)


class FormatReport(BaseModel):
    format: str
    title: str
    engine: str
    prefill: Literal["fresh", "cache"] = Field(
        description="where prefill attention reads K/V: the fresh values or the cache"
    )
    how_enabled: Said
    vllm_flag: str | None
    deployable: bool = Field(True, description="False: the engine refuses this checkpoint")
    scales: ScaleReport
    verdict: Verdict
    reason: Said
    checks: list[Check]
    layers_at_risk: list[str]
    scan: ScanSummary
    logits: LogitMetrics = Field(description="teacher-forced, every step of every prompt")
    kl_per_step: list[float] = Field(description="mean KL over prompts at each step")
    top1_per_step: list[float] = Field(
        default_factory=list,
        description="top-1 agreement over prompts at each step (empty in results written before "
        "adaptgate measured it)",
    )
    generation: GenerationMetrics = Field(
        description="the format's tokens against the baseline's: free-running greedy tokens "
        "(mode full), or the argmax at every forced position (mode teacher-forced; the same up "
        "to the first divergence when the forced text is the baseline's greedy continuation)"
    )
    degeneration: list[Degeneration] = Field(default_factory=list)
    repetition_increase: float | None = Field(description="None: not measured (teacher-forced)")
    degenerated_share: float | None = Field(description="None: not measured (teacher-forced)")
    nonfinite_steps: int
    not_measured: list[str] = Field(
        default_factory=list,
        description="limits' metrics the simulation did not measure; the format is not SAFE on "
        "the simulation alone unless the engine measured it",
    )
    on_engine: EngineFormat | None = Field(
        None, description="the same cache measured on the engine (against auto), when it ran"
    )

    @property
    def combined_verdict(self) -> str:
        """The worse of the simulation's and the engine's verdicts."""
        engine = self.on_engine.verdict if self.on_engine is not None else None
        if engine is None or VERDICT_ORDER[engine] <= VERDICT_ORDER[self.verdict]:
            return self.verdict
        return engine


class Timings(BaseModel):
    load_seconds: float
    calibrate_seconds: float
    simulate_seconds: float
    total_seconds: float


class WeightUse(BaseModel):
    """What the measurement cost in reads of the checkpoint and in memory."""

    passes: float = Field(description="passes over the decoder layers' weights")
    bytes_read: int = Field(description="bytes of weight tensors read (scale tensors aside)")
    peak_rss_bytes: int | None = Field(description="the process's peak resident set")


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
    recommendation: Said
    artifacts: list[str] = Field(default_factory=list)
    timings: Timings | None = None
    engine: EngineRun | None = Field(None, description="the engine's measurement, when asked")
    weights: WeightUse | None = None

    def format(self, name: str) -> FormatReport | None:
        return next((f for f in self.formats if f.format == name), None)


class KVCacheConfig(BaseModel):
    """What ``adaptgate kvcache`` was asked to do."""

    model_config = ConfigDict(extra="forbid")

    model: str
    kv_dtypes: list[str] = Field(default_factory=lambda: list(FORMAT_NAMES))
    scales: ScaleMode = "checkpoint"
    new_tokens: int = Field(
        256, ge=1, description="greedy (full) or forced (teacher-forced) tokens per prompt"
    )
    mode: Mode = Field(
        "auto",
        description="full: free-running greedy decoding too; teacher-forced: one pass over the "
        "weights along forced texts; auto: full when the model fits in memory",
    )
    stream: bool | None = Field(
        None, description="load one layer at a time (teacher-forced only); None: when needed"
    )
    prompts_file: Path | None = None
    dtype: Literal["float32", "bfloat16"] = "float32"
    out: Path | None = Field(None, description="write the JSON, plot and calibrated scales here")
    threads: int | None = Field(None, ge=1, description="torch threads; None: 1 for tiny models")
    thresholds_file: Path | None = None
    plot: bool = True
    prefill: Literal["engine", "fresh", "cache"] = Field(
        "engine",
        description="where prefill attention reads K/V: as the format's engine does (vLLM V1: "
        "the cache; vllm-ascend C8: fresh K/V), or forced",
    )

    engine: Literal["off", "local"] = Field(
        "off",
        description="local: also serve the model with auto and each cache on this machine's "
        "vLLM (cpu) and measure them against the reference",
    )
    engine_urls: dict[str, str] = Field(
        default_factory=dict,
        description="servers of the same model keyed by auto and format name: measure those",
    )
    engine_max_model_len: int | None = Field(None, ge=16)

    @field_validator("kv_dtypes")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        if not value:
            raise UsageError("no KV-cache dtype to test", fix=f"use {','.join(FORMAT_NAMES)}")
        for name in value:
            KV_FORMATS.get(name)  # UnknownKind lists the valid names
        return list(dict.fromkeys(value))
