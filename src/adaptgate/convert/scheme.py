"""What a source checkpoint declares: scale layouts to expect and modules left unquantized.

Scheme-level facts come from :func:`adaptgate.formats.detect.detect_quantization`; this module
turns them into the candidate ``(strategy, block)`` layouts a weight's scale is checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adaptgate.convert.errors import NotConvertible
from adaptgate.formats.dequantize import Strategy
from adaptgate.formats.detect import QuantScheme, detect_quantization

DEFAULT_BLOCK = (128, 128)
SCALE_SUFFIXES = ("weight_scale_inv", "weight_scale")
# activation and KV-cache scales: meaningless once weights are bf16 or int8 with dynamic inputs
DROPPED_SUFFIXES = ("input_scale", "output_scale", "k_scale", "v_scale", "weight_zero_point")


@dataclass
class SourceScheme:
    scheme: QuantScheme
    layouts: list[tuple[Strategy, tuple[int, int] | None]]
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


def read_scheme(
    config: dict[str, Any], tensors: Any, description: dict[str, Any] | None
) -> SourceScheme:
    scheme = detect_quantization(config, tensors, description)
    qc = _quant_config(config)
    if scheme.method == "ascend":
        raise NotConvertible(
            f"the checkpoint is already in Ascend {scheme.label} format",
            fix="serve it with vllm-ascend --quantization ascend; there is nothing to convert",
        )
    # any 8-bit float: the planner names the tensor if its variant is not one it decodes
    fp8_weights = any(str(getattr(t, "dtype", "")).startswith("F8_") for t in tensors.values())
    if not fp8_weights:
        raise NotConvertible(
            f"the checkpoint holds no FP8 weights (scheme: {scheme.label})",
            fix="adaptgate convert takes FP8 checkpoints (fine-grained FP8 block or "
            "compressed-tensors FP8); this one needs no conversion",
        )
    layouts: list[tuple[Strategy, tuple[int, int] | None]] = []
    warnings: list[str] = []
    if scheme.method == "fp8":
        block = _block(qc.get("weight_block_size"))
        layouts = [("block", block)] if block else [("tensor", None)]
    elif scheme.method == "compressed-tensors":
        for group in scheme.groups:
            if group.weight_type != "float" or group.weight_bits != 8:
                raise NotConvertible(
                    f"compressed-tensors group {group.name!r} is {group.weight_type} "
                    f"{group.weight_bits}-bit, not FP8",
                    fix="only float-quantized 8-bit (FP8) compressed-tensors checkpoints convert",
                )
            strategy = group.weight_strategy or "tensor"
            if strategy not in ("tensor", "channel", "block"):
                raise NotConvertible(
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
    else:
        raise NotConvertible(
            f"quantization method {scheme.method!r} ({scheme.label}) is not FP8",
            fix="adaptgate convert takes fine-grained FP8 or compressed-tensors FP8 checkpoints",
        )
    ue8m0 = str(qc.get("scale_fmt") or "").lower() == "ue8m0"
    return SourceScheme(scheme, list(dict.fromkeys(layouts)), list(scheme.ignore), ue8m0, warnings)
