"""The W8A8_DYNAMIC output loaded back and checked field by field against formats.md section 3."""

from __future__ import annotations

import json

import pytest
import torch
from convert_testlib import convert, load_dir

from adaptgate.checkpoint import open_checkpoint
from adaptgate.convert.plan import fused_group
from adaptgate.formats import ascend
from adaptgate.formats.dequantize import dequantize_reference


def _check_layout(src, out, result):
    desc = json.loads((out / "quant_model_description.json").read_text())
    assert desc["version"] == "1.0.0"
    assert desc["model_quant_type"] == "W8A8_DYNAMIC"
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    tensors = load_dir(out)
    files = sorted(p.name for p in out.glob("*.safetensors"))
    assert files and all(f.startswith("quant_model_weights-") for f in files)
    index = json.loads((out / "quant_model_weights.safetensors.index.json").read_text())
    assert sorted(index["weight_map"]) == sorted(tensors)
    entries = {k: v for k, v in desc.items() if k in tensors}
    assert set(entries) == set(tensors)  # one entry per tensor
    assert set(entries.values()) <= {"W8A8_DYNAMIC", "FLOAT"}
    ckpt = open_checkpoint(src)
    quantized = [n for n, t in entries.items() if t == "W8A8_DYNAMIC" and n.endswith(".weight")]
    assert quantized
    for name in quantized:
        module = name.removesuffix(".weight")
        w, s, o = (
            tensors[name],
            tensors[f"{module}.weight_scale"],
            tensors[f"{module}.weight_offset"],
        )
        n = w.shape[0]
        assert w.dtype == torch.int8 and int(w.min()) >= -127 and int(w.max()) <= 127
        assert s.dtype == torch.float32 and tuple(s.shape) == (n, 1) and bool((s > 0).all())
        assert o.dtype == torch.float32 and tuple(o.shape) == (n, 1) and not o.any()
        assert (
            entries[f"{module}.weight_scale"]
            == entries[f"{module}.weight_offset"]
            == "W8A8_DYNAMIC"
        )
        if f"{module}.bias" in tensors:
            assert tensors[f"{module}.bias"].dtype == torch.float32
            assert entries[f"{module}.bias"] == "FLOAT"
        # exactly msModelSlim's quantizer applied to the float32 dequantized weight
        rec = next(r for r in result.tensors if r.name == name)
        source = ckpt.read_tensor(rec.source)
        scale_name = next(x for x in ckpt.tensors if x.startswith(module + ".weight_scale"))
        qc = ckpt.config["quantization_config"]
        strategy, block = "block", None
        if qc.get("quant_method") == "fp8":
            block = tuple(qc["weight_block_size"])
        else:
            args = next(iter(qc["config_groups"].values()))["weights"]
            strategy = args["strategy"]
            block = tuple(args["block_structure"]) if strategy == "block" else None
        ref = dequantize_reference(
            source, ckpt.read_tensor(scale_name), strategy=strategy, block=block, target="f32"
        )
        want_q, want_s, _ = ascend.quantize_w8a8_dynamic(ref)
        assert torch.equal(w, want_q) and torch.equal(s, want_s), name
    groups: dict[str, set[str]] = {}
    for name, kind in entries.items():
        if name.endswith(".weight") and tensors[name].dim() == 2:
            groups.setdefault(fused_group(name.removesuffix(".weight")), set()).add(kind)
    assert all(len(kinds) == 1 for kinds in groups.values()), groups
    return entries, tensors


def test_w8a8_dense_sharded(tiny_model, tmp_path):
    src = tiny_model(arch="qwen3", format="fp8_block", scale_dtype="float16", block=(64, 96))
    result = convert(src, tmp_path / "out", "w8a8-dynamic", max_shard_size=200_000, verify=True)
    assert result.verify.ok, result.verify.problems
    entries, tensors = _check_layout(src, tmp_path / "out", result)
    assert entries["model.embed_tokens.weight"] == "FLOAT"
    assert tensors["model.embed_tokens.weight"].dtype == torch.bfloat16
    layers = result.errors.int8_layers
    assert layers and [e.rel_error for e in layers] == sorted(
        (e.rel_error for e in layers), reverse=True
    )
    assert 0 < result.errors.int8_rel_error < 0.02
    worst = result.errors.int8_tensors
    assert [e.rel_error for e in worst] == sorted((e.rel_error for e in worst), reverse=True)


@pytest.mark.slow  # builds the GLM MoE demo with compressed-tensors (~6 s)
def test_w8a8_moe_with_mtp_and_biases(tiny_model, tmp_path):
    src = tiny_model(arch="glm4_moe", format="ct_fp8_channel", shards=2)
    result = convert(src, tmp_path / "out", "w8a8-dynamic", verify=True)
    assert result.verify.ok, result.verify.problems
    entries, tensors = _check_layout(src, tmp_path / "out", result)
    experts = [n for n in entries if ".experts." in n and n.endswith(".weight")]
    assert experts and all(entries[n] == "W8A8_DYNAMIC" for n in experts)
    routers = [n for n in entries if n.endswith("mlp.gate.weight")]
    assert routers and all(entries[n] == "FLOAT" for n in routers)
    num_layers = json.loads((src / "config.json").read_text())["num_hidden_layers"]
    mtp = [n for n in tensors if n.startswith(f"model.layers.{num_layers}.")]
    assert mtp  # the MTP layer is carried over


def test_mixed_fused_group_stays_float(tiny_model, tmp_path):
    """q_proj left in bf16 while k/v are FP8: the whole q/k/v group must be FLOAT."""
    from convert_testlib import write_model

    base = tiny_model(arch="qwen3", format="fp8_block")
    tensors = load_dir(base)
    q = "model.layers.0.self_attn.q_proj"
    scale = tensors.pop(f"{q}.weight_scale_inv")
    tensors[f"{q}.weight"] = dequantize_reference(tensors[f"{q}.weight"], scale)
    config = json.loads((base / "config.json").read_text())
    src = write_model(tmp_path / "src", {"model.safetensors": tensors}, config=config)
    result = convert(src, tmp_path / "out", "w8a8-dynamic", verify=True)
    assert result.verify.ok
    entries, out = _check_layout(src, tmp_path / "out", result)
    for proj in ("q_proj", "k_proj", "v_proj"):
        name = f"model.layers.0.self_attn.{proj}.weight"
        assert entries[name] == "FLOAT" and out[name].dtype == torch.bfloat16
    assert entries["model.layers.1.self_attn.k_proj.weight"] == "W8A8_DYNAMIC"
    assert any("fused groups" in w.text for w in result.warnings)
