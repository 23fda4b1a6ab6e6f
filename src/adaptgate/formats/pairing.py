"""Which scale belongs to which quantized weight -- defined once, for the converter and the CPU
reference alike.

- :func:`scale_layouts`: the ``(strategy, block)`` layouts a scale is checked against, from what
  the config declares (``weight_block_size``; compressed-tensors groups) or, with no
  quantization_config, every layout the shapes allow.
- :func:`pair_fp8`: every FP8 weight with its one scale of a declared layout, and every scale with
  its weight. Structural problems are one line naming the tensor, raised before any data is read:
  an FP8 weight without a scale or with two, a scale of the wrong shape or dtype, a scale without
  an FP8 weight, an 8-bit float variant nobody decodes.
- :func:`ascend_pairs`: msModelSlim W8A8_DYNAMIC int8 weights with their scale and offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from adaptgate.errors import CheckpointFormatError, UsageError
from adaptgate.formats.ascend import W8A8_DYNAMIC
from adaptgate.formats.dequantize import (
    FP8_CODES,
    SCALE_CODES,
    Strategy,
    block_of,
    expected_scale_shape,
    scale_fits,
)
from adaptgate.formats.detect import QuantScheme, detect_quantization
from adaptgate.formats.names import OFFSET, SCALE, SCALE_SUFFIXES

DEFAULT_BLOCK = (128, 128)
_FIX = "re-export the checkpoint with the tool that quantized it, or re-download it"

Layout = tuple[Strategy, tuple[int, int] | None]


class TensorLike(Protocol):
    """What pairing needs of a tensor's header entry (:class:`adaptgate.checkpoint.TensorInfo`)."""

    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...


class Quant(BaseModel):
    """How an FP8 weight's scale maps onto it."""

    scale: str  # scale tensor name
    scale_dtype: str
    strategy: Strategy
    block: tuple[int, int]  # rows x cols covered by one scale entry (effective)
    fp8: str  # F8_E4M3 | F8_E5M2


@dataclass
class ScaleLayouts:
    """The scheme the config declares and the scale layouts that follow from it."""

    scheme: QuantScheme
    layouts: list[Layout]
    ignore: list[str]
    ue8m0: bool
    warnings: list[str] = field(default_factory=list)


def _quant_config(config: dict[str, Any]) -> dict[str, Any]:
    qc = config.get("quantization_config")
    if not isinstance(qc, dict):
        qc = (config.get("text_config") or {}).get("quantization_config")
    return qc if isinstance(qc, dict) else {}


def _block(value: Any) -> tuple[int, int] | None:
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
    ):
        return (int(value[0]), int(value[1]))
    return None


def scale_layouts(
    config: dict[str, Any], tensors: Mapping[str, Any], description: dict[str, Any] | None
) -> ScaleLayouts:
    """The FP8 scale layouts of a checkpoint. Compressed-tensors groups that are not FP8 add no
    layout (their weights are not FP8); a group of an unknown strategy is refused."""
    scheme = detect_quantization(config, tensors, description)
    qc = _quant_config(config)
    layouts: list[Layout] = []
    warnings: list[str] = []
    if scheme.method == "fp8":
        block = _block(qc.get("weight_block_size"))
        layouts = [("block", block)] if block else [("tensor", None)]
    elif scheme.method == "compressed-tensors":
        for group in scheme.groups:
            if group.weight_type != "float" or group.weight_bits != 8:
                continue
            strategy = group.weight_strategy or "tensor"
            if strategy not in ("tensor", "channel", "block"):
                raise UsageError(
                    f"compressed-tensors group {group.name!r} uses strategy {strategy!r}",
                    fix="supported FP8 weight strategies: tensor, channel, block",
                )
            block = _block(group.block_structure) if strategy == "block" else None
            layouts.append((strategy, block))  # type: ignore[arg-type]
    elif scheme.method == "none":
        layouts = [("tensor", None), ("channel", None), ("block", DEFAULT_BLOCK)]
        warnings.append(
            "config.json declares no quantization_config; scale layouts inferred from shapes"
        )
    ue8m0 = str(qc.get("scale_fmt") or "").lower() == "ue8m0"
    return ScaleLayouts(scheme, list(dict.fromkeys(layouts)), list(scheme.ignore), ue8m0, warnings)


def scale_of(name: str, tensors: Mapping[str, TensorLike]) -> TensorLike | None:
    """The one scale of weight ``name`` (``<module>.weight_scale_inv`` or ``.weight_scale``)."""
    module = name.removesuffix(".weight")
    found = [tensors[f"{module}.{s}"] for s in SCALE_SUFFIXES if f"{module}.{s}" in tensors]
    if len(found) > 1:
        raise CheckpointFormatError(
            f"weight {name!r} has two scales ({found[0].name} and {found[1].name})", fix=_FIX
        )
    return found[0] if found else None


def _describe(shape: tuple[int, int], layout: Layout) -> str:
    strategy, block = layout
    grid = expected_scale_shape(shape, strategy, block)
    return f"{list(grid)} ({strategy}{f' {block[0]}x{block[1]}' if block else ''})"


def _pair(info: TensorLike, tensors: Mapping[str, TensorLike], layouts: list[Layout]) -> Quant:
    if not info.name.endswith(".weight"):
        raise CheckpointFormatError(
            f"tensor {info.name!r} is {info.dtype} but is not a Linear weight", fix=_FIX
        )
    if len(info.shape) != 2:
        raise CheckpointFormatError(
            f"FP8 weight {info.name!r} has shape {list(info.shape)}; only 2-D weights convert",
            fix="split stacked expert weights into one [out, in] tensor per expert",
        )
    scale = scale_of(info.name, tensors)
    if scale is None:
        raise CheckpointFormatError(
            f"FP8 weight {info.name!r} has no scale (expected "
            f"{info.name}_scale_inv or {info.name}_scale in any shard)",
            fix=_FIX,
        )
    if scale.dtype not in SCALE_CODES:
        raise CheckpointFormatError(
            f"scale {scale.name!r} has dtype {scale.dtype}; scales must be one of "
            f"{', '.join(SCALE_CODES)}",
            fix=_FIX,
        )
    shape = (info.shape[0], info.shape[1])
    for strategy, block in layouts:
        if scale_fits(scale.shape, shape, strategy, block):
            return Quant(
                scale=scale.name,
                scale_dtype=scale.dtype,
                strategy=strategy,
                block=block_of(shape, strategy, block),
                fp8=info.dtype,
            )
    wanted = " or ".join(_describe(shape, layout) for layout in layouts)
    raise CheckpointFormatError(
        f"scale {scale.name!r} has shape {list(scale.shape)} but weight {info.name} "
        f"{list(shape)} needs {wanted}",
        fix=_FIX,
    )


def pair_fp8(
    tensors: Mapping[str, TensorLike], layouts: list[Layout], names: list[str] | None = None
) -> dict[str, Quant]:
    """Every FP8 weight (in ``names`` order when given) -> its scale; every ``weight_scale_inv``
    / ``weight_scale`` is some FP8 weight's. Raises one line naming the first bad tensor."""
    pairs: dict[str, Quant] = {}
    for name in names if names is not None else list(tensors):
        info = tensors[name]
        if info.dtype in FP8_CODES:
            pairs[name] = _pair(info, tensors, layouts)
        elif info.dtype.startswith("F8") or info.dtype in ("F4", "F6_E2M3", "F6_E3M2"):
            raise CheckpointFormatError(
                f"tensor {name!r} has dtype {info.dtype}, which adaptgate does not decode "
                f"(FP8 weights must be {' or '.join(FP8_CODES)})",
                fix=_FIX,
            )
    consumed = {q.scale for q in pairs.values()}
    for name in names if names is not None else list(tensors):
        if name not in consumed and name.rsplit(".", 1)[-1] in SCALE_SUFFIXES:
            weight = f"{name.rsplit('.', 1)[0]}.weight"
            what = f"is {tensors[weight].dtype}" if weight in tensors else "does not exist"
            raise CheckpointFormatError(
                f"scale {name!r} has no FP8 weight ({weight} {what})", fix=_FIX
            )
    return pairs


def ascend_pairs(
    tensors: Mapping[str, TensorLike], description: dict[str, Any]
) -> dict[str, tuple[str, str]]:
    """msModelSlim W8A8_DYNAMIC: every int8 ``.weight`` -> its ``(weight_scale, weight_offset)``.
    Another int8 type (W8A8 static, W8A16, ...) is refused: nothing here dequantizes it."""
    pairs: dict[str, tuple[str, str]] = {}
    for name, info in tensors.items():
        if info.dtype != "I8" or not name.endswith(".weight"):
            continue
        kind = description.get(name)
        if kind != W8A8_DYNAMIC:
            raise UsageError(
                f"{name} is Ascend {kind or 'unlisted'}; adaptgate dequantizes {W8A8_DYNAMIC} "
                "weights only",
                fix="produce the reference from the checkpoint this one was converted from",
            )
        module = name.removesuffix(".weight")
        scale, offset = f"{module}.{SCALE}", f"{module}.{OFFSET}"
        missing = [n for n in (scale, offset) if n not in tensors]
        if missing:
            raise CheckpointFormatError(
                f"int8 weight {name} has no {missing[0]}",
                fix="re-export the checkpoint with msModelSlim (or adaptgate convert)",
            )
        pairs[name] = (scale, offset)
    return pairs


_INT_CODES = ("I8", "U8", "I16", "I32", "I4", "U4")  # integer weights hold codes, never values


def int8_channel_pairs(tensors: Mapping[str, TensorLike], scheme: QuantScheme) -> dict[str, str]:
    """compressed-tensors int8 W8A8 (what vllm-ascend takes as W8A8_DYNAMIC and vLLM serves with
    its int8 kernels): every int8 ``.weight`` -> its per-output-channel ``weight_scale`` (``[out,
    1]`` or ``[out]``). ``W = q * s`` is exact in float32 (8-bit codes times a bf16/fp16/fp32
    scale). Any other integer layout -- group-wise, asymmetric, packed 4-bit -- is refused."""
    for group in scheme.groups:
        if group.weight_type != "int":
            continue
        layout = f"int{group.weight_bits} {group.weight_strategy}"
        if group.weight_bits != 8 or group.weight_strategy != "channel" or not group.symmetric:
            raise UsageError(
                f"compressed-tensors group {group.name!r} stores {layout} weights"
                f"{'' if group.symmetric else ' with a zero point'}; adaptgate dequantizes "
                "symmetric channel-wise int8 only",
                fix="produce the reference from the checkpoint this one was quantized from",
            )
    pairs: dict[str, str] = {}
    for name, info in tensors.items():
        if info.dtype != "I8":
            continue
        module = name.removesuffix(".weight")
        scale = tensors.get(f"{module}.{SCALE}")
        if not name.endswith(".weight") or scale is None:
            raise CheckpointFormatError(f"int8 tensor {name!r} has no {module}.{SCALE}", fix=_FIX)
        rows = info.shape[0] if info.shape else 0
        if len(info.shape) != 2 or tuple(scale.shape) not in ((rows, 1), (rows,)):
            raise CheckpointFormatError(
                f"scale {scale.name!r} has shape {list(scale.shape)} but int8 weight {name} "
                f"{list(info.shape)} needs [{rows}, 1] (one scale per output channel)",
                fix=_FIX,
            )
        if scale.dtype not in ("F32", "BF16", "F16"):
            raise CheckpointFormatError(
                f"scale {scale.name!r} has dtype {scale.dtype}; expected F32, BF16 or F16",
                fix=_FIX,
            )
        pairs[name] = scale.name
    return pairs


def unpaired_codes(tensors: Mapping[str, TensorLike], paired: set[str]) -> list[str]:
    """Integer weights nothing pairs with a scale: reading them would use raw codes as values."""
    return [
        name
        for name, info in tensors.items()
        if info.dtype in _INT_CODES
        and name not in paired
        and name.rsplit(".", 1)[-1] in ("weight", "weight_packed", "qweight")
    ]
