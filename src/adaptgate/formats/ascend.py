"""Ascend msModelSlim W8A8_DYNAMIC layout: constants, the int8 quantizer, the description file.

Verified against msModelSlim's ascendV1 saver (Ascend/msmodelslim,
``msmodelslim/core/quant_service/modelslim_v1/save/ascendv1.py`` and ``utils/safetensors.py``)
and vllm-ascend's loader (``vllm_ascend/quantization/configs/modelslim_config.py``):

- weights: ``quant_model_weights-0000X-of-0000N.safetensors`` plus
  ``quant_model_weights.safetensors.index.json`` (the buffered writer numbers and indexes even a
  single shard); ``quant_model_description.json`` beside them; config.json without
  ``quantization_config``.
- description: one entry per saved tensor name -> its type; ``<linear>.weight``,
  ``.weight_scale`` and ``.weight_offset`` of a quantized Linear are "W8A8_DYNAMIC", its
  ``.bias`` (float32) and every unquantized tensor "FLOAT"; then ``version`` "1.0.0",
  ``model_quant_type``, ``metadata``, ``group_size`` 0 and ``optional``. vllm-ascend reads the
  type of a layer from ``<prefix>.weight`` and requires all shards of a fused layer (q/k/v,
  gate/up, experts) to share it.
- W8A8_DYNAMIC Linear: int8 ``weight [n, k]`` (symmetric, -127..127), float32
  ``weight_scale [n, 1]``, float32 zero ``weight_offset [n, 1]``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

DESCRIPTION_FILE = "quant_model_description.json"
WEIGHTS_PREFIX = "quant_model_weights"
INDEX_FILE = f"{WEIGHTS_PREFIX}.safetensors.index.json"
DESCRIPTION_VERSION = "1.0.0"
W8A8_DYNAMIC = "W8A8_DYNAMIC"
FLOAT = "FLOAT"
INT8_MAX = 127
# msModelSlim records the most aggressive type present as model_quant_type.
_TYPE_PRIORITY = (FLOAT, "W8A16", W8A8_DYNAMIC, "W8A8")


def quantize_w8a8_dynamic(
    weight: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-output-channel symmetric int8: ``s = float32(amax_row / 127)`` (1 for a zero row),
    ``q = clamp(round_half_even(W / s), -127, 127)`` with the division in float64.

    Returns ``(weight int8 [n, k], weight_scale float32 [n, 1], weight_offset float32 [n, 1])``.
    """
    import torch

    if weight.ndim != 2:
        raise ValueError(f"expected a 2-D weight, got shape {tuple(weight.shape)}")
    w64 = weight.detach().to(torch.float64)
    amax = w64.abs().amax(dim=1, keepdim=True)
    scale = torch.where(amax > 0, amax / INT8_MAX, torch.ones_like(amax)).to(torch.float32)
    q = torch.round(w64 / scale.to(torch.float64)).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q, scale, torch.zeros_like(scale)


def dequantize_w8a8_dynamic(
    weight: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor
) -> torch.Tensor:
    """``W = (q - offset) * scale`` per output channel, in float32 (offset is zero when
    symmetric, as msModelSlim writes W8A8_DYNAMIC)."""
    import torch

    q = weight.to(torch.float32)
    return (q - offset.to(torch.float32).reshape(-1, 1)) * scale.to(torch.float32).reshape(-1, 1)


def quantize_per_token_dynamic(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token symmetric int8 as CANN's DynamicQuant (``torch_npu.npu_dynamic_quant``) does it:
    ``scale = row_max(|x|) / 127``, ``y = round(x / scale)`` along the last dimension, in float32
    (round half to even; a zero row gets scale 1 so it quantizes to zeros).

    Returns ``(y int8 shaped like x, scale float32 [..., 1])``.
    """
    import torch

    x32 = x.to(torch.float32)
    amax = x32.abs().amax(dim=-1, keepdim=True)
    scale = torch.where(amax > 0, amax / INT8_MAX, torch.ones_like(amax))
    y = torch.round(x32 / scale).clamp(-INT8_MAX - 1, INT8_MAX).to(torch.int8)
    return y, scale


def model_quant_type(types: list[str]) -> str:
    present = [t for t in _TYPE_PRIORITY if t in set(types)]
    return present[-1] if present else FLOAT


def build_description(entries: Mapping[str, str]) -> dict[str, Any]:
    """The description as msModelSlim's ascendV1 saver orders it: tensor entries, then the
    header keys."""
    desc: dict[str, Any] = dict(entries)
    desc["version"] = DESCRIPTION_VERSION
    desc["model_quant_type"] = model_quant_type(list(entries.values()))
    desc["metadata"] = {}
    desc["group_size"] = 0
    desc["optional"] = {}
    return desc


def description_text(entries: Mapping[str, str]) -> str:
    return json.dumps(build_description(entries), indent=2) + "\n"
