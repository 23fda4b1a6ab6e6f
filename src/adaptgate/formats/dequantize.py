"""Exact dequantization of FP8 weights: ``W = float32(q) * float32(s)`` per scale block, rounded
once (round-to-nearest-even) to the target type.

One function serves every scale layout, because each is a grid of blocks over ``[out, in]``:
FP8 block (``[ceil(out/bn), ceil(in/bk)]``, any block, non-square, non-divisible shapes),
compressed-tensors per-channel (``[out, 1]``, block ``(1, in)``) and per-tensor (one value, block
``(out, in)``). Scales may be float32, bfloat16, float16 or float8_e8m0 (``ue8m0``); all convert
to float32 exactly.

How: every block's 256 possible results are computed by torch as a lookup table (the same
float32 multiply and the same cast as ``q.float() * s`` followed by ``.to(dtype)``), then a gather
(:mod:`adaptgate.formats.kernels`) maps codes to results. So the output is bit-identical to
torch's float32 dequantization, at the speed of a table lookup. Casting to float16 saturates
values beyond +-65504 (which would become inf) and counts them; it never writes inf.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np
    import torch

Strategy = Literal["tensor", "channel", "block"]
Target = Literal["bf16", "fp16", "f32"]

FP8_CODES = ("F8_E4M3", "F8_E5M2")  # weight dtypes (safetensors codes) this module decodes
SCALE_CODES = ("F32", "BF16", "F16", "F8_E8M0")  # scale dtypes accepted
TARGET_CODES: dict[str, str] = {"bf16": "BF16", "fp16": "F16", "f32": "F32"}
FP16_MAX = 65504.0

__all__ = [
    "FP8_CODES",
    "FP16_MAX",
    "SCALE_CODES",
    "TARGET_CODES",
    "Dequantized",
    "block_of",
    "build_lut",
    "ceil_div",
    "dequantize",
    "dequantize_codes",
    "dequantize_reference",
    "expected_scale_shape",
    "fp8_values",
    "scale_fits",
    "scale_grid",
]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def block_of(
    weight_shape: tuple[int, int], strategy: Strategy, block: tuple[int, int] | None = None
) -> tuple[int, int]:
    """The ``(rows, cols)`` each scale entry covers."""
    out, inp = weight_shape
    if strategy == "tensor":
        return (max(out, 1), max(inp, 1))
    if strategy == "channel":
        return (1, max(inp, 1))
    if block is None or min(block) < 1:
        raise ValueError(f"block strategy needs a positive block size, got {block}")
    return (int(block[0]), int(block[1]))


def expected_scale_shape(
    weight_shape: tuple[int, int], strategy: Strategy, block: tuple[int, int] | None = None
) -> tuple[int, int]:
    """The scale grid ``[ceil(out/bn), ceil(in/bk)]`` a weight needs."""
    bn, bk = block_of(weight_shape, strategy, block)
    return (ceil_div(weight_shape[0], bn), ceil_div(weight_shape[1], bk))


def scale_fits(
    scale_shape: tuple[int, ...],
    weight_shape: tuple[int, int],
    strategy: Strategy,
    block: tuple[int, int] | None = None,
) -> bool:
    """True when the stored scale shape holds exactly the grid (``[out]`` for ``[out, 1]`` and
    ``()``/``(1,)`` for one value are accepted, as the writers of both formats produce them)."""
    grid = expected_scale_shape(weight_shape, strategy, block)
    shape = tuple(scale_shape)
    if shape == grid:
        return True
    if strategy == "tensor":
        return shape in ((), (1,))
    if strategy == "channel":
        return shape == (grid[0],)
    return False


@lru_cache(maxsize=4)
def _fp8_values(code: str) -> torch.Tensor:
    import torch

    if code not in FP8_CODES:
        raise ValueError(f"not an FP8 weight dtype: {code!r} (known: {', '.join(FP8_CODES)})")
    dtype = torch.float8_e4m3fn if code == "F8_E4M3" else torch.float8_e5m2
    return torch.arange(256, dtype=torch.uint8).view(dtype).to(torch.float32)


def fp8_values(code: str = "F8_E4M3") -> torch.Tensor:
    """The float32 value of each of the 256 codes of an FP8 type (NaN/inf codes included)."""
    return _fp8_values(code)


def scale_grid(scale: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The scale as a float32 ``grid``-shaped tensor; every accepted dtype converts exactly."""
    import torch

    flat = scale.reshape(-1)
    if flat.numel() != grid[0] * grid[1]:
        raise ValueError(f"scale of {flat.numel()} values does not fill a {grid} grid")
    return flat.to(torch.float32).reshape(grid).contiguous()


@dataclass
class Lut:
    """A block table ``[gr, gc, 256]`` of result bit patterns (uint16 or uint32), and which
    entries saturated (float16 only)."""

    table: np.ndarray
    saturated: np.ndarray | None  # bool [gr, gc, 256], None when nothing saturated


def build_lut(grid: torch.Tensor, code: str, target: Target) -> Lut:
    """Each block's 256 results: ``float32(value) * float32(scale)`` cast once to ``target``."""
    import torch

    values = fp8_values(code)
    products = grid.to(torch.float32).unsqueeze(-1) * values  # [gr, gc, 256], same math as q*s
    saturated = None
    if target == "bf16":
        table = products.to(torch.bfloat16).view(torch.int16)
    elif target == "fp16":
        half = products.to(torch.float16)
        overflow = torch.isinf(half) & ~torch.isinf(products)
        if bool(overflow.any()):
            limit = torch.full_like(half, FP16_MAX)
            half = torch.where(overflow, torch.copysign(limit, products.to(torch.float16)), half)
            saturated = overflow.numpy()
        table = half.view(torch.int16)
    elif target == "f32":
        table = products.view(torch.int32)
    else:
        raise ValueError(f"unknown target {target!r} (known: {', '.join(TARGET_CODES)})")
    return Lut(table.contiguous().numpy().view("u2" if target != "f32" else "u4"), saturated)


@dataclass
class Dequantized:
    """Result bits plus what happened on the way."""

    data: np.ndarray  # uint16 (bf16/fp16 bits) or uint32 (float32 bits), [out, in]
    saturated: int = 0  # values clamped to +-65504 (float16)
    nonfinite: int = 0  # FP8 codes that are NaN or inf


def _count_saturated(codes: np.ndarray, lut: Lut, block: tuple[int, int]) -> int:
    import numpy as np

    if lut.saturated is None:
        return 0
    bn, bk = block
    total = 0
    for gi, gj in zip(*np.nonzero(lut.saturated.any(axis=-1)), strict=True):
        part = codes[gi * bn : (gi + 1) * bn, gj * bk : (gj + 1) * bk]
        total += int(np.count_nonzero(lut.saturated[gi, gj][part]))
    return total


@lru_cache(maxsize=4)
def _nonfinite_codes(code: str) -> np.ndarray:
    import torch

    return (~torch.isfinite(fp8_values(code))).numpy()


def dequantize_codes(
    codes: np.ndarray,
    grid: torch.Tensor,
    block: tuple[int, int],
    *,
    code: str = "F8_E4M3",
    target: Target = "bf16",
    out: np.ndarray | None = None,
) -> Dequantized:
    """Dequantizes raw FP8 codes (uint8 ``[out, in]``) with a float32 scale ``grid``.

    ``out`` (uint16 for bf16/fp16, uint32 for f32, C-contiguous) is reused when given.
    """
    import numpy as np

    from adaptgate.formats.kernels import count_codes, gather_lut

    rows, cols = codes.shape
    expected = (ceil_div(rows, block[0]), ceil_div(cols, block[1]))
    if tuple(grid.shape) != expected:
        raise ValueError(f"scale grid {tuple(grid.shape)} does not fit {codes.shape} / {block}")
    lut = build_lut(grid, code, target)
    if out is None:
        out = np.empty((rows, cols), dtype=lut.table.dtype)
    gather_lut(codes, lut.table, block, out)
    nonfinite = count_codes(codes, _nonfinite_codes(code))
    return Dequantized(out, _count_saturated(codes, lut, block), nonfinite)


def _torch_target(target: Target) -> torch.dtype:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "f32": torch.float32}[target]


def dequantize(
    q: torch.Tensor,
    scale: torch.Tensor,
    *,
    strategy: Strategy = "block",
    block: tuple[int, int] | None = (128, 128),
    target: Target = "bf16",
) -> tuple[torch.Tensor, Dequantized]:
    """Dequantizes a 2-D FP8 tensor; returns the torch tensor and the statistics."""
    import torch

    if q.dim() != 2:
        raise ValueError(f"dequantize takes a 2-D weight, got shape {tuple(q.shape)}")
    code = {torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2"}.get(q.dtype)
    if code is None:
        raise ValueError(f"not an FP8 tensor: {q.dtype}")
    shape = (int(q.shape[0]), int(q.shape[1]))
    eff = block_of(shape, strategy, block)
    grid = scale_grid(scale, expected_scale_shape(shape, strategy, block))
    codes = q.contiguous().view(torch.uint8).numpy()
    result = dequantize_codes(codes, grid, eff, code=code, target=target)
    bits = torch.from_numpy(result.data)
    return bits.view(_torch_target(target)), result


def dequantize_reference(
    q: torch.Tensor,
    scale: torch.Tensor,
    *,
    strategy: Strategy = "block",
    block: tuple[int, int] | None = (128, 128),
    target: Target = "bf16",
) -> torch.Tensor:
    """The textbook computation (expand the grid, crop, multiply in float32, cast once), with
    float16 saturation. Slow; the oracle for tests and ``--verify``."""
    import torch

    shape = (int(q.shape[0]), int(q.shape[1]))
    bn, bk = block_of(shape, strategy, block)
    grid = scale_grid(scale, expected_scale_shape(shape, strategy, block))
    full = grid.repeat_interleave(bn, dim=0).repeat_interleave(bk, dim=1)[: shape[0], : shape[1]]
    product = q.to(torch.float32) * full
    if target == "fp16":
        product = product.clamp(-FP16_MAX, FP16_MAX)  # NaN stays NaN
    return product.to(_torch_target(target))
