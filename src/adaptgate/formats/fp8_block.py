"""Fine-grained FP8 block format (DeepSeek-V3, Qwen3-*-FP8): constants and the quantizer.

Per quantized Linear: ``<prefix>.weight`` float8_e4m3fn ``[out, in]`` and
``<prefix>.weight_scale_inv`` ``[ceil(out/bn), ceil(in/bk)]`` -- a multiplier despite its name:
``W ~= q * s`` block by block. Shapes need not divide by the block: the grid uses ceil division
and the last row/column of blocks is cropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adaptgate.formats.dequantize import ceil_div

if TYPE_CHECKING:
    import torch

QUANT_METHOD = "fp8"
FMT = "e4m3"
ACTIVATION_SCHEME = "dynamic"
FP8_MAX = 448.0  # largest finite float8_e4m3fn
UE8M0 = "ue8m0"


def scale_grid_shape(shape: tuple[int, int], block: tuple[int, int]) -> tuple[int, int]:
    """``(ceil(out/bn), ceil(in/bk))``: one scale per block, partial blocks included."""
    return ceil_div(shape[0], block[0]), ceil_div(shape[1], block[1])


def _block_amax(w64: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    import torch

    rows, cols = w64.shape
    bn, bk = block
    grid_r, grid_c = scale_grid_shape((rows, cols), block)
    padded = torch.zeros((grid_r * bn, grid_c * bk), dtype=w64.dtype)
    padded[:rows, :cols] = w64.abs()
    return padded.reshape(grid_r, bn, grid_c, bk).amax(dim=(1, 3))


def power_of_two_ceil(x: torch.Tensor) -> torch.Tensor:
    """The smallest power of two >= x (x > 0), exactly: frexp gives x = m * 2**e, m in [0.5, 1)."""
    import torch

    mantissa, exponent = torch.frexp(x)
    exponent = torch.where(mantissa == 0.5, exponent - 1, exponent)
    return torch.ldexp(torch.ones_like(x), exponent)


def block_scales(
    weight: torch.Tensor,
    block: tuple[int, int],
    *,
    scale_dtype: torch.dtype,
    ue8m0: bool = False,
) -> torch.Tensor:
    """Per-block scale ``amax / 448`` (a power of two >= that with ``ue8m0``), in ``scale_dtype``.

    All-zero blocks get scale 1. Computed in float64 and rounded once to ``scale_dtype``.
    """
    import torch

    amax = _block_amax(weight.detach().to(torch.float64), block)
    scale = torch.where(amax > 0, amax / FP8_MAX, torch.ones_like(amax))
    if ue8m0:
        scale = power_of_two_ceil(scale)
    stored = scale.to(scale_dtype)
    if not bool(torch.isfinite(stored).all()) or bool((stored == 0).any()):
        worst = float(amax.max())
        raise ValueError(f"block scales do not fit {scale_dtype} (weight amax {worst})")
    return stored


def expand_scales(
    scales: torch.Tensor, shape: tuple[int, int], block: tuple[int, int]
) -> torch.Tensor:
    """Repeats each scale over its block and crops to ``shape``."""
    full = scales.repeat_interleave(block[0], dim=0).repeat_interleave(block[1], dim=1)
    return full[: shape[0], : shape[1]]


def round_to_e4m3(x: torch.Tensor) -> torch.Tensor:
    """Rounds float64 values to float8_e4m3fn once, to nearest with ties to even, saturating at
    +-448. (torch's float64 -> float8 cast goes through float32 and can round twice.)"""
    import torch

    x = x.to(torch.float64).clamp(-FP8_MAX, FP8_MAX)
    _, exponent = torch.frexp(x)  # |x| = m * 2**exponent, m in [0.5, 1)
    # spacing of the e4m3 grid: 2**(e - 3) for |x| in [2**e, 2**(e+1)), e >= -6; 2**-9 below
    spacing = torch.ldexp(torch.ones_like(x), (exponent - 4).clamp_min(-9))
    rounded = torch.round(x / spacing) * spacing  # exact: spacing is a power of two
    return rounded.to(torch.float8_e4m3fn)  # exactly representable now: no second rounding


def quantize_fp8_block(
    weight: torch.Tensor,
    block: tuple[int, int] = (128, 128),
    *,
    scale_dtype: torch.dtype | None = None,
    ue8m0: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``(q, weight_scale_inv)``: ``q = RNE_e4m3(clamp(W / s, -448, 448))`` using the
    stored (rounded) scale ``s``; the division is done in float64 and q is rounded exactly once."""
    import torch

    if weight.ndim != 2:
        raise ValueError(f"expected a 2-D weight, got shape {tuple(weight.shape)}")
    dtype = scale_dtype or torch.float32
    shape = (int(weight.shape[0]), int(weight.shape[1]))
    scales = block_scales(weight, block, scale_dtype=dtype, ue8m0=ue8m0)
    divisor = expand_scales(scales.to(torch.float64), shape, block)
    return round_to_e4m3(weight.detach().to(torch.float64) / divisor), scales


def quantization_config(
    block: tuple[int, int],
    *,
    ue8m0: bool = False,
    modules_to_not_convert: list[str] | None = None,
) -> dict[str, Any]:
    """config.json ``quantization_config`` as Qwen3-*-FP8 / DeepSeek-V3(.1) write it."""
    cfg: dict[str, Any] = {
        "activation_scheme": ACTIVATION_SCHEME,
        "fmt": FMT,
        "quant_method": QUANT_METHOD,
        "weight_block_size": [int(block[0]), int(block[1])],
    }
    if ue8m0:
        cfg["scale_fmt"] = UE8M0
    if modules_to_not_convert:
        cfg["modules_to_not_convert"] = list(modules_to_not_convert)
    return cfg
