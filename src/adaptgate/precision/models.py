"""The precision gate's options and typed results: the dump comparison (:class:`CompareResult`,
with its layer localization), the served-model check (:class:`ServedConfig` ->
:class:`ServedResult`) and the gate's result that holds both."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from adaptgate.messages import Said
from adaptgate.metrics.limits import Check
from adaptgate.metrics.logits import (
    GenerationMetrics,
    LogitMetrics,
    TensorMetrics,
)
from adaptgate.precision.thresholds import Thresholds
from adaptgate.reference.dump import DumpReader, ReferenceDump
from adaptgate.results import Result


class DepthPoint(BaseModel):
    name: str
    layer: int | None
    rel_l2: float
    cosine: float
    jump: float = Field(description="rel_l2 minus the previous point's (0 for the first)")


class Localization(BaseModel):
    layer: int | None = Field(default=None, description="the localized decoder layer")
    module: str | None = None
    name: str | None = Field(default=None, description="embed or layer.<i> that failed first")
    criterion: Said | None = Field(default=None, description="the first failed limit there")
    largest_jump_layer: int | None = None
    largest_jump: float | None = None
    depth: list[DepthPoint] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list, exclude=True)


class DumpSummary(BaseModel):
    path: str
    model_path: str
    model_hash: str | None
    quantization: str
    device: str
    dtype: str
    mode: str
    simulate: str | None = None

    @classmethod
    def of(cls, reader: DumpReader) -> DumpSummary:
        m = reader.meta
        return cls(
            path=str(reader.path),
            model_path=m.model.path,
            model_hash=m.model.model_hash,
            quantization=m.model.quantization,
            device=m.device,
            dtype=m.dtype,
            mode=m.mode,
            simulate=m.simulate,
        )


class TensorRow(BaseModel):
    name: str = Field(description="logits, embed, layer.<i>, gen.logits")
    layer: int | None = None
    module: str | None = None
    metrics: TensorMetrics
    logits: LogitMetrics | None = None


class CompareResult(Result):
    kind: str = "compare"
    reference: DumpSummary
    candidate: DumpSummary
    thresholds: Thresholds
    prompts: int
    tensors: list[TensorRow]
    generation: GenerationMetrics | None = None
    checks: list[Check]
    localization: Localization
    verdict: Literal["PASS", "FAIL"]
    reason: Said
    plot: str | None = None

    def row(self, name: str) -> TensorRow | None:
        return next((r for r in self.tensors if r.name == name), None)


class ServedPrompt(BaseModel):
    id: str
    reference_tokens: int
    server_tokens: int
    matched_tokens: int
    first_mismatch: int | None = Field(
        description="first position where the served token is not the reference's argmax"
    )
    scored_positions: int = Field(default=0, description="positions with the same context")
    served_rank_max: int | None = Field(
        default=None, description="worst rank of a served token under the reference (1 = top)"
    )
    server_token_in_reference_topk: bool | None = None
    reference_token_in_server_topk: bool | None = None
    logprob_abs_diff_mean: float | None = None
    logprob_abs_diff_max: float | None = None
    topk_kl_mean: float | None = None
    prompt_logprob_abs_diff_mean: float | None = None
    server_text: str | None = None


class ServedMetrics(BaseModel):
    prompts: int
    tokens: int
    matched_tokens: int
    exact_match_rate: float
    diverging_prompts: int
    first_mismatch_in_topk: float
    logprob_abs_diff_mean: float | None
    logprob_abs_diff_max: float | None
    topk_kl_mean: float | None
    prompt_logprob_abs_diff_mean: float | None
    prompt_logprobs_available: bool
    teacher_forced: bool = Field(
        default=False, description="the reference scored the server's own continuation"
    )
    scored_positions: int = Field(default=0, description="positions with the same context")
    served_in_reference_topk: float | None = Field(
        default=None, description="share of scored served tokens in the reference's top-k"
    )
    served_rank_max: int | None = Field(
        default=None, description="worst rank of a served token under the reference (1 = top)"
    )


class ServedResult(Result):
    kind: str = "precision"
    url: str
    model: str
    reference: DumpSummary
    top_k: int
    thresholds: Thresholds
    metrics: ServedMetrics
    prompts: list[ServedPrompt]
    checks: list[Check]
    verdict: Literal["PASS", "FAIL"]
    reason: Said


class ServedConfig(BaseModel):
    url: str
    reference: Path
    model: str | None = Field(default=None, description="served model name; None = the first")
    thresholds_file: Path | None = None
    profile: str | None = None
    top_k: int | None = Field(default=None, description="None = the dump's top-k (max 20)")
    timeout: float = 120.0


class PrecisionGateResult(Result):
    kind: str = "precision-gate"
    reference: ReferenceDump
    conversion: CompareResult | None = None
    served: ServedResult | None = None
    served_skipped: Said | None = Field(default=None, description="why there was no server")
