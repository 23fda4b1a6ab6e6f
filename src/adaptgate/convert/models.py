"""The conversion plan: every output tensor, where its bytes come from, where they go.

A plan is pure data computed from headers and configs (no tensor data), so it can be hashed: a
resumed run reuses the shards of ``OUT.partial/`` only when its plan hash is the same.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum

from pydantic import BaseModel, Field

from adaptgate.formats.pairing import Quant


class Target(StrEnum):
    BF16 = "bf16"
    FP16 = "fp16"
    W8A8_DYNAMIC = "w8a8-dynamic"

    @property
    def float_code(self) -> str:
        """The safetensors dtype of dequantized (or cast) float tensors."""
        return "F16" if self is Target.FP16 else "BF16"

    @property
    def torch_name(self) -> str:
        return "float16" if self is Target.FP16 else "bfloat16"


class Action(StrEnum):
    COPY = "copy"  # byte-identical pass-through
    CAST = "cast"  # a bf16 tensor cast to float16 (--to fp16), or a bias to float32 (w8a8)
    DEQUANTIZE = "dequantize"  # FP8 weight x scale -> bf16/fp16
    QUANTIZE = "quantize"  # FP8 weight -> int8 weight (+ weight_scale, weight_offset)
    SCALE = "scale"  # the float32 weight_scale of a quantized weight
    OFFSET = "offset"  # the float32 zero weight_offset of a quantized weight


class TensorPlan(BaseModel):
    """One output tensor."""

    name: str
    action: Action
    source: str  # source tensor name
    source_dtype: str
    source_shape: list[int]
    dtype: str  # safetensors code written
    shape: list[int]
    quant: Quant | None = None
    ascend_type: str | None = None  # W8A8_DYNAMIC | FLOAT (w8a8-dynamic only)
    shard: str = ""  # output file name
    data_offsets: tuple[int, int] = (0, 0)  # in the shard's data section

    @property
    def nbytes(self) -> int:
        return self.data_offsets[1] - self.data_offsets[0]


class Dropped(BaseModel):
    name: str
    reason: str


class ShardPlan(BaseModel):
    file: str
    header_size: int  # bytes of the 8-byte length + padded JSON
    data_size: int
    tensors: list[str]  # in data order

    @property
    def size(self) -> int:
        return self.header_size + self.data_size


class SourceFile(BaseModel):
    file: str
    size: int
    mtime_ns: int
    header_sha256: str


class ConversionPlan(BaseModel):
    """Everything a conversion will write, validated before anything is."""

    target: Target
    source_dir: str
    source_scheme: str  # detect_quantization's label, e.g. FP8_BLOCK
    source_method: str
    sources: list[SourceFile]
    tensors: list[TensorPlan]  # in job order (the order workers take them)
    shards: list[ShardPlan]
    index_file: str | None
    dropped: list[Dropped] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    max_shard_size: int
    config_dtype: str

    @property
    def output_bytes(self) -> int:
        return sum(s.size for s in self.shards)

    def by_name(self) -> dict[str, TensorPlan]:
        return {t.name: t for t in self.tensors}

    def fingerprint(self) -> str:
        """A hash of the plan: same source files, options and layout -> same output bytes."""
        import adaptgate

        text = self.model_dump_json(exclude={"source_dir", "warnings"})
        return hashlib.sha256(f"{adaptgate.__version__}\0{text}".encode()).hexdigest()
