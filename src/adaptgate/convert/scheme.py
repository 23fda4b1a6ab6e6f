"""What a source checkpoint must be for ``adaptgate convert``: FP8, not already Ascend.

The scale layouts themselves are :func:`adaptgate.formats.pairing.scale_layouts`; this module adds
the converter's refusals (a checkpoint already in Ascend format, no FP8 weights, a
compressed-tensors group that is not FP8, a method that is not FP8).
"""

from __future__ import annotations

from typing import Any

from adaptgate.errors import NotConvertible
from adaptgate.formats.detect import detect_quantization
from adaptgate.formats.pairing import ScaleLayouts, scale_layouts


def read_scheme(
    config: dict[str, Any], tensors: Any, description: dict[str, Any] | None
) -> ScaleLayouts:
    scheme = detect_quantization(config, tensors, description)
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
    if scheme.method == "compressed-tensors":
        for group in scheme.groups:
            if group.weight_type != "float" or group.weight_bits != 8:
                raise NotConvertible(
                    f"compressed-tensors group {group.name!r} is {group.weight_type} "
                    f"{group.weight_bits}-bit, not FP8",
                    fix="only float-quantized 8-bit (FP8) compressed-tensors checkpoints convert",
                )
    elif scheme.method not in ("fp8", "none"):
        raise NotConvertible(
            f"quantization method {scheme.method!r} ({scheme.label}) is not FP8",
            fix="adaptgate convert takes fine-grained FP8 or compressed-tensors FP8 checkpoints",
        )
    return scale_layouts(config, tensors, description)
