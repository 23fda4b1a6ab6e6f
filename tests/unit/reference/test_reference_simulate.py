"""--simulate w8a8-dynamic: the int8 Linear against an independent integer computation, and the
simulated forward on a real Ascend W8A8_DYNAMIC checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptgate.checkpoint import open_checkpoint
from adaptgate.formats.ascend import quantize_w8a8_dynamic
from adaptgate.reference.prompts import EncodedPrompt, Prompt
from adaptgate.reference.session import ReferenceSession
from adaptgate.reference.simulate import int8_linear, quantizable


def test_int8_linear_matches_integer_arithmetic() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 64, generator=gen)
    w = 0.05 * torch.randn(48, 64, generator=gen)
    bias = torch.randn(48, generator=gen)
    wq, ws, _ = quantize_w8a8_dynamic(w)
    got = int8_linear(x, wq, ws, bias)
    # independent: numpy, integer accumulation in int64, per-token scale amax/127, half-to-even
    xs = np.abs(x.numpy()).max(axis=-1, keepdims=True) / np.float32(127)
    xq = np.clip(np.rint(x.numpy() / xs), -128, 127).astype(np.int64)
    acc = xq @ wq.numpy().astype(np.int64).T
    want = acc.astype(np.float32) * xs.astype(np.float32) * ws.numpy().reshape(-1) + bias.numpy()
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(got, x @ w.T + bias, atol=1e-4)  # it is not the float product


def test_routers_stay_float() -> None:
    assert quantizable("0.mlp.experts.gate_up_proj", 3)
    assert quantizable("0.self_attn.q_proj.weight", 2)
    assert not quantizable("0.mlp.gate.weight", 2)
    assert not quantizable("0.mlp.shared_expert_gate.weight", 2)
    assert not quantizable("0.input_layernorm.weight", 1)


@pytest.mark.slow
def test_simulated_forward_on_an_ascend_checkpoint(tiny_model: Callable[..., Path]) -> None:
    path = tiny_model(arch="qwen3", format="w8a8_dynamic")
    ckpt = open_checkpoint(path)
    name = "model.layers.0.self_attn.q_proj"
    plain = ReferenceSession(str(path), stream=False)
    loaded = plain.lm.model.get_parameter(f"{name}.weight")
    q, s, _ = quantize_w8a8_dynamic(loaded)
    # requantizing the dequantized int8 weights reproduces the checkpoint exactly
    assert torch.equal(q, ckpt.read_tensor(f"{name}.weight"))
    assert torch.equal(s, ckpt.read_tensor(f"{name}.weight_scale"))
    prompt = [EncodedPrompt(prompt=Prompt(id="a", text="x"), rendered="x", token_ids=[5, 17, 300])]
    ref, _ = plain.run(prompt, max_new_tokens=1)
    sim = ReferenceSession(str(path), stream=True, simulate="w8a8-dynamic")
    out, _ = sim.run(prompt, max_new_tokens=1)
    diff = (out[0].prompt_logits - ref[0].prompt_logits).abs().max()
    assert 0 < diff < 0.1 * ref[0].prompt_logits.abs().max()  # int8 activations: close, not equal
