"""FP8 block quantization against an independent float64 computation, block by block."""

from __future__ import annotations

import math

import pytest
import torch

from adaptgate.formats import fp8_block

SHAPES_BLOCKS = [
    ((256, 512), (128, 128)),
    ((576, 300), (128, 128)),  # non-divisible rows and columns: cropped last blocks
    ((192, 320), (64, 128)),  # non-square block
    ((100, 70), (128, 128)),  # smaller than one block
    ((384, 256), (128, 64)),
]
SCALE_DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def e4m3_grid() -> tuple[torch.Tensor, torch.Tensor]:
    """All finite float8_e4m3fn values, sorted, with their bit patterns."""
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    values = codes.view(torch.float8_e4m3fn).to(torch.float64)
    keep = torch.isfinite(values)
    values, codes = values[keep], codes[keep]
    order = torch.argsort(values, stable=True)
    values, codes = values[order], codes[order]
    first = torch.ones_like(values, dtype=torch.bool)
    first[1:] = values[1:] != values[:-1]  # +0 and -0
    return values[first], codes[first]


def nearest_e4m3(x: torch.Tensor) -> torch.Tensor:
    """Nearest grid value by search, ties to the even bit pattern; saturates at +-448."""
    grid, codes = e4m3_grid()
    x = x.to(torch.float64).clamp(-448.0, 448.0).flatten()
    hi = torch.searchsorted(grid, x).clamp(1, len(grid) - 1)
    lo = hi - 1
    d_lo, d_hi = x - grid[lo], grid[hi] - x
    take_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (codes[hi].to(torch.int32) % 2 == 0))
    return torch.where(take_hi, grid[hi], grid[lo])


def reference(
    w: torch.Tensor, block: tuple[int, int], scale_dtype: torch.dtype, ue8m0: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loops over the ceil-divided grid, slicing each (cropped) block explicitly."""
    rows, cols = w.shape
    bn, bk = block
    grid = (math.ceil(rows / bn), math.ceil(cols / bk))
    w64 = w.to(torch.float64)
    scales = torch.empty(grid, dtype=scale_dtype)
    q = torch.empty(w.shape, dtype=torch.float8_e4m3fn)
    for i in range(grid[0]):
        for j in range(grid[1]):
            blk = w64[i * bn : (i + 1) * bn, j * bk : (j + 1) * bk]
            amax = float(blk.abs().max())
            s = amax / 448.0 if amax > 0 else 1.0
            if ue8m0:
                s = 2.0 ** math.ceil(math.log2(s))
            stored = torch.tensor(s, dtype=torch.float64).to(scale_dtype)
            scales[i, j] = stored
            quot = nearest_e4m3(blk / float(stored)).reshape(blk.shape)
            q[i * bn : (i + 1) * bn, j * bk : (j + 1) * bk] = quot.to(torch.float8_e4m3fn)
    return q, scales


def random_weight(shape: tuple[int, int], seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=gen) * 0.03
    w[0, 0] = 0.9  # an outlier in the first block
    return w.to(torch.bfloat16)


@pytest.mark.parametrize(("shape", "block"), SHAPES_BLOCKS)
@pytest.mark.parametrize("scale_dtype", SCALE_DTYPES)
@pytest.mark.parametrize("ue8m0", [False, True])
def test_quantize_matches_float64_reference(shape, block, scale_dtype, ue8m0):
    w = random_weight(shape, seed=hash((shape, block)) % 1000)
    q, s = fp8_block.quantize_fp8_block(w, block, scale_dtype=scale_dtype, ue8m0=ue8m0)
    q_ref, s_ref = reference(w, block, scale_dtype, ue8m0)
    assert q.dtype == torch.float8_e4m3fn and q.shape == w.shape
    assert s.dtype == scale_dtype
    assert s.shape == fp8_block.scale_grid_shape(shape, block)
    assert torch.equal(s, s_ref)
    assert torch.equal(q.to(torch.float64), q_ref.to(torch.float64))  # -0 == +0


@pytest.mark.parametrize(("shape", "block"), SHAPES_BLOCKS)
def test_dequantized_error_is_within_half_an_fp8_step(shape, block):
    w = random_weight(shape, seed=7)
    q, s = fp8_block.quantize_fp8_block(w, block, scale_dtype=torch.float32)
    full = fp8_block.expand_scales(s.double(), shape, block)
    deq = q.double() * full
    w64 = w.double()
    # e4m3: 3 mantissa bits -> relative step 2**-3; subnormal step 2**-9 below 2**-6
    step = torch.maximum(2.0 ** (torch.floor(torch.log2((w64 / full).abs().clamp_min(2**-6))) - 3),
                         torch.full_like(w64, 2.0**-9))  # fmt: skip
    assert bool(((deq - w64).abs() <= step / 2 * full * (1 + 1e-9)).all())
    assert float((deq - w64).abs().max()) > 0  # the check is not vacuous


def test_ue8m0_scales_are_powers_of_two_and_never_clip():
    w = random_weight((256, 256), seed=3)
    q, s = fp8_block.quantize_fp8_block(w, (128, 128), scale_dtype=torch.float32, ue8m0=True)
    mantissa, _ = torch.frexp(s)
    assert bool((mantissa == 0.5).all())
    assert float(q.float().abs().max()) <= 448.0
    amax = fp8_block._block_amax(w.double(), (128, 128))
    assert bool((s.double() >= amax / 448.0).all())


def test_round_to_e4m3_matches_grid_search_including_ties():
    grid, _ = e4m3_grid()
    mids = (grid[1:] + grid[:-1]) / 2  # every tie
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([grid, mids, mids * (1 + 1e-12), torch.randn(20000, generator=gen) * 100,
                   torch.tensor([500.0, -1e6, 1e-9])])  # fmt: skip
    got = fp8_block.round_to_e4m3(x).to(torch.float64)
    assert torch.equal(got, nearest_e4m3(x))


def test_zero_block_gets_unit_scale():
    w = torch.zeros(256, 256, dtype=torch.bfloat16)
    w[:128, :128] = 0.01
    _, s = fp8_block.quantize_fp8_block(w, (128, 128))
    assert s[1, 1] == 1.0 and s[0, 1] == 1.0


def test_power_of_two_ceil_is_exact():
    x = torch.tensor([0.5, 0.75, 1.0, 1.0000001, 3.0, 2.0**-20], dtype=torch.float64)
    expected = torch.tensor([0.5, 1.0, 1.0, 2.0, 4.0, 2.0**-20], dtype=torch.float64)
    assert torch.equal(fp8_block.power_of_two_ceil(x), expected)


def test_quantization_config_keys():
    cfg = fp8_block.quantization_config((64, 128), ue8m0=True, modules_to_not_convert=["a"])
    assert cfg == {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "quant_method": "fp8",
        "weight_block_size": [64, 128],
        "scale_fmt": "ue8m0",
        "modules_to_not_convert": ["a"],
    }
    assert "scale_fmt" not in fp8_block.quantization_config((128, 128))
