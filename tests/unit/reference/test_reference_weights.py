"""Checkpoint tensors as float32: FP8 dequantized exactly, metadata consumed, hash by content."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from adaptgate.checkpoint import open_checkpoint
from adaptgate.formats.dequantize import dequantize_reference
from adaptgate.reference.weights import layer_index, open_weights


@pytest.mark.parametrize("block", [None, (64, 96)])
def test_fp8_weights_dequantize_like_the_textbook_oracle(
    tiny_model: Callable[..., Path], block: tuple[int, int] | None
) -> None:
    ckpt = open_checkpoint(tiny_model(arch="qwen3", format="fp8_block", block=block))
    weights = open_weights(ckpt)
    name = "model.layers.1.self_attn.q_proj.weight"
    quant = weights.fp8[name]
    want = dequantize_reference(
        ckpt.read_tensor(name),
        ckpt.read_tensor(quant.scale),
        strategy=quant.strategy,
        block=quant.block,
        target="f32",
    )
    got = weights.read(name)
    assert got.dtype == torch.float32
    assert torch.equal(got, want)
    assert quant.scale not in weights.names  # scales never reach the model
    assert not any(n.endswith(("weight_scale", "weight_scale_inv")) for n in weights.names)


def test_unquantized_tensors_upcast_exactly(tiny_model: Callable[..., Path]) -> None:
    ckpt = open_checkpoint(tiny_model(arch="qwen3", format="bf16"))
    weights = open_weights(ckpt)
    name = "model.embed_tokens.weight"
    raw = ckpt.read_tensor(name)
    assert raw.dtype == torch.bfloat16
    assert torch.equal(weights.read(name), raw.float())
    assert not weights.fp8 and not weights.ascend


def test_model_hash_covers_content(tiny_model: Callable[..., Path], tmp_path: Path) -> None:
    src = tiny_model(arch="qwen3", format="fp8_block")

    def full_hash(path: Path) -> str | None:
        w = open_weights(open_checkpoint(path))
        assert w.model_hash() is None  # nothing read yet
        for n in w.names:
            w.read(n)
        return w.model_hash()

    first = full_hash(src)
    assert first is not None and first == full_hash(src)
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    from safetensors.torch import load_file, save_file

    tensors = load_file(copy / "model.safetensors")
    key = "model.layers.0.self_attn.o_proj.weight_scale_inv"
    tensors[key] = tensors[key].T.contiguous()  # a scale-only change must change the hash
    save_file(tensors, copy / "model.safetensors", metadata={"format": "pt"})
    assert full_hash(copy) != first


def test_layer_index() -> None:
    assert layer_index("model.layers.12.mlp.up_proj.weight", "layers") == 12
    assert layer_index("model.embed_tokens.weight", "layers") is None
    assert layer_index("transformer.h.3.attn.weight", "h") == 3
