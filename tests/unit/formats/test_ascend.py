"""Ascend W8A8_DYNAMIC int8 quantization against float64, and the description file."""

from __future__ import annotations

import json

import pytest
import torch

from adaptgate.formats import ascend


def reference(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rows = []
    scales = []
    for row in w.to(torch.float64):
        amax = float(row.abs().max())
        s = torch.tensor(amax / 127.0 if amax > 0 else 1.0, dtype=torch.float64).float()
        q = [max(-127, min(127, round(float(x) / float(s)))) for x in row]  # round-half-even
        rows.append(q)
        scales.append(float(s))
    return torch.tensor(rows, dtype=torch.int8), torch.tensor(scales).reshape(-1, 1)


@pytest.mark.parametrize("shape", [(64, 96), (130, 40), (8, 256)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_quantize_matches_float64_reference(shape, dtype):
    gen = torch.Generator().manual_seed(shape[0])
    w = (torch.randn(shape, generator=gen) * 0.04).to(dtype)
    w[1, :] = 0  # a zero row
    q, scale, offset = ascend.quantize_w8a8_dynamic(w)
    q_ref, s_ref = reference(w)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32 and offset.dtype == torch.float32
    assert scale.shape == (shape[0], 1) and offset.shape == (shape[0], 1)
    assert torch.equal(scale, s_ref)
    assert torch.equal(q, q_ref)
    assert torch.equal(offset, torch.zeros_like(offset))
    assert int(q.abs().max()) == 127 and int(q.min()) >= -127
    deq = q.double() * scale.double()
    assert bool(((deq - w.double()).abs() <= scale.double() / 2 + 1e-12).all())


def test_ties_round_to_even():
    # 2.5 and 3.5 steps: exact halves after dividing by the scale 1/127*127 = 1
    w = torch.tensor([[127.0, 2.5, 3.5, -2.5, 0.5]])
    q, scale, _ = ascend.quantize_w8a8_dynamic(w)
    assert float(scale) == 1.0
    assert q.tolist() == [[127, 2, 4, -2, 0]]


def test_description_layout():
    entries = {"a.weight": "W8A8_DYNAMIC", "b.weight": "FLOAT"}
    desc = json.loads(ascend.description_text(entries))
    assert list(desc) == ["a.weight", "b.weight", "version", "model_quant_type", "metadata",
                          "group_size", "optional"]  # fmt: skip
    assert desc["version"] == "1.0.0" and desc["model_quant_type"] == "W8A8_DYNAMIC"
    assert ascend.model_quant_type(["FLOAT"]) == "FLOAT"


def test_dequantize_matches_float64():
    gen = torch.Generator().manual_seed(7)
    q = torch.randint(-127, 128, (48, 80), generator=gen, dtype=torch.int8)
    scale = torch.rand(48, 1, generator=gen) * 0.01 + 1e-4
    offset = torch.randint(-3, 4, (48, 1), generator=gen).float()
    out = ascend.dequantize_w8a8_dynamic(q, scale, offset)
    ref = (q.double() - offset.double()) * scale.double()
    assert out.dtype == torch.float32
    # one float32 subtraction (exact for these small integers) and one float32 product
    assert torch.equal(out, ref.float())


def test_per_token_dynamic_quant_matches_independent_computation():
    gen = torch.Generator().manual_seed(3)
    x = (torch.randn(5, 7, 96, generator=gen) * 3).to(torch.bfloat16)
    x[0, 0] = 0  # a zero token
    y, scale = ascend.quantize_per_token_dynamic(x)
    assert y.dtype == torch.int8 and y.shape == x.shape
    assert scale.dtype == torch.float32 and scale.shape == (5, 7, 1)
    flat = x.float().reshape(-1, 96).numpy()
    import numpy as np

    for i, row in enumerate(flat):
        amax = np.float32(np.abs(row).max())
        s = np.float32(amax / np.float32(127)) if amax > 0 else np.float32(1)
        want = np.clip(np.rint(row / s), -128, 127).astype(np.int8)  # rint: half to even
        assert scale.reshape(-1)[i].item() == s
        assert np.array_equal(y.reshape(-1, 96)[i].numpy(), want)
    assert int(y.abs().max()) == 127
