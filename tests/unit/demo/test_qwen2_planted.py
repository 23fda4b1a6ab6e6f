"""The planted Qwen2 is the demo qwen2 with only the planted k_proj biases and q rows changed."""

from __future__ import annotations

import pytest
import torch
from ckpt_helpers import config, load_all
from pydantic import ValidationError

from adaptgate.demo.master import build_master
from adaptgate.demo.qwen2_planted import (
    PlantedSpec,
    make_planted_qwen2,
    planted_channels,
    query_channels,
)


def test_plants_only_the_chosen_channels(tmp_path):
    spec = PlantedSpec(num_layers=3, planted=(1,), magnitude=300.0, q_gain=0.5)
    out = make_planted_qwen2(tmp_path / "m", spec)
    master = build_master(spec.demo_spec())
    tensors = load_all(out)
    assert config(out)["architectures"] == ["Qwen2ForCausalLM"]
    assert config(out)["num_hidden_layers"] == 3
    d = master.dims
    keys, queries = planted_channels(spec, d), query_channels(spec, d)
    # head_dim 64, pair_fraction 1/8: channels 8 and 40 of each of the 2 KV heads, and of
    # each of the 4 query heads (2 per KV head)
    assert keys == [8, 40, 72, 104]
    assert queries == [8, 40, 72, 104, 136, 168, 200, 232]
    attn = "model.layers.1.self_attn"
    changed = {f"{attn}.k_proj.bias", f"{attn}.q_proj.weight", f"{attn}.q_proj.bias"}
    assert set(tensors) == set(master.tensors)
    for name, value in master.tensors.items():
        if name not in changed:
            assert torch.equal(tensors[name], value), name
    k_bias = tensors[f"{attn}.k_proj.bias"].float()
    assert bool((k_bias[keys] == 300.0).all())
    rest = [c for c in range(d.kv_heads * d.head_dim) if c not in keys]
    assert torch.equal(k_bias[rest], master.tensors[f"{attn}.k_proj.bias"].float()[rest])
    for leaf in ("weight", "bias"):
        q, q0 = tensors[f"{attn}.q_proj.{leaf}"].float(), master.tensors[f"{attn}.q_proj.{leaf}"]
        assert torch.equal(q[queries], (q0.float()[queries] * 0.5).bfloat16().float())
        others = [c for c in range(d.heads * d.head_dim) if c not in queries]
        assert torch.equal(q[others], q0.float()[others])


def test_planted_layer_must_exist():
    with pytest.raises(ValidationError, match=r"planted layer 4 is not in 0\.\.3"):
        PlantedSpec(num_layers=4, planted=(4,))
