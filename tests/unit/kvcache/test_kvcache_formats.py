"""Quantize/dequantize of every KV-cache format, bit-exact against torch's float8 casts and
independent numpy computations (an FP8 grid built from the bit layout, np.rint for int8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adaptgate.kvcache.formats import (
    FORMAT_NAMES,
    KV_FORMATS,
    dequantize_c8,
    dequantize_fp8,
    fp8_step,
    quantize_c8,
    quantize_fp8,
)

FP8 = {"fp8_e4m3": (4, 3, 7, True), "fp8_e5m2": (5, 2, 15, False)}


def _fp8_grid(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Every finite non-negative value of the format and its code, decoded from the bit layout
    (sign | exponent | mantissa) with numpy only -- independent of torch's float8 types."""
    ebits, mbits, bias, fn = FP8[name]
    values, codes = [], []
    for code in range(1 << (ebits + mbits)):
        e, m = code >> mbits, code & ((1 << mbits) - 1)
        if fn and e == (1 << ebits) - 1 and m == (1 << mbits) - 1:
            continue  # e4m3fn: S.1111.111 is NaN, no infinities
        if not fn and e == (1 << ebits) - 1:
            continue  # e5m2: inf / NaN
        if e == 0:
            v = m / (1 << mbits) * 2.0 ** (1 - bias)
        else:
            v = (1 + m / (1 << mbits)) * 2.0 ** (e - bias)
        values.append(v)
        codes.append(code)
    return np.array(values, dtype=np.float64), np.array(codes, dtype=np.int64)


def _numpy_fp8_codes(y: np.ndarray, name: str) -> np.ndarray:
    """Round-to-nearest-even onto the grid with saturation to the largest finite value."""
    values, codes = _fp8_grid(name)
    mag = np.minimum(np.abs(y.astype(np.float64)), values[-1])
    hi = np.clip(np.searchsorted(values, mag, side="left"), 0, len(values) - 1)
    lo = np.clip(hi - 1, 0, len(values) - 1)
    d_lo, d_hi = mag - values[lo], values[hi] - mag
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (codes[hi] % 2 == 0))
    idx = np.where(pick_hi, hi, lo)
    sign = np.signbit(y)  # -0 keeps its sign, as a float cast does
    ebits, mbits, _, _ = FP8[name]
    return (codes[idx] | (sign.astype(np.int64) << (ebits + mbits))).astype(np.uint8)


def _random(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # magnitudes spanning subnormals to far beyond the e5m2 range, both signs
    exps = torch.empty(n).uniform_(-20, 18, generator=g)
    signs = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    return (signs * torch.exp2(exps) * (1 + torch.rand(n, generator=g))).to(torch.float32)


def test_format_constants_agree_with_torch_finfo() -> None:
    for name in ("fp8_e4m3", "fp8_e5m2"):
        fmt = KV_FORMATS.get(name)
        info = torch.finfo(fmt.torch_dtype())
        assert fmt.limit == info.max
        assert fmt.min_normal == info.smallest_normal
        assert fmt.min_subnormal == info.smallest_normal * 2.0**-fmt.mantissa_bits
    assert set(FORMAT_NAMES) == {"fp8_e4m3", "fp8_e5m2", "int8_c8"}


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2"])
@pytest.mark.parametrize("scale", [1.0, 0.37, 3.125, 200.0])
def test_fp8_quantize_bit_exact(name: str, scale: float) -> None:
    fmt = KV_FORMATS.get(name)
    x = _random(50_000, seed=int(scale * 1000) + len(name))
    codes = quantize_fp8(x, scale, fmt).view(torch.uint8).numpy()
    y = (x / torch.tensor(scale, dtype=torch.float32)).numpy()
    # independent: numpy grid rounding with saturation
    assert np.array_equal(codes, _numpy_fp8_codes(y, name))
    # torch's own float8 cast where it is defined (inside the finite range)
    inside = np.abs(y) <= fmt.limit
    torch_codes = torch.from_numpy(y[inside]).to(fmt.torch_dtype()).view(torch.uint8).numpy()
    assert np.array_equal(codes[inside], torch_codes)
    # beyond it, SATFINITE: the largest finite code with the input's sign
    assert np.all(np.abs(quantize_fp8(x, scale, fmt).float().numpy()[~inside]) == fmt.limit)


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2"])
def test_fp8_ties_round_to_even_and_saturate(name: str) -> None:
    fmt = KV_FORMATS.get(name)
    values, _ = _fp8_grid(name)
    mids = torch.tensor((values[1:] + values[:-1]) / 2, dtype=torch.float32)
    codes = quantize_fp8(mids, 1.0, fmt).view(torch.uint8).numpy()
    assert np.all(codes % 2 == 0)  # every exact midpoint goes to the even code
    big = torch.tensor([fmt.limit * 1.01, -1e30, float("inf"), -float("inf")])
    assert quantize_fp8(big, 1.0, fmt).float().abs().tolist() == [fmt.limit] * 4
    assert torch.isnan(quantize_fp8(torch.tensor([float("nan")]), 1.0, fmt).float()).all()


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2"])
def test_fp8_dequantize_is_code_times_scale(name: str) -> None:
    fmt = KV_FORMATS.get(name)
    values, codes = _fp8_grid(name)
    q = torch.from_numpy(codes.astype(np.uint8)).view(fmt.torch_dtype())
    out = dequantize_fp8(q, 0.75).numpy()
    assert np.array_equal(out, (values * 0.75).astype(np.float32))
    assert dequantize_fp8(q, 0.75, torch.bfloat16).dtype == torch.bfloat16


def _numpy_c8(x: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    inv = (np.float32(1.0) / scale.astype(np.float32)).astype(np.float32)
    y = x.astype(np.float32) * inv + offset.astype(np.float32)
    return np.clip(np.rint(y), -128, 127).astype(np.int8)


def test_c8_quantize_matches_independent_numpy() -> None:
    g = torch.Generator().manual_seed(7)
    heads, dim = 3, 16
    x = torch.randn(2, heads, 50, dim, generator=g) * torch.linspace(0.01, 40, dim)
    scale = torch.rand(heads * dim, generator=g) * 0.3 + 0.01
    offset = torch.randint(-5, 6, (heads * dim,), generator=g).float()
    q = quantize_c8(x, scale.view(heads, 1, dim), offset.view(heads, 1, dim))
    want = _numpy_c8(
        x.numpy(), scale.view(heads, 1, dim).numpy(), offset.view(heads, 1, dim).numpy()
    )
    assert q.dtype == torch.int8
    assert np.array_equal(q.numpy(), want)
    assert int(q.min()) == -128 and int(q.max()) == 127  # both clamps exercised


def test_c8_rounds_half_to_even() -> None:
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 126.5, 300.0, -300.0])
    q = quantize_c8(x, torch.ones(1), torch.zeros(1))
    assert q.tolist() == [0, 2, 2, 0, -2, 126, 127, -128]


def test_c8_scale_held_in_model_dtype() -> None:
    scale = torch.tensor([0.0123456])
    x = torch.tensor([1.0])
    q_bf16 = quantize_c8(x, scale, torch.zeros(1), param_dtype=torch.bfloat16)
    inv = np.float32((1.0 / torch.tensor(0.0123456).to(torch.bfloat16)).float().item())
    assert q_bf16.item() == int(np.clip(np.rint(np.float32(1.0) * inv), -128, 127))


def test_c8_dequantize_ignores_offset_like_vllm_ascend() -> None:
    q = torch.tensor([-128, -1, 0, 5, 127], dtype=torch.int8)
    s, o = torch.tensor([0.5]), torch.tensor([3.0])
    assert dequantize_c8(q, s, o).tolist() == [-64.0, -0.5, 0.0, 2.5, 63.5]
    assert dequantize_c8(q, s, o, apply_offset=True).tolist() == [-65.5, -2.0, -1.5, 1.0, 62.0]


def test_fp8_step() -> None:
    e4m3 = KV_FORMATS.get("fp8_e4m3")
    assert fp8_step(448.0, e4m3) == 32.0
    assert fp8_step(1.0, e4m3) == 0.125
    assert fp8_step(1e-4, e4m3) == 2.0**-9
    assert fp8_step(1e9, e4m3) == 32.0
