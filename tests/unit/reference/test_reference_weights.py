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


def test_compressed_tensors_int8_weights_dequantize_as_the_library_does(
    tiny_model: Callable[..., Path],
) -> None:
    """Channel-wise int8 codes times their bf16 scale, in float32: bit-identical to the
    compressed-tensors library's own ``dequantize`` (float32 scale) and to the float64 product
    (8-bit codes times an 8-bit-mantissa scale are exact in float32)."""
    from compressed_tensors.quantization.lifecycle.forward import dequantize

    ckpt = open_checkpoint(tiny_model(arch="qwen3", format="ct_w8a8_int8"))
    weights = open_weights(ckpt)
    assert weights.int8 and not weights.fp8
    for name in ("model.layers.1.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight"):
        q, scale = ckpt.read_tensor(name), ckpt.read_tensor(weights.int8[name])
        assert q.dtype == torch.int8 and scale.dtype == torch.bfloat16
        got = weights.read(name)
        library = dequantize(q, scale.float(), None, dtype=torch.float32)
        assert torch.equal(got, library)
        assert torch.equal(got.double(), q.double() * scale.double())
    assert not any(n.endswith("weight_scale") for n in weights.names)
    assert weights.int8["model.layers.1.self_attn.q_proj.weight"] in weights.skipped


def _rewrite_config(src: Path, dst: Path, edit: Callable[[dict], None]) -> Path:
    import json

    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    edit(config)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_int8_layouts_the_reference_cannot_apply_exactly_are_refused(
    tiny_model: Callable[..., Path], tmp_path: Path
) -> None:
    from adaptgate.errors import UsageError

    src = tiny_model(arch="qwen3", format="ct_w8a8_int8")

    def group_wise(config: dict) -> None:
        weights = config["quantization_config"]["config_groups"]["group_0"]["weights"]
        weights.update(strategy="group", group_size=64)

    def asymmetric(config: dict) -> None:
        config["quantization_config"]["config_groups"]["group_0"]["weights"]["symmetric"] = False

    def undeclared(config: dict) -> None:
        del config["quantization_config"]  # int8 codes with no scheme: nothing says how to scale

    for edit in (group_wise, asymmetric, undeclared):
        ckpt = open_checkpoint(_rewrite_config(src, tmp_path / edit.__name__, edit))
        with pytest.raises(UsageError) as err:
            open_weights(ckpt)
        assert err.value.exit_code == 2
        assert "int8" in str(err.value) or "I8" in str(err.value), str(err.value)
