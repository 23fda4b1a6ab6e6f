"""``conversion.json``: what was converted, from what, with which error statistics."""

from __future__ import annotations

import re
from collections import defaultdict

from pydantic import BaseModel, Field

from adaptgate.convert.models import ConversionPlan, Dropped
from adaptgate.convert.work import TensorStats
from adaptgate.results import Result

_LAYER = re.compile(r"^(.*?\.layers\.\d+)\.")


class SourceHash(BaseModel):
    file: str
    size: int
    digest: str | None = Field(
        None,
        description="sha256(sha256(header) || sha256(each tensor's bytes, in file order)); "
        "adaptgate.convert.source.file_digest recomputes it; None when hashing was skipped",
    )
    algorithm: str = "sha256-tensors"


class TensorRecord(BaseModel):
    name: str
    action: str
    source: str
    source_dtype: str
    source_shape: list[int]
    dtype: str
    shape: list[int]
    shard: str
    checksum: int
    saturated: int = 0
    underflow: int = 0
    nonfinite: int = 0
    rel_error: float | None = None
    max_abs_error: float | None = None


class ErrorEntry(BaseModel):
    name: str
    rel_error: float
    max_abs_error: float | None = None


class ErrorStats(BaseModel):
    """Dequantization to bf16/fp16 is exact up to the final rounding; what can go wrong is
    counted. For int8 weights: relative Frobenius error against the dequantized weight."""

    saturated: int = 0
    underflow: int = 0
    nonfinite: int = 0
    int8_tensors: list[ErrorEntry] = Field(default_factory=list, description="worst first")
    int8_layers: list[ErrorEntry] = Field(default_factory=list, description="worst first")
    int8_rel_error: float | None = None


class VerifyReport(BaseModel):
    checked_tensors: int
    sampled_blocks: int
    problems: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class ConversionResult(Result):
    kind: str = "conversion"
    source_dir: str
    output_dir: str
    target: str
    source_scheme: str
    kernel: str
    checksum: str = Field(description="algorithm of the tensors' checksums: crc32c or crc32")
    sources: list[SourceHash]
    bytes_in: int
    bytes_out: int
    seconds: float
    shards: list[str]
    resumed_shards: list[str] = Field(default_factory=list)
    tensors: list[TensorRecord]
    dropped: list[Dropped]
    warnings: list[str] = Field(default_factory=list)
    errors: ErrorStats
    verify: VerifyReport | None = None

    @property
    def output_gb_per_s(self) -> float:
        return self.bytes_out / self.seconds / 1e9 if self.seconds > 0 else 0.0


def error_stats(plan: ConversionPlan, stats: dict[str, TensorStats]) -> ErrorStats:
    out = ErrorStats()
    layers: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    total = [0.0, 0.0]
    for t in plan.tensors:
        s = stats[t.name]
        out.saturated += s.saturated
        out.underflow += s.underflow
        out.nonfinite += s.nonfinite
        if s.rel_error is not None and s.err_sq is not None and s.ref_sq is not None:
            out.int8_tensors.append(
                ErrorEntry(name=t.name, rel_error=s.rel_error, max_abs_error=s.max_abs_error)
            )
            match = _LAYER.match(t.name)
            key = match.group(1) if match else t.name.rsplit(".", 2)[0]
            layers[key][0] += s.err_sq
            layers[key][1] += s.ref_sq
            total[0] += s.err_sq
            total[1] += s.ref_sq
    out.int8_tensors.sort(key=lambda e: -e.rel_error)
    out.int8_layers = sorted(
        (ErrorEntry(name=k, rel_error=(e / r) ** 0.5) for k, (e, r) in layers.items() if r > 0),
        key=lambda e: -e.rel_error,
    )
    if total[1] > 0:
        out.int8_rel_error = (total[0] / total[1]) ** 0.5
    return out


def tensor_records(plan: ConversionPlan, stats: dict[str, TensorStats]) -> list[TensorRecord]:
    return [
        TensorRecord(
            name=t.name,
            action=t.action.value,
            source=t.source,
            source_dtype=t.source_dtype,
            source_shape=t.source_shape,
            dtype=t.dtype,
            shape=t.shape,
            shard=t.shard,
            checksum=stats[t.name].checksum,
            saturated=stats[t.name].saturated,
            underflow=stats[t.name].underflow,
            nonfinite=stats[t.name].nonfinite,
            rel_error=stats[t.name].rel_error,
            max_abs_error=stats[t.name].max_abs_error,
        )
        for t in plan.tensors
    ]
