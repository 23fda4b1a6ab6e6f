"""A tiny Qwen2 checkpoint with Qwen2-style large k_proj biases planted in chosen layers.

Qwen2/Qwen2.5 carry very large k_proj biases in a few layers (bias norm ~600-900 against a
median ~22, formats.md section 5); with vLLM's default k_scale of 1.0 their keys saturate
FP8 E4M3 (+-448). This builder writes a Qwen2ForCausalLM (q/k/v biases, no QK-norm) in the
demo models' format -- the demo tokenizer, seeded bf16 weights drawn exactly as the demo
master weights are (:func:`adaptgate.demo.weights.master_weights`) -- and overwrites the
k_proj bias of each planted layer: in every KV head, one rotary pair (channels ``i`` and
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
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adaptgate.errors import UsageError

TRANSFORMERS_VERSION = "5.19.0"


class PlantedSpec(BaseModel):
    """What to build: dimensions as the demo models (multiples of 128), planted layers."""

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


HIDDEN, HEADS, KV_HEADS, HEAD_DIM, INTERMEDIATE = 256, 4, 2, 64, 512


def planted_channels(spec: PlantedSpec) -> list[int]:
    """The k_proj output channels (over ``kv_heads * head_dim``) that get the bias."""
    i = int(HEAD_DIM * spec.pair_fraction)
    return [h * HEAD_DIM + c for h in range(KV_HEADS) for c in (i, i + HEAD_DIM // 2)]


def query_channels(spec: PlantedSpec) -> list[int]:
    """The q_proj output channels that multiply the planted key channels (every query head
    of the group shares its KV head's channels)."""
    group = HEADS // KV_HEADS
    per_head = {c % HEAD_DIM for c in planted_channels(spec)}
    return [
        h * HEAD_DIM + c for h in range(HEADS) for c in sorted(per_head) if h // group < KV_HEADS
    ]


def _layout(layers: int, vocab: int) -> Any:
    from adaptgate.demo.layout import Layout, TensorSpec

    t: list[TensorSpec] = [TensorSpec("model.embed_tokens.weight", (vocab, HIDDEN), "embed")]
    for i in range(layers):
        p = f"model.layers.{i}"
        t.append(TensorSpec(f"{p}.input_layernorm.weight", (HIDDEN,), "norm"))
        for proj, out in (
            ("q", HEADS * HEAD_DIM),
            ("k", KV_HEADS * HEAD_DIM),
            ("v", KV_HEADS * HEAD_DIM),
        ):
            t.append(TensorSpec(f"{p}.self_attn.{proj}_proj.weight", (out, HIDDEN), "linear"))
            t.append(TensorSpec(f"{p}.self_attn.{proj}_proj.bias", (out,), "bias"))
        t.append(TensorSpec(f"{p}.self_attn.o_proj.weight", (HIDDEN, HEADS * HEAD_DIM), "linear"))
        t.append(TensorSpec(f"{p}.mlp.gate_proj.weight", (INTERMEDIATE, HIDDEN), "linear"))
        t.append(TensorSpec(f"{p}.mlp.up_proj.weight", (INTERMEDIATE, HIDDEN), "linear"))
        t.append(TensorSpec(f"{p}.mlp.down_proj.weight", (HIDDEN, INTERMEDIATE), "linear"))
        t.append(TensorSpec(f"{p}.post_attention_layernorm.weight", (HIDDEN,), "norm"))
    t.append(TensorSpec("model.norm.weight", (HIDDEN,), "norm"))
    t.append(TensorSpec("lm_head.weight", (vocab, HIDDEN), "head"))
    return Layout(tuple(t), ())


def _config(spec: PlantedSpec, vocab: int) -> dict[str, Any]:
    from adaptgate.demo.tokenizer import ENDOFTEXT, token_ids

    ids = token_ids()
    # the keys of Qwen/Qwen2.5-0.5B's config.json, tiny dimensions
    cfg = {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": ids[ENDOFTEXT],
        "dtype": "bfloat16",
        "eos_token_id": ids[ENDOFTEXT],
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": 32768,
        "max_window_layers": spec.num_layers,
        "model_type": "qwen2",
        "num_attention_heads": HEADS,
        "num_hidden_layers": spec.num_layers,
        "num_key_value_heads": KV_HEADS,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab,
    }
    return dict(sorted(cfg.items()))


def make_planted_qwen2(out_dir: str | os.PathLike[str], spec: PlantedSpec | None = None) -> Path:
    """Writes the checkpoint into ``out_dir`` (created; must be empty) and returns its path."""
    import torch

    from adaptgate.checkpoint.writer import save_tensors
    from adaptgate.demo.archs import padded_vocab
    from adaptgate.demo.master import write_json
    from adaptgate.demo.tokenizer import ENDOFTEXT, IM_END, token_ids, write_tokenizer
    from adaptgate.demo.weights import master_weights

    spec = spec or PlantedSpec()
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty directory", fix="choose a new path")
    vocab = padded_vocab()
    tensors = master_weights(_layout(spec.num_layers, vocab), spec.seed)
    for layer in spec.planted:
        attn = f"model.layers.{layer}.self_attn"
        bias = tensors[f"{attn}.k_proj.bias"].to(torch.float32)
        bias[planted_channels(spec)] = spec.magnitude
        tensors[f"{attn}.k_proj.bias"] = bias.to(torch.bfloat16)
        for name in (f"{attn}.q_proj.weight", f"{attn}.q_proj.bias"):
            q = tensors[name].to(torch.float32)
            q[query_channels(spec)] *= spec.q_gain
            tensors[name] = q.to(torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    write_tokenizer(out)
    ids = token_ids()
    write_json(
        out / "generation_config.json",
        {
            "bos_token_id": ids[ENDOFTEXT],
            "eos_token_id": [ids[IM_END], ids[ENDOFTEXT]],
            "transformers_version": TRANSFORMERS_VERSION,
        },
    )
    save_tensors(tensors, out)
    write_json(out / "config.json", _config(spec, vocab))
    return out
