"""The convert package's models: what a conversion is asked to do (:class:`ConvertOptions`),
its plan (every output tensor, where its bytes come from, where they go) and its record
(:class:`ConversionResult`, written as ``conversion.json``).

A plan is pure data computed from headers and configs (no tensor data), so it can be hashed: a
resumed run reuses the shards of ``OUT.partial/`` only when its plan hash is the same.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from adaptgate.errors import UsageError
from adaptgate.formats.pairing import Quant
from adaptgate.messages import Said
from adaptgate.results import Result


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


class OutputFormat(StrEnum):
    """How a ``w8a8-dynamic`` output is laid out; the int8 weights and scales are the same."""

    MODELSLIM = "modelslim"  # msModelSlim's: vllm-ascend --quantization ascend
    COMPRESSED_TENSORS = "compressed-tensors"  # vLLM on CPU/CUDA, and vllm-ascend by detection

    @classmethod
    def default(cls, target: Target, platform: str | None) -> OutputFormat | None:
        """The layout when none is asked for: compressed-tensors where the model is served on
        cpu or cuda (vLLM reads no other int8 layout), else msModelSlim's; none for float
        targets."""
        if target is not Target.W8A8_DYNAMIC:
            return None
        return cls.COMPRESSED_TENSORS if platform in ("cpu", "cuda") else cls.MODELSLIM


class Action(StrEnum):
    COPY = "copy"  # byte-identical pass-through
    CAST = "cast"  # a bf16 tensor cast to float16 (--to fp16), or a bias to float32 (modelslim)
    DEQUANTIZE = "dequantize"  # FP8 weight x scale -> bf16/fp16
    QUANTIZE = "quantize"  # FP8 weight -> int8 weight (+ weight_scale, modelslim: weight_offset)
    SCALE = "scale"  # the float32 weight_scale of a quantized weight
    OFFSET = "offset"  # the float32 zero weight_offset of a quantized weight (modelslim only)


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
    ascend_type: str | None = None  # W8A8_DYNAMIC | FLOAT (w8a8-dynamic, modelslim only)
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
    format: OutputFormat | None = None  # w8a8-dynamic only
    source_dir: str
    source_scheme: str  # detect_quantization's label, e.g. FP8_BLOCK
    source_method: str
    sources: list[SourceFile]
    tensors: list[TensorPlan]  # in job order (the order workers take them)
    shards: list[ShardPlan]
    index_file: str | None
    dropped: list[Dropped] = Field(default_factory=list)
    warnings: list[Said] = Field(default_factory=list)
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


# What a conversion is asked to do: the typed config the CLI and the gate fill in.

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_size(text: str | int) -> int:
    """``"5GB"`` -> 5_000_000_000, ``"500MiB"`` -> 524_288_000 (as Hugging Face reads sizes)."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"cannot read size {text!r}", fix="write it like 5GB, 500MB or 2GiB")
    number, unit = float(match.group(1)), (match.group(2) or "").upper()
    factor = _UNITS[unit[:1]] if "I" not in unit else 1024 ** "KMGT".index(unit[0]) * 1024
    size = int(number * factor)
    if size <= 0:
        raise UsageError(f"size must be positive, got {text!r}")
    return size


@dataclass
class ConvertOptions:
    model: str
    out: Path
    target: Target
    max_shard_size: int = 5 * 10**9
    workers: int | None = None  # default: twice the CPUs (jobs also wait on I/O), 2 to 4
    verify: bool = False
    hash_sources: bool = True  # sha256 of every source file for conversion.json
    direct_io: bool = True  # O_DIRECT writes where the file system takes them
    fsync: bool = True
    format: OutputFormat | None = None  # w8a8-dynamic only; None: modelslim

    def __post_init__(self) -> None:
        if self.format is not None and self.target is not Target.W8A8_DYNAMIC:
            raise UsageError(
                f"--format {self.format.value} applies to --to w8a8-dynamic, not "
                f"--to {self.target.value}",
                fix="leave --format out: bf16 and fp16 outputs are plain Hugging Face checkpoints",
            )

    @property
    def worker_count(self) -> int:
        if self.workers is not None:
            if self.workers < 1:
                raise UsageError(f"--workers must be at least 1, got {self.workers}")
            return self.workers
        return max(2, min(4, 2 * (os.cpu_count() or 1)))

    @property
    def partial(self) -> Path:
        return self.out.with_name(self.out.name + ".partial")


# conversion.json: what was converted, from what, with which error statistics.


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
    format: str | None = Field(None, description="w8a8-dynamic: modelslim or compressed-tensors")
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
    warnings: list[Said] = Field(default_factory=list)
    errors: ErrorStats
    verify: VerifyReport | None = None

    @property
    def output_gb_per_s(self) -> float:
        return self.bytes_out / self.seconds / 1e9 if self.seconds > 0 else 0.0
