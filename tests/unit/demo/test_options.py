"""Spec options: determinism, shards, FP8-block options, modules_to_not_convert, non-divisible."""

from __future__ import annotations

import json
import math

import pytest
import torch
from ckpt_helpers import config, load_all, weight_files

from adaptgate.demo import DemoSpec, make_model
from adaptgate.demo.spec import make_spec
from adaptgate.errors import UnknownKind, UsageError


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec",
    [
        DemoSpec(arch="qwen3_moe", format="fp8_block", shards=2, seed=3),
        DemoSpec(arch="glm4_moe", format="w8a8_dynamic"),
        DemoSpec(arch="qwen3", format="ct_fp8_channel"),
    ],
)
def test_same_seed_gives_identical_bytes(tmp_path, spec):
    a = make_model(tmp_path / "a", spec)
    b = make_model(tmp_path / "b", spec)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_other_seed_other_weights(tiny_model):
    a = load_all(tiny_model("qwen3", "bf16"))
    b = load_all(tiny_model("qwen3", "bf16", seed=1))
    assert not torch.equal(a["model.layers.0.self_attn.q_proj.weight"],
                           b["model.layers.0.self_attn.q_proj.weight"])  # fmt: skip


@pytest.mark.parametrize(("fmt", "prefix"), [("bf16", "model"), ("ct_fp8_block", "model"),
                                             ("w8a8_dynamic", "quant_model_weights")])  # fmt: skip
def test_shards_and_index(tiny_model, fmt, prefix):
    d = tiny_model("qwen3_moe", fmt, shards=3)
    files = [p.name for p in weight_files(d)]
    assert files == [f"{prefix}-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    index = json.loads((d / f"{prefix}.safetensors.index.json").read_text())
    tensors = load_all(d)
    assert set(index["weight_map"]) == set(tensors)
    assert set(index["weight_map"].values()) == set(files)
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    assert index["metadata"]["total_size"] == total
    assert list(index["weight_map"]) == sorted(index["weight_map"])


def test_single_file_has_no_index(tiny_model):
    d = tiny_model("qwen3", "bf16")
    assert [p.name for p in weight_files(d)] == ["model.safetensors"]
    assert not list(d.glob("*.index.json"))


@pytest.mark.parametrize("scale_dtype", ["float32", "bfloat16", "float16"])
def test_fp8_block_scale_dtype_and_block(tiny_model, scale_dtype):
    d = tiny_model("qwen3", "fp8_block", scale_dtype=scale_dtype, block=(64, 128))
    tensors = load_all(d)
    s = tensors["model.layers.0.mlp.down_proj.weight_scale_inv"]
    assert s.dtype == getattr(torch, scale_dtype)
    assert s.shape == (256 // 64, 512 // 128)
    assert config(d)["quantization_config"]["weight_block_size"] == [64, 128]


def test_ue8m0(tiny_model):
    d = tiny_model("glm4_moe", "fp8_block", ue8m0=True, scale_dtype="float32")
    assert config(d)["quantization_config"]["scale_fmt"] == "ue8m0"
    scales = [t for k, t in load_all(d).items() if k.endswith("weight_scale_inv")]
    assert scales
    for s in scales:
        mantissa, _ = torch.frexp(s)
        assert bool((mantissa == 0.5).all())


def test_non_divisible(tiny_model):
    d = tiny_model("qwen3_moe", "fp8_block", non_divisible=True)
    cfg = config(d)
    assert cfg["hidden_size"] % 128 and cfg["moe_intermediate_size"] % 128
    tensors = load_all(d)
    w = tensors["model.layers.0.self_attn.q_proj.weight"]
    s = tensors["model.layers.0.self_attn.q_proj.weight_scale_inv"]
    assert s.shape == (math.ceil(w.shape[0] / 128), math.ceil(w.shape[1] / 128))
    assert w.shape[0] % 128 and w.shape[1] % 128


NOT_CONVERT = ("model.layers.0.mlp", "model.layers.1.self_attn")


@pytest.mark.parametrize("fmt", ["fp8_block", "ct_fp8_channel", "w8a8_dynamic"])
def test_modules_to_not_convert(tiny_model, fmt):
    d = tiny_model("qwen3", fmt, modules_to_not_convert=NOT_CONVERT)
    tensors = load_all(d)
    kept = ["model.layers.0.mlp.down_proj", "model.layers.1.self_attn.q_proj",
            "model.layers.1.self_attn.o_proj"]  # fmt: skip
    for module in kept:
        assert tensors[f"{module}.weight"].dtype == torch.bfloat16
        assert not any(k.startswith(f"{module}.weight_") for k in tensors)
    assert tensors["model.layers.1.mlp.up_proj.weight"].dtype != torch.bfloat16
    cfg = config(d)
    if fmt == "fp8_block":
        listed = cfg["quantization_config"]["modules_to_not_convert"]
        assert set(kept) <= set(listed) and len(listed) == 7
    elif fmt == "ct_fp8_channel":
        assert set(kept) <= set(cfg["quantization_config"]["ignore"])
    else:
        desc = json.loads((d / "quant_model_description.json").read_text())
        assert all(desc[f"{m}.weight"] == "FLOAT" for m in kept)


def test_spec_errors_are_usage_errors():
    with pytest.raises(UnknownKind, match="qwen3_moe"):
        make_spec(arch="llama")
    with pytest.raises(UnknownKind, match="w8a8_dynamic"):
        make_spec(format="int4")
    for bad in (
        {"shards": 0},
        {"format": "bf16", "ue8m0": True},
        {"format": "w8a8_dynamic", "block": (64, 64)},
        {"format": "ct_fp8_block", "scale_dtype": "float32"},
        {"format": "bf16", "modules_to_not_convert": ("model.layers.0",)},
        {"format": "fp8_block", "block": (0, 128)},
    ):
        with pytest.raises(UsageError):
            make_spec(**bad)


def test_partial_fused_group_is_refused(tmp_path):
    spec = DemoSpec(format="fp8_block", modules_to_not_convert=("model.layers.0.mlp.up_proj",))
    with pytest.raises(UsageError, match="gate_up_proj"):
        make_model(tmp_path / "m", spec)
    with pytest.raises(UsageError, match="matches no"):
        make_model(tmp_path / "m", DemoSpec(format="fp8_block", modules_to_not_convert=("x",)))


def test_refuses_non_empty_dir(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "x").write_text("x")
    with pytest.raises(UsageError):
        make_model(tmp_path / "m", DemoSpec())


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["bf16", "fp8_block", "ct_fp8_block", "ct_fp8_tensor",
                                 "w8a8_dynamic"])  # fmt: skip
def test_non_divisible_and_tied_glm_build_in_every_format(tiny_model, fmt):
    from adaptgate.formats.fp8_block import expand_scales

    d = tiny_model("glm4_moe", fmt, non_divisible=True, tie_embeddings=True)
    tensors = load_all(d)
    assert "lm_head.weight" not in tensors
    w = tensors["model.layers.1.mlp.experts.0.down_proj.weight"]
    assert w.shape == (192, 96)
    scale_key = {"fp8_block": "weight_scale_inv", "ct_fp8_block": "weight_scale"}.get(fmt)
    if scale_key:
        s = tensors[f"model.layers.1.mlp.experts.0.down_proj.{scale_key}"]
        assert s.shape == (2, 1)  # ceil(192/128) x ceil(96/128)
        master = load_all(tiny_model("glm4_moe", "bf16", non_divisible=True, tie_embeddings=True))
        ref = master["model.layers.1.mlp.experts.0.down_proj.weight"].double()
        deq = w.double() * expand_scales(s.double(), (192, 96), (128, 128))
        assert float((deq - ref).abs().max()) <= float(ref.abs().max()) / 14
