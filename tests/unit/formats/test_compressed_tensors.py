"""compressed-tensors FP8 presets: the library's numerics against float64, and round trips
through the library's own decompressor."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors import safe_open

from adaptgate.formats import compressed_tensors as ct

E4M3_MAX = 448.0


def nearest_e4m3(x: torch.Tensor) -> torch.Tensor:
    """Reference e4m3 rounding by search over all finite values (ties to even code)."""
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    grid = codes.view(torch.float8_e4m3fn).to(torch.float64)
    keep = torch.isfinite(grid) & ~((grid == 0) & (codes >= 128))
    grid, codes = grid[keep], codes[keep]
    order = torch.argsort(grid)
    grid, codes = grid[order], codes[order]
    flat = x.to(torch.float64).clamp(-E4M3_MAX, E4M3_MAX).flatten()
    hi = torch.searchsorted(grid, flat).clamp(1, len(grid) - 1)
    lo = hi - 1
    d_lo, d_hi = flat - grid[lo], grid[hi] - flat
    take_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (codes[hi].to(torch.int32) % 2 == 0))
    return torch.where(take_hi, grid[hi], grid[lo]).reshape(x.shape)


def weight(shape=(256, 384), seed=0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=gen) * 0.04
    w[3, 5] = -0.7
    return w.to(torch.bfloat16)


def reference(w: torch.Tensor, amax64: torch.Tensor, expand) -> tuple[torch.Tensor, torch.Tensor]:
    """The library's documented numerics in float64: scale = bf16(amax / 448); the quotient is
    formed in bf16 (float32 division rounded to bf16) and then rounded to e4m3."""
    scale = (amax64 / E4M3_MAX).to(torch.float32).to(torch.bfloat16)
    quotient = (w.double() / expand(scale.double())).to(torch.float32).to(torch.bfloat16)
    return nearest_e4m3(quotient), scale


def test_fp8_dynamic_matches_reference():
    w = weight()
    out = ct.quantize_linear(w, ct.PRESET_FP8_DYNAMIC)
    amax = w.double().abs().amax(dim=1, keepdim=True)
    q_ref, s_ref = reference(w, amax, lambda s: s)
    assert set(out) == {"weight", "weight_scale"}
    assert out["weight_scale"].shape == (256, 1) and out["weight_scale"].dtype == torch.bfloat16
    assert torch.equal(out["weight_scale"], s_ref)
    assert torch.equal(out["weight"].double(), q_ref)


def test_fp8_tensor_matches_reference_and_keeps_the_input_scale():
    w = weight(seed=1)
    out = ct.quantize_linear(w, ct.PRESET_FP8, input_amax=5.5)
    amax = w.double().abs().max().reshape(1)
    q_ref, s_ref = reference(w, amax, lambda s: s)
    assert torch.equal(out["weight_scale"], s_ref)
    assert torch.equal(out["weight"].double(), q_ref)
    assert out["input_scale"].shape == (1,)
    assert torch.equal(out["input_scale"], torch.tensor([5.5 / E4M3_MAX]).to(torch.bfloat16))


@pytest.mark.parametrize(("shape", "block"), [((256, 384), (128, 128)), ((200, 300), (128, 128)),
                                              ((256, 256), (64, 128))])  # fmt: skip
def test_fp8_block_matches_reference(shape, block):
    w = weight(shape, seed=2)
    out = ct.quantize_linear(w, ct.PRESET_FP8_BLOCK, block=block)
    bn, bk = block
    grid = (math.ceil(shape[0] / bn), math.ceil(shape[1] / bk))
    amax = torch.zeros(grid, dtype=torch.float64)
    for i in range(grid[0]):
        for j in range(grid[1]):
            amax[i, j] = w.double()[i * bn : (i + 1) * bn, j * bk : (j + 1) * bk].abs().max()

    def expand(s):
        return s.repeat_interleave(bn, 0).repeat_interleave(bk, 1)[: shape[0], : shape[1]]

    q_ref, s_ref = reference(w, amax, expand)
    assert out["weight_scale"].shape == grid
    assert torch.equal(out["weight_scale"], s_ref)
    assert torch.equal(out["weight"].double(), q_ref)


def test_static_preset_needs_calibration():
    with pytest.raises(ValueError, match="calibrated"):
        ct.quantize_linear(weight(), ct.PRESET_FP8)


def test_unknown_preset():
    with pytest.raises(ValueError, match="FP8_DYNAMIC"):
        ct.make_scheme("FP4")


@pytest.mark.parametrize("arch", ["qwen3", "qwen3_moe", "glm4_moe"])
@pytest.mark.parametrize("fmt", ["ct_fp8_channel", "ct_fp8_tensor", "ct_fp8_block"])
def test_library_decompressor_recovers_the_master(tiny_model, arch, fmt):
    """CompressedTensorsDequantizer (the library's model-free decompressor) reads the
    checkpoint; every weight comes back within FP8 error of the bf16 master."""
    from compressed_tensors.entrypoints.convert.converters.ct_dequantizer import (
        CompressedTensorsDequantizer,
    )

    from adaptgate.demo.master import build_master
    from adaptgate.demo.spec import make_spec

    d = tiny_model(arch, fmt)
    tensors = {}
    with safe_open(str(d / "model.safetensors"), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118
            tensors[key] = f.get_tensor(key)
    # model-free matching cannot tell an Embedding from a Linear: name it, as its docs say
    converter = CompressedTensorsDequantizer(d, ignore=["re:.*embed_tokens$"], dtype=torch.float32)
    # its model-free validator knows only weight parameters, not Linear biases (GLM's q/k/v)
    # or static input scales: validate the rest
    converter.validate(
        {k: v for k, v in tensors.items() if not k.endswith((".bias", ".input_scale"))}
    )
    restored = converter.process(dict(tensors))
    master = build_master(make_spec(arch=arch, format=fmt))
    assert set(restored) >= set(master.tensors)
    checked = 0
    for module in master.quantized_modules():
        w = master.tensors[f"{module}.weight"].double()
        back = restored[f"{module}.weight"].double()
        assert back.shape == w.shape
        # e4m3 keeps 3 mantissa bits: at most half a step (1/16 relative) plus the bf16
        # quotient rounding; relative to the largest |w| of the scale group
        assert float((back - w).abs().max()) <= float(w.abs().max()) * (1 / 16 + 1 / 128)
        cos = torch.nn.functional.cosine_similarity(back.flatten(), w.flatten(), dim=0)
        assert float(cos) > 0.998
        checked += 1
    assert checked == len(master.quantized_modules())
