"""The vLLM plugin's patch, end to end outside the server: vLLM's own Qwen3Attention.forward
(and Qwen3MoeAttention.forward) computed unpatched and patched on the same module, inside the
tiny demo Qwen3 model run greedily by transformers. The kernel runs in Triton's interpreter.

Outside the server because the vLLM CPU build has no Triton (make uninstalls it) and its
attention layer needs the engine's forward context; here vLLM's real RMSNorm and RoPE modules
run, and only qkv_proj / o_proj / the attention op are plain torch stand-ins.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from adaptgate.kernels import QK_RMSNORM_ENV
from adaptgate.kernels import qk_rmsnorm as qk_module

pytestmark = pytest.mark.slow  # imports vLLM (about 10 s)


@pytest.fixture(scope="module")
def vllm_modules(vllm_python: str, triton_importable: None) -> dict[str, Any]:
    if Path(vllm_python).resolve() != Path(sys.executable).resolve():
        pytest.skip(f"vLLM is in {vllm_python}, not in this interpreter ({sys.executable})")
    assert importlib.util.find_spec("vllm") is not None
    from vllm.config import VllmConfig, set_current_vllm_config
    from vllm.model_executor.layers.layernorm import RMSNorm
    from vllm.model_executor.layers.rotary_embedding import get_rope
    from vllm.model_executor.models.qwen3 import Qwen3Attention
    from vllm.model_executor.models.qwen3_moe import Qwen3MoeAttention

    from adaptgate.kernels import vllm_plugin

    return {
        "config": VllmConfig,
        "set_config": set_current_vllm_config,
        "RMSNorm": RMSNorm,
        "get_rope": get_rope,
        "Qwen3Attention": Qwen3Attention,
        "Qwen3MoeAttention": Qwen3MoeAttention,
        "plugin": vllm_plugin,
    }


@pytest.fixture
def unpatched(vllm_modules: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Both classes unpatched before and after the test."""
    plugin = vllm_modules["plugin"]
    classes = [vllm_modules["Qwen3Attention"], vllm_modules["Qwen3MoeAttention"]]
    for cls in classes:
        plugin.unpatch_class(cls)
    yield vllm_modules
    for cls in classes:
        plugin.unpatch_class(cls)


class _Projection(nn.Module):
    """vLLM's linear layers return (output, bias)."""

    def __init__(self, *linears: nn.Linear) -> None:
        super().__init__()
        self.linears = nn.ModuleList(linears)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return torch.cat([lin(x) for lin in self.linears], dim=-1), None


class _CausalAttention(nn.Module):
    """Stand-in for vLLM's paged attention op: causal GQA over the whole sequence."""

    def __init__(self, heads: int, kv_heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        t, hd = q.shape[0], self.head_dim
        q4 = q.reshape(t, self.heads, hd).transpose(0, 1)
        rep = self.heads // self.kv_heads
        k4 = k.reshape(t, self.kv_heads, hd).transpose(0, 1).repeat_interleave(rep, dim=0)
        v4 = v.reshape(t, self.kv_heads, hd).transpose(0, 1).repeat_interleave(rep, dim=0)
        out = nn.functional.scaled_dot_product_attention(q4, k4, v4, is_causal=True)
        return out.transpose(0, 1).reshape(t, self.heads * hd)


def _vllm_attention(
    mods: dict[str, Any],
    cls: type,
    *,
    heads: int,
    kv_heads: int,
    head_dim: int,
    eps: float,
    theta: float,
    q_proj: nn.Linear,
    k_proj: nn.Linear,
    v_proj: nn.Linear,
    o_proj: nn.Linear,
    q_norm_weight: torch.Tensor,
    k_norm_weight: torch.Tensor,
) -> nn.Module:
    """An instance of vLLM's attention class (its __init__ needs the engine's parallel state,
    so the attributes its forward reads are set here): vLLM's RMSNorm and RoPE, torch
    stand-ins for the projections and the attention op."""
    layer = cls.__new__(cls)
    nn.Module.__init__(layer)
    layer.head_dim = head_dim
    layer.q_size, layer.kv_size = heads * head_dim, kv_heads * head_dim
    layer.qkv_proj = _Projection(q_proj, k_proj, v_proj)
    layer.o_proj = _Projection(o_proj)
    dtype = q_proj.weight.dtype
    with mods["set_config"](mods["config"]()):
        layer.q_norm = mods["RMSNorm"](head_dim, eps=eps, dtype=dtype)
        layer.k_norm = mods["RMSNorm"](head_dim, eps=eps, dtype=dtype)
        layer.rotary_emb = mods["get_rope"](
            head_dim, 4096, rope_parameters={"rope_type": "default", "rope_theta": theta},
            dtype=dtype,
        )  # fmt: skip
    layer.q_norm.weight.data.copy_(q_norm_weight)
    layer.k_norm.weight.data.copy_(k_norm_weight)
    layer.attn = _CausalAttention(heads, kv_heads, head_dim)
    return layer


class _AsHfAttention(nn.Module):
    """Lets a vLLM attention module stand in a transformers Qwen3 decoder layer."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[Any, None]:
        batch, tokens, hidden = hidden_states.shape
        assert batch == 1
        positions = torch.arange(tokens)
        out = self.inner(positions, hidden_states.reshape(tokens, hidden))
        return out.reshape(batch, tokens, -1), None


def _greedy(model: nn.Module, prompt: list[int], steps: int) -> tuple[list[int], torch.Tensor]:
    ids = torch.tensor([prompt])
    last = torch.empty(0)
    with torch.no_grad():
        for _ in range(steps):
            last = model(input_ids=ids, use_cache=False).logits[0, -1]
            ids = torch.cat([ids, last.argmax().view(1, 1)], dim=1)
    return ids[0, len(prompt) :].tolist(), last


@pytest.fixture
def kernel_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Records every call of the Triton kernel (the shape of qkv)."""
    calls: list[tuple[int, ...]] = []
    real = qk_module.qk_rmsnorm

    def spy(qkv: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        calls.append(tuple(qkv.shape))
        return real(qkv, *args, **kwargs)

    monkeypatch.setattr(qk_module, "qk_rmsnorm", spy)
    return calls


def test_register_patches_both_classes_only_when_enabled(
    unpatched: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = unpatched["plugin"]
    classes = [unpatched["Qwen3Attention"], unpatched["Qwen3MoeAttention"]]
    originals = [cls.forward for cls in classes]
    monkeypatch.delenv(QK_RMSNORM_ENV, raising=False)
    plugin.register()
    assert [cls.forward for cls in classes] == originals
    monkeypatch.setenv(QK_RMSNORM_ENV, "1")
    plugin.register()
    assert all(cls.forward is plugin.fused_forward for cls in classes)
    again = plugin.patch_qwen3_attention()
    assert [o.reason for o in again] == ["already patched", "already patched"]
    for cls, original in zip(classes, originals, strict=True):
        assert plugin.unpatch_class(cls)
        assert cls.forward is original


def test_the_entry_point_is_declared() -> None:
    import tomllib

    pyproject = Path(__file__).parents[3] / "pyproject.toml"
    data = tomllib.loads(pyproject.read_text("utf-8"))
    plugins = data["project"]["entry-points"]["vllm.general_plugins"]
    assert plugins == {"adaptgate_qk_rmsnorm": "adaptgate.kernels.vllm_plugin:register"}


def test_a_forward_that_differs_is_left_alone(vllm_modules: dict[str, Any]) -> None:
    plugin = vllm_modules["plugin"]
    base = vllm_modules["Qwen3Attention"]

    class Changed(base):  # type: ignore[misc,valid-type]
        def forward(self, positions: torch.Tensor, hidden_states: torch.Tensor) -> torch.Tensor:
            qkv, _ = self.qkv_proj(hidden_states)
            q, k, v = qkv.split([self.q_size, self.kv_size, self.kv_size], dim=-1)
            q, k = self.rotary_emb(positions, q, k)  # no q/k norm: not the code the patch knows
            output, _ = self.o_proj(self.attn(q, k, v))
            return output

    class Signature(base):  # type: ignore[misc,valid-type]
        def forward(self, positions: torch.Tensor, hidden_states: torch.Tensor, extra: int = 0):  # type: ignore[no-untyped-def]
            return super().forward(positions, hidden_states)

    changed = plugin.patch_class(Changed)
    assert not changed.patched and "differs from the unfused" in changed.reason
    signature = plugin.patch_class(Signature)
    assert not signature.patched and "not (self, positions, hidden_states)" in signature.reason
    assert Changed.forward is not plugin.fused_forward
    assert Signature.forward is not plugin.fused_forward


def test_tiny_qwen3_greedy_tokens_same_with_and_without_the_patch(
    tiny_model: Callable[..., Path],
    unpatched: dict[str, Any],
    triton_interpreter: None,
    kernel_calls: list[tuple[int, ...]],
) -> None:
    from transformers import AutoModelForCausalLM

    mods, plugin = unpatched, unpatched["plugin"]
    model_dir = tiny_model(arch="qwen3", format="bf16")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    cfg = model.config
    prompt = torch.randint(0, cfg.vocab_size, (12,), generator=torch.Generator().manual_seed(5))
    hf_tokens, hf_logits = _greedy(model, prompt.tolist(), steps=6)

    for layer in model.model.layers:
        hf = layer.self_attn
        inner = _vllm_attention(
            mods, mods["Qwen3Attention"],
            heads=cfg.num_attention_heads, kv_heads=cfg.num_key_value_heads,
            head_dim=cfg.head_dim, eps=cfg.rms_norm_eps,
            theta=cfg.rope_parameters["rope_theta"],
            q_proj=hf.q_proj, k_proj=hf.k_proj, v_proj=hf.v_proj, o_proj=hf.o_proj,
            q_norm_weight=hf.q_norm.weight, k_norm_weight=hf.k_norm.weight,
        )  # fmt: skip
        layer.self_attn = _AsHfAttention(inner)
    unfused_tokens, unfused_logits = _greedy(model, prompt.tolist(), steps=6)
    # the harness is faithful: vLLM's unfused attention inside the HF model gives HF's answer
    assert unfused_tokens == hf_tokens
    assert torch.allclose(unfused_logits, hf_logits, atol=1e-4, rtol=1e-4)
    assert kernel_calls == []

    outcomes = plugin.patch_qwen3_attention()
    assert [o.patched for o in outcomes] == [True, True], outcomes
    fused_tokens, fused_logits = _greedy(model, prompt.tolist(), steps=6)
    assert fused_tokens == unfused_tokens
    assert torch.allclose(fused_logits, unfused_logits, atol=1e-4, rtol=1e-4)
    # the kernel ran in every layer at every step (12, 13, ... tokens)
    layers = len(model.model.layers)
    assert len(kernel_calls) == layers * 6
    width = (cfg.num_attention_heads + 2 * cfg.num_key_value_heads) * cfg.head_dim
    assert kernel_calls[0] == (12, width) and kernel_calls[-1] == (17, width)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_qwen3_moe_attention_module_same_output_with_and_without_the_patch(
    unpatched: dict[str, Any],
    triton_interpreter: None,
    kernel_calls: list[tuple[int, ...]],
    dtype: str,
) -> None:
    """Qwen3-235B-A22B's attention shape per rank at TP=8 (8 q heads, 1 kv head, head_dim 128),
    random weights: vLLM's Qwen3MoeAttention.forward, unpatched vs patched."""
    mods, plugin = unpatched, unpatched["plugin"]
    gen = torch.Generator().manual_seed(11)
    hidden, heads, kv_heads, hd = 512, 8, 1, 128
    dt = getattr(torch, dtype)

    def linear(i: int, o: int) -> nn.Linear:
        lin = nn.Linear(i, o, bias=False)
        lin.weight.data = (torch.randn(o, i, generator=gen) / i**0.5).to(dt)
        return lin

    layer = _vllm_attention(
        mods, mods["Qwen3MoeAttention"], heads=heads, kv_heads=kv_heads, head_dim=hd,
        eps=1e-6, theta=1e6, q_proj=linear(hidden, heads * hd), k_proj=linear(hidden, hd),
        v_proj=linear(hidden, hd), o_proj=linear(heads * hd, hidden),
        q_norm_weight=(1 + 0.2 * torch.randn(hd, generator=gen)).to(dt),
        k_norm_weight=(1 + 0.2 * torch.randn(hd, generator=gen)).to(dt),
    )  # fmt: skip
    x = torch.randn(9, hidden, generator=gen).to(dt)
    positions = torch.arange(9)
    with torch.no_grad():
        before = layer(positions, x)
        assert plugin.patch_class(mods["Qwen3MoeAttention"]).patched
        after = layer(positions, x)
    assert kernel_calls == [(9, (heads + 2 * kv_heads) * hd)]
    # the only difference is where the norm output is rounded (bf16: one bf16 ulp of q/k)
    tol = {"bfloat16": 3e-2, "float32": 1e-5}[dtype]
    assert torch.allclose(after.float(), before.float(), atol=tol, rtol=tol)
    assert not torch.equal(after, torch.zeros_like(after))
