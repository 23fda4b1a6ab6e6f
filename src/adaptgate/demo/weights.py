"""Seeded bf16 master weights: every format of a demo model is derived from these.

Each tensor draws from its own generator seeded by (seed, tensor name), so a tensor's values do
not depend on which other tensors exist. Linear weights have std 0.8/sqrt(fan_in) clipped to
[0.02, 0.05] so logits vary by token and position; norms are 1 plus small noise.
"""

from __future__ import annotations

import math
import zlib
from typing import TYPE_CHECKING

from adaptgate.demo.layout import Layout, TensorSpec

if TYPE_CHECKING:
    import torch


def _generator(seed: int, name: str) -> torch.Generator:
    import torch

    gen = torch.Generator(device="cpu")
    gen.manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))
    return gen


def _draw(spec: TensorSpec, seed: int) -> torch.Tensor:
    import torch

    gen = _generator(seed, spec.name)
    noise = torch.randn(spec.shape, generator=gen, dtype=torch.float32)
    if spec.kind == "norm":
        value = 1.0 + 0.1 * noise
    elif spec.kind == "embed":
        value = 0.05 * noise
    elif spec.kind in ("bias", "router_bias"):
        value = 0.02 * noise
    else:  # linear, router, head, mtp_proj
        fan_in = spec.shape[-1]
        std = min(0.05, max(0.02, 0.8 / math.sqrt(fan_in)))
        value = std * noise
    dtype = torch.float32 if spec.dtype == "float32" else torch.bfloat16
    return value.to(dtype)


def master_weights(layout: Layout, seed: int) -> dict[str, torch.Tensor]:
    """All checkpoint tensors in module order. The MTP layer's ``embed_tokens`` and
    ``shared_head.head`` are copies of the main embedding and head, as GLM-4.5 shares them."""
    out: dict[str, torch.Tensor] = {}
    for spec in layout.tensors:
        if spec.name.endswith(".embed_tokens.weight") and spec.name != "model.embed_tokens.weight":
            out[spec.name] = out["model.embed_tokens.weight"].clone()
        elif spec.name.endswith(".shared_head.head.weight"):
            head = out.get("lm_head.weight", out["model.embed_tokens.weight"])
            out[spec.name] = head.clone()
        else:
            out[spec.name] = _draw(spec, seed)
    return out
