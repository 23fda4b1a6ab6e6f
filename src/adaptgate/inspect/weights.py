"""Bytes the weights take once loaded, per category, for each route (weight format).

- ``native``: as stored. From headers when we have them (exact bytes per category, scales
  spread over the quantized categories); from the config otherwise: quantized Linear weights at
  the scheme's bits, everything else at the model dtype, plus an estimate of the scales.
- ``bf16``: every parameter in 2 bytes (dequantized FP8 doubles its Linear weights).
- ``w8a8_dynamic``: Ascend int8 Linear weights (1 byte) plus a float32 scale and offset per
  output channel (8 bytes a row; rows estimated as params / hidden); the rest bf16.
A tied lm_head is loaded once (vLLM ties it to the embedding even when the file stores both).
"""

from __future__ import annotations

from adaptgate.formats.detect import QuantScheme
from adaptgate.inspect.facts import ArchFacts
from adaptgate.inspect.params import QUANTIZABLE, ParamCounts
from adaptgate.messages import said

_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
ROUTE_TITLES = {name: said(f"inspect.title_{name}") for name in ("native", "bf16", "w8a8_dynamic")}


def _loaded(params: ParamCounts, facts: ArchFacts) -> dict[str, int]:
    counts = dict(params.by_category)
    if facts.tie_word_embeddings:
        counts["lm_head"] = 0
    return counts


def _scale_estimate(quantized_params: int, scheme: QuantScheme, facts: ArchFacts) -> int:
    if scheme.block_size and len(scheme.block_size) == 2:
        return quantized_params * 4 // (scheme.block_size[0] * scheme.block_size[1])
    return quantized_params * 8 // facts.hidden_size


def weight_bytes(
    route: str, params: ParamCounts, scheme: QuantScheme, facts: ArchFacts
) -> dict[str, int]:
    """Loaded weight bytes per category for one route."""
    counts = _loaded(params, facts)
    out: dict[str, int] = {}
    if route == "bf16":
        return {k: v * 2 for k, v in counts.items()}
    if route == "w8a8_dynamic":
        for k, v in counts.items():
            out[k] = v + v * 8 // facts.hidden_size if k in QUANTIZABLE else v * 2
        return out
    if params.source == "headers" and params.bytes_by_category:
        out = dict(params.bytes_by_category)
        if facts.tie_word_embeddings:
            out["lm_head"] = 0
        quantized = {k: v for k, v in out.items() if k in QUANTIZABLE and v}
        spread = sum(quantized.values()) or 1
        for k, v in quantized.items():
            out[k] = v + (params.quant_metadata_bytes or 0) * v // spread
        return out
    base = _DTYPE_BYTES.get(facts.dtype or "bfloat16", 2)
    bits = scheme.weight_bits if scheme.is_quantized and scheme.weight_bits else None
    for k, v in counts.items():
        if bits and k in QUANTIZABLE:
            out[k] = v * bits // 8 + _scale_estimate(v, scheme, facts)
        else:
            out[k] = v * base
    return out
