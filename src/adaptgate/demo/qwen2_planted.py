"""The demo's Qwen2 with Qwen2-style large k_proj biases planted in chosen layers.

Qwen2/Qwen2.5 carry very large k_proj biases in a few layers (bias norm ~600-900 against a
median ~22, formats.md section 5); with vLLM's default k_scale of 1.0 their keys saturate
FP8 E4M3 (+-448). This builder takes the registered ``qwen2`` demo architecture (q/k/v biases,
no QK-norm; bf16, seeded like every demo model) and overwrites the k_proj bias of each planted
layer before writing: in every KV head, one rotary pair (channels ``i`` and
``i + head_dim/2``, at a middle frequency so the rotated bias sweeps across positions) gets
``+magnitude`` in both channels. With the default 450 the bias norm per layer is
``450 * sqrt(2 * kv_heads)`` = 900 and the rotated key components reach ``450 * sqrt(2)`` = 636.
The q_proj rows meeting those channels are scaled by ``q_gain`` so the bias shapes attention
as a moderate positional preference (as a real model's large k bias largely cancels in the
softmax) instead of dominating every attention score.

The KV-cache tests build it to show a planted outlier fault FAIL the kvcache gate.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adaptgate.demo.spec import DemoSpec
from adaptgate.errors import UsageError

if TYPE_CHECKING:
    from adaptgate.demo.archs import Dims

ARCH = "qwen2"


class PlantedSpec(BaseModel):
    """What to build: the demo qwen2's layers and seed, and where and how hard to plant."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_layers: int = Field(4, ge=1, le=16)
    planted: tuple[int, ...] = (1, 3)
    magnitude: float = Field(450.0, ge=0.0)
    seed: int = 0
    pair_fraction: float = Field(
        0.125, gt=0.0, lt=0.5, description="rotary pair index / head_dim: which frequency"
    )
    q_gain: float = Field(
        0.125, ge=0.0, description="scale of the q_proj rows that meet the planted channels"
    )

    @model_validator(mode="after")
    def _layers_exist(self) -> PlantedSpec:
        bad = [i for i in self.planted if not 0 <= i < self.num_layers]
        if bad:
            raise UsageError(f"planted layer {bad[0]} is not in 0..{self.num_layers - 1}")
        return self

    def demo_spec(self) -> DemoSpec:
        return DemoSpec(arch=ARCH, format="bf16", num_layers=self.num_layers, seed=self.seed)


def planted_channels(spec: PlantedSpec, d: Dims) -> list[int]:
    """The k_proj output channels (over ``kv_heads * head_dim``) that get the bias."""
    i = int(d.head_dim * spec.pair_fraction)
    return [h * d.head_dim + c for h in range(d.kv_heads) for c in (i, i + d.head_dim // 2)]


def query_channels(spec: PlantedSpec, d: Dims) -> list[int]:
    """The q_proj output channels that multiply the planted key channels (every query head
    of the group shares its KV head's channels)."""
    group = d.heads // d.kv_heads
    per_head = {c % d.head_dim for c in planted_channels(spec, d)}
    return [
        h * d.head_dim + c
        for h in range(d.heads)
        for c in sorted(per_head)
        if h // group < d.kv_heads
    ]


def make_planted_qwen2(out_dir: str | os.PathLike[str], spec: PlantedSpec | None = None) -> Path:
    """Writes the checkpoint into ``out_dir`` (created; must be empty) and returns its path."""
    import torch

    from adaptgate.demo.build import write_model
    from adaptgate.demo.master import build_master

    spec = spec or PlantedSpec()
    demo = spec.demo_spec()
    master = build_master(demo)
    tensors = dict(master.tensors)
    keys, queries = planted_channels(spec, master.dims), query_channels(spec, master.dims)
    for layer in spec.planted:
        attn = f"model.layers.{layer}.self_attn"
        bias = tensors[f"{attn}.k_proj.bias"].to(torch.float32)
        bias[keys] = spec.magnitude
        tensors[f"{attn}.k_proj.bias"] = bias.to(torch.bfloat16)
        for name in (f"{attn}.q_proj.weight", f"{attn}.q_proj.bias"):
            q = tensors[name].to(torch.float32)
            q[queries] *= spec.q_gain
            tensors[name] = q.to(torch.bfloat16)
    return write_model(out_dir, replace(master, tensors=tensors), demo)
