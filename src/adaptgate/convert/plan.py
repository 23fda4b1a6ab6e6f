"""Planning a conversion: every weight paired with its scale, every tensor classified.

Structural problems are raised here, before any data is read or written, as one line naming the
tensor: an FP8 weight without a scale, a scale without an FP8 weight, a scale grid of the wrong
shape, a dtype the converter does not know. (Scale *values* are checked by
:mod:`adaptgate.convert.validate`.)
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from adaptgate.checkpoint import Checkpoint, TensorInfo
from adaptgate.convert.layout import layout_shards
from adaptgate.convert.models import (
    Action,
    ConversionPlan,
    Dropped,
    OutputFormat,
    SourceFile,
    Target,
    TensorPlan,
)
from adaptgate.convert.scheme import read_scheme
from adaptgate.errors import ConversionInputError
from adaptgate.formats import ascend, names
from adaptgate.formats.detect import matches
from adaptgate.formats.names import DROPPED_SUFFIXES
from adaptgate.formats.pairing import Quant, ScaleLayouts, pair_fp8
from adaptgate.messages import Said, said

# Fused modules whose parts must share one Ascend quantization type (vllm-ascend checks it).
_FUSED = (
    (re.compile(r"^(.*\.experts)\.\d+\.(gate|up|down)_proj$"), r"\1"),
    (re.compile(r"^(.*\.self_attn)\.(q|k|v)_proj$"), r"\1.qkv_proj"),
    (re.compile(r"^(.*\.self_attn)\.(q_a_proj|kv_a_proj_with_mqa)$"), r"\1.fused_qkv_a_proj"),
    (re.compile(r"^(.*)\.(gate|up)_proj$"), r"\1.gate_up_proj"),
)


def fused_group(module: str) -> str:
    for pattern, repl in _FUSED:
        if pattern.match(module):
            return pattern.sub(repl, module)
    return module


def _source_files(ckpt: Checkpoint) -> list[SourceFile]:
    out = []
    for rel in ckpt.weight_files:
        path = ckpt.root / rel
        stat = path.stat()
        header = ckpt.headers[rel]
        with path.open("rb") as fh:
            digest = hashlib.sha256(fh.read(header.data_start)).hexdigest()
        out.append(
            SourceFile(file=rel, size=stat.st_size, mtime_ns=stat.st_mtime_ns, header_sha256=digest)
        )
    return out


class _Builder:
    def __init__(
        self, ckpt: Checkpoint, target: Target, src: ScaleLayouts, fmt: OutputFormat | None
    ) -> None:
        self.ckpt, self.target, self.src = ckpt, target, src
        # msModelSlim's layout: a zero weight_offset per quantized weight, float32 biases, and
        # the type of every tensor for the description file
        self.modelslim = fmt is OutputFormat.MODELSLIM
        self.dropped: list[Dropped] = []
        # the pairing's warnings are English lines, quoted as written
        self.warnings: list[Said] = [Said(text=w) for w in src.warnings]
        self.quant: dict[str, Quant] = {}  # FP8 weight name -> its pairing

    def classify(self) -> list[list[TensorPlan]]:
        tensors = self.ckpt.tensors
        files = {rel: i for i, rel in enumerate(self.ckpt.weight_files)}
        # jobs in the order the bytes lie on disk: workers read every file front to back
        names = sorted(tensors, key=lambda n: (files[tensors[n].file], tensors[n].data_offsets))
        self.quant = pair_fp8(tensors, self.src.layouts, names)
        consumed = {q.scale: w for w, q in self.quant.items()}
        ignored = [w for w in self.quant if self.src.ignore and matches(w, self.src.ignore)]
        if ignored:
            self.warnings.append(
                said("convert.ignored_fp8", count=len(ignored), example=ignored[0])
            )
        jobs: list[list[TensorPlan]] = []
        float_groups = self._float_groups() if self.target is Target.W8A8_DYNAMIC else set()
        for name in names:
            info = tensors[name]
            if name in consumed:
                self.dropped.append(Dropped(name=name, reason=f"scale of {consumed[name]}"))
            elif name.rsplit(".", 1)[-1] in DROPPED_SUFFIXES:
                self.dropped.append(Dropped(name=name, reason="activation/KV-cache scale, unused"))
            elif name in self.quant:
                module = name.removesuffix(".weight")
                as_float = fused_group(module) in float_groups
                jobs.append(self._convert(info, self.quant[name], as_float))
            else:
                jobs.append([self._passthrough(info)])
        return jobs

    def _float_groups(self) -> set[str]:
        """Fused groups with both FP8 and unquantized parts: they stay FLOAT as a whole."""
        quantized: dict[str, set[bool]] = {}
        for name, info in self.ckpt.tensors.items():
            if name.endswith(".weight") and len(info.shape) == 2:
                group = fused_group(name.removesuffix(".weight"))
                if group != name.removesuffix(".weight"):
                    quantized.setdefault(group, set()).add(name in self.quant)
        mixed = {g for g, kinds in quantized.items() if len(kinds) == 2}
        if mixed:
            example = sorted(mixed)[0]
            self.warnings.append(said("convert.mixed_groups", count=len(mixed), example=example))
        return mixed

    def _tensor(
        self,
        info: TensorInfo,
        action: Action,
        dtype: str,
        *,
        name: str | None = None,
        shape: list[int] | None = None,
        quant: Quant | None = None,
        ascend_type: str | None = None,
    ) -> TensorPlan:
        return TensorPlan(
            name=name or info.name,
            action=action,
            source=info.name,
            source_dtype=info.dtype,
            source_shape=list(info.shape),
            dtype=dtype,
            shape=list(info.shape) if shape is None else shape,
            quant=quant,
            ascend_type=ascend_type,
        )

    def _convert(self, info: TensorInfo, quant: Quant, as_float: bool) -> list[TensorPlan]:
        if self.target is not Target.W8A8_DYNAMIC or as_float:
            ascend_type = ascend.FLOAT if self.modelslim else None
            code = "BF16" if self.target is Target.W8A8_DYNAMIC else self.target.float_code
            return [
                self._tensor(info, Action.DEQUANTIZE, code, quant=quant, ascend_type=ascend_type)
            ]
        module = info.name.removesuffix(".weight")
        rows = [info.shape[0], 1]
        w8 = ascend.W8A8_DYNAMIC if self.modelslim else None
        quantized = [
            self._tensor(info, Action.QUANTIZE, "I8", quant=quant, ascend_type=w8),
            self._tensor(
                info,
                Action.SCALE,
                "F32",
                name=f"{module}.{names.SCALE}",
                shape=rows,
                quant=quant,
                ascend_type=w8,
            ),
        ]
        if not self.modelslim:
            return quantized
        offset = self._tensor(
            info,
            Action.OFFSET,
            "F32",
            name=f"{module}.{names.OFFSET}",
            shape=rows,
            quant=quant,
            ascend_type=w8,
        )
        return [*quantized, offset]

    def _passthrough(self, info: TensorInfo) -> TensorPlan:
        if self.target is Target.FP16 and info.dtype == "BF16":
            return self._tensor(info, Action.CAST, "F16")
        if self.modelslim:
            module = info.name.rsplit(".", 1)[0]
            quantized_bias = info.name.endswith(".bias") and f"{module}.weight" in self.quant
            if quantized_bias and info.dtype != "F32":  # msModelSlim stores these in float32
                return self._tensor(info, Action.CAST, "F32", ascend_type=ascend.FLOAT)
            return self._tensor(info, Action.COPY, info.dtype, ascend_type=ascend.FLOAT)
        return self._tensor(info, Action.COPY, info.dtype)


def _config_dtype(ckpt: Checkpoint, target: Target) -> str:
    if target is Target.W8A8_DYNAMIC:
        declared = ckpt.config_dtype()
        return declared if declared in ("bfloat16", "float16") else "bfloat16"
    return target.torch_name


def plan_conversion(
    ckpt: Checkpoint,
    target: Target,
    *,
    max_shard_size: int,
    fmt: OutputFormat | None = None,
) -> ConversionPlan:
    """The full plan; raises a one-line error naming the tensor for any structural problem.
    ``fmt``: the layout of a w8a8-dynamic output (None: modelslim)."""
    if ckpt.weight_format != "safetensors":
        raise ConversionInputError(
            f"{ckpt.root} stores its weights as pickle; convert streams safetensors only",
            fix="convert the weights to safetensors first",
        )
    fmt = OutputFormat(fmt or OutputFormat.MODELSLIM) if target is Target.W8A8_DYNAMIC else None
    src = read_scheme(ckpt.config, ckpt.tensors, ckpt.quant_description)
    builder = _Builder(ckpt, target, src, fmt)
    jobs = builder.classify()
    # msModelSlim numbers and indexes even a single shard; elsewhere Hugging Face's names
    modelslim = fmt is OutputFormat.MODELSLIM
    shards, index = layout_shards(
        jobs,
        max_shard_size,
        prefix=ascend.WEIGHTS_PREFIX if modelslim else "model",
        always_index=modelslim,
    )
    if modelslim and index is not None:
        index = ascend.INDEX_FILE
    return ConversionPlan(
        target=target,
        format=fmt,
        source_dir=str(Path(ckpt.root).resolve()),
        source_scheme=src.scheme.label,
        source_method=src.scheme.method,
        sources=_source_files(ckpt),
        tensors=[t for job in jobs for t in job],
        shards=shards,
        index_file=index,
        dropped=builder.dropped,
        warnings=builder.warnings,
        max_shard_size=max_shard_size,
        config_dtype=_config_dtype(ckpt, target),
    )
