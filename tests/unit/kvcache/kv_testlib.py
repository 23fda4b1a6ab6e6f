"""Helpers for the KV-cache tests: a tiny in-memory Qwen2 and arms built from scales."""

from __future__ import annotations

import torch

from adaptgate.kvcache.formats import KV_FORMATS
from adaptgate.kvcache.scales import LayerScales, ScaleSet, unit_scales
from adaptgate.kvcache.sim import Arm

KV_HEADS, HEAD_DIM, LAYERS = 2, 16, 2


def tiny_qwen2(seed: int = 0, k_bias: float = 0.0) -> torch.nn.Module:
    """Qwen2ForCausalLM from config, random weights (float32), optional constant k bias."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=LAYERS,
        num_attention_heads=4, num_key_value_heads=KV_HEADS, max_position_embeddings=512,
    )  # fmt: skip
    cfg._attn_implementation = "sdpa"
    model = Qwen2ForCausalLM(cfg).eval()
    if k_bias:
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.k_proj.bias.fill_(k_bias)
    return model


def arm(name: str, scale: float = 1.0, prefill: str | None = None) -> Arm:
    fmt = KV_FORMATS.get(name)
    channels = KV_HEADS * HEAD_DIM
    ss = unit_scales(fmt, LAYERS, channels)
    if fmt.is_fp8:
        ss.layers = [LayerScales(torch.tensor(scale), torch.tensor(scale)) for _ in range(LAYERS)]
    else:
        s, z = torch.full((channels,), scale), torch.zeros(channels)
        ss.layers = [LayerScales(s, s, z, z) for _ in range(LAYERS)]
    return Arm(ScaleSet(fmt, "unit", ss.layers), prefill or fmt.prefill, KV_HEADS, HEAD_DIM, None)
