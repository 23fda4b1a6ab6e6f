"""KV-cache formats, quantized and dequantized exactly as the serving engines do it.

**vLLM FP8 (``fp8_e4m3``, ``fp8_e5m2``).** One per-tensor scale for K and one for V per
attention layer (``layer._k_scale``/``_v_scale``, float32). Writing the cache
(``reshape_and_cache_flash`` -> ``fp8::scaled_convert``, csrc/quantization/w8a8/fp8/nvidia/
quant_utils.cuh) computes ``__nv_cvt_float_to_fp8(float(x) / scale, __NV_SATFINITE, fmt)``:
the element is widened to float32, *divided* by the scale, rounded to nearest-even and
saturated to the largest finite value (+-448 e4m3, +-57344 e5m2; NaN stays NaN). Reading
converts fp8 -> half (exact) -> float and multiplies by the scale, then rounds to the model
dtype. :func:`quantize_fp8` is ``clamp(x / scale, -max, max)`` followed by torch's
round-to-nearest-even float8 cast, which is the same function: clamping first only changes
inputs beyond the largest finite value, which SATFINITE maps to that value.

**Ascend C8 (``int8_c8``).** Per-channel ``kv_cache_scale``/``kv_cache_offset`` over the
``kv_heads * head_dim`` channels of k_proj/v_proj's output (msModelSlim's
``FakeQuantDynamicCache`` flattens heads x head_dim the same way). vllm-ascend
(``AscendC8AttentionBackendImpl._quantize_kv_to_int8``) stores
``clamp(round(x * (1 / scale) + offset), -128, 127)`` -- a multiplication by the reciprocal,
which it computes once in the parameter dtype (the model dtype, bf16 for bf16 models), and
torch's round (half to even). Reading for decode passes only ``key_antiquant_scale`` to
``npu_fused_infer_attention_score`` and the prefix-cache path dequantizes ``int8 * scale``
("scale-only dequant ... symmetric"): **the offset is not applied on read**, so only
symmetric scales (offset 0) are served correctly. :func:`dequantize_c8` reproduces that by
default; ``apply_offset=True`` gives msModelSlim's ``(q - offset) * scale``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from adaptgate.messages import Said, said
from adaptgate.registry import Registry

if TYPE_CHECKING:
    import torch

Granularity = Literal["tensor", "channel"]
Engine = Literal["vllm", "vllm-ascend"]
PrefillMode = Literal["fresh", "cache"]

# IEEE-style parameters of the two OCP FP8 formats (torch.finfo agrees; tested).
E4M3_MAX = 448.0
E5M2_MAX = 57344.0
INT8_MIN, INT8_MAX = -128, 127


@dataclass(frozen=True)
class KVFormat:
    """One KV-cache format and how an engine uses it.

    ``limit`` is the largest magnitude the stored code can represent (in scaled units: x/scale
    for FP8, x/scale + offset for int8). ``min_subnormal`` is the smallest non-zero FP8
    magnitude (0 for int8, whose resolution is one step of ``scale``). ``prefill`` is where the
    engine's prefill attention reads K/V: ``cache`` (vLLM V1: the cache is written first and
    FlashAttention / FlashInfer / Triton attend over it for prompt tokens too) or ``fresh``
    (vllm-ascend C8: PrefillNoCache attends over the float K/V, decode over the int8 cache).
    """

    name: str
    title: str
    engine: Engine
    granularity: Granularity
    limit: float
    mantissa_bits: int
    min_normal: float
    min_subnormal: float
    prefill: PrefillMode
    vllm_flag: str | None  # value of --kv-cache-dtype, None when enabled otherwise
    how_enabled: Said

    @property
    def is_fp8(self) -> bool:
        return self.granularity == "tensor"

    def torch_dtype(self) -> torch.dtype:
        import torch

        if self.name == "fp8_e4m3":
            return torch.float8_e4m3fn
        if self.name == "fp8_e5m2":
            return torch.float8_e5m2
        return torch.int8


KV_FORMATS: Registry[KVFormat] = Registry("KV-cache format")
KV_FORMATS.add(
    "fp8_e4m3",
    KVFormat(
        name="fp8_e4m3",
        title="FP8 E4M3 (vLLM)",
        engine="vllm",
        granularity="tensor",
        limit=E4M3_MAX,
        mantissa_bits=3,
        min_normal=2.0**-6,
        min_subnormal=2.0**-9,
        prefill="cache",
        vllm_flag="fp8_e4m3",
        how_enabled=said("kvcache.how_fp8_e4m3"),
    ),
)
KV_FORMATS.add(
    "fp8_e5m2",
    KVFormat(
        name="fp8_e5m2",
        title="FP8 E5M2 (vLLM)",
        engine="vllm",
        granularity="tensor",
        limit=E5M2_MAX,
        mantissa_bits=2,
        min_normal=2.0**-14,
        min_subnormal=2.0**-16,
        prefill="cache",
        vllm_flag="fp8_e5m2",
        how_enabled=said("kvcache.how_fp8_e5m2"),
    ),
)
KV_FORMATS.add(
    "int8_c8",
    KVFormat(
        name="int8_c8",
        title="INT8 C8 (vllm-ascend)",
        engine="vllm-ascend",
        granularity="channel",
        limit=float(INT8_MAX),
        mantissa_bits=0,
        min_normal=1.0,
        min_subnormal=1.0,
        prefill="fresh",
        vllm_flag=None,
        how_enabled=said("kvcache.how_int8_c8"),
    ),
)
FORMAT_NAMES: tuple[str, ...] = tuple(KV_FORMATS.names())


# --- FP8 -------------------------------------------------------------------------------------


def quantize_fp8(x: torch.Tensor, scale: float | torch.Tensor, fmt: KVFormat) -> torch.Tensor:
    """The stored FP8 codes (a float8 tensor): ``sat(rne(float32(x) / scale))``."""
    import torch

    if not fmt.is_fp8:
        raise ValueError(f"{fmt.name} is not an FP8 format")
    s = torch.as_tensor(scale, dtype=torch.float32, device=x.device)
    y = x.to(torch.float32) / s
    return y.clamp(-fmt.limit, fmt.limit).to(fmt.torch_dtype())


def dequantize_fp8(
    q: torch.Tensor, scale: float | torch.Tensor, out_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``float(q) * scale`` in float32, rounded once to ``out_dtype`` (default float32)."""
    import torch

    s = torch.as_tensor(scale, dtype=torch.float32, device=q.device)
    out = q.to(torch.float32) * s
    return out if out_dtype is None else out.to(out_dtype)


# --- INT8 C8 ---------------------------------------------------------------------------------


def engine_scale(scale: torch.Tensor, param_dtype: torch.dtype | None) -> torch.Tensor:
    """A C8 scale as vllm-ascend holds it: loaded into a parameter of the model dtype."""
    import torch

    s = scale.to(torch.float32)
    return s if param_dtype is None else s.to(param_dtype).to(torch.float32)


def c8_reciprocal(scale: torch.Tensor, param_dtype: torch.dtype | None) -> torch.Tensor:
    """``1.0 / scale`` computed in the parameter dtype, as vllm-ascend precomputes it."""
    import torch

    if param_dtype is None:
        return 1.0 / scale.to(torch.float32)
    return (1.0 / scale.to(param_dtype)).to(torch.float32)


def channel_view(t: torch.Tensor, kv_heads: int, head_dim: int) -> torch.Tensor:
    """A per-channel ``[kv_heads * head_dim]`` vector shaped to broadcast over
    ``[batch, kv_heads, tokens, head_dim]`` (transformers' K/V layout)."""
    return t.reshape(kv_heads, 1, head_dim)


def quantize_c8(
    x: torch.Tensor,
    scale: torch.Tensor,
    offset: torch.Tensor,
    *,
    param_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """int8 codes ``clamp(round(x * (1/scale) + offset), -128, 127)``; ``scale``/``offset``
    broadcast against ``x`` (see :func:`channel_view`). ``param_dtype`` is the dtype the engine
    holds the scale in (bf16 for bf16 models); None keeps float32."""
    import torch

    inv = c8_reciprocal(scale, param_dtype)
    off = engine_scale(offset, param_dtype)
    y = x.to(torch.float32) * inv + off
    return torch.round(y).clamp(INT8_MIN, INT8_MAX).to(torch.int8)


def dequantize_c8(
    q: torch.Tensor,
    scale: torch.Tensor,
    offset: torch.Tensor,
    *,
    param_dtype: torch.dtype | None = None,
    apply_offset: bool = False,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """What attention reads: ``q * scale`` (vllm-ascend's antiquant, offset ignored), or
    ``(q - offset) * scale`` with ``apply_offset`` (msModelSlim's fake quantization)."""
    import torch

    s = engine_scale(scale, param_dtype)
    v = q.to(torch.float32)
    if apply_offset:
        v = v - engine_scale(offset, param_dtype)
    out = v * s
    return out if out_dtype is None else out.to(out_dtype)


# --- resolution ------------------------------------------------------------------------------


def fp8_step(magnitude: float, fmt: KVFormat) -> float:
    """Distance between adjacent FP8 codes near ``magnitude`` (scaled units)."""
    import math

    if magnitude <= 0 or not math.isfinite(magnitude):
        return fmt.min_subnormal
    m = min(magnitude, fmt.limit)
    if m < fmt.min_normal:
        return fmt.min_subnormal
    return float(2.0 ** (math.floor(math.log2(m)) - fmt.mantissa_bits))
